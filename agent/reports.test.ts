import { describe, expect, it } from 'vitest';
import { freshSlotState, type SlotState } from '../controllers/container/types.js';
import type { InstanceStateName } from '../controllers/instance/machine.js';
import type { ObservedContainer } from '../runtime/types.js';
import { aContainer, aSpec, slotsOf } from '../test/builders.js';
import { buildReports, type InstanceReport, type LifecycleView } from './reports.js';

const NOW = Date.parse('2026-01-01T00:01:00.000Z');
const desired = slotsOf(aSpec({ replicas: 2 }), 3);
const hash = desired[0]!.specHash;

const slots = (...states: Array<Partial<SlotState> & { slot: number }>): Map<string, SlotState> =>
  new Map(states.map((s) => [`web/${s.slot}`, { ...freshSlotState('web', s.slot), ...s }]));

const lifecycle = (states: Record<string, [InstanceStateName, boolean]>): LifecycleView => ({
  state: (i) => states[i]?.[0],
  ready: (i) => states[i]?.[1] ?? false,
});

/** The fields a table row looks at, for one slot's rows in report order. */
const row = (r: InstanceReport) => ({ id: r.id, slot: r.slot, state: r.state, ready: r.ready, current: r.current });

describe('buildReports: one row per live container and one per desired slot without one', () => {
  it.each<[string, ObservedContainer[], Array<ReturnType<typeof row>>]>([
    ['nothing observed: every desired slot is pending', [], [
      { id: null, slot: 0, state: 'pending', ready: false, current: true },
      { id: null, slot: 1, state: 'pending', ready: false, current: true },
    ]],
    ['a running container of the desired spec', [aContainer({ slot: 0, instance: 'a', specHash: hash })], [
      { id: 'a', slot: 0, state: 'running', ready: true, current: true },
      { id: null, slot: 1, state: 'pending', ready: false, current: true },
    ]],
    ['a created container is starting and not ready', [aContainer({ slot: 0, instance: 'a', specHash: hash, status: 'created', startedAt: null })], [
      { id: 'a', slot: 0, state: 'starting', ready: false, current: true },
      { id: null, slot: 1, state: 'pending', ready: false, current: true },
    ]],
    ['an exited container is no row of its own: its slot is pending', [aContainer({ slot: 1, instance: 'b', specHash: hash, status: 'exited' })], [
      { id: null, slot: 0, state: 'pending', ready: false, current: true },
      { id: null, slot: 1, state: 'pending', ready: false, current: true },
    ]],
    ['during a rollout the new instance is listed before the old one, which is not current', [
      aContainer({ slot: 0, instance: 'old', specHash: 'old-hash' }),
      aContainer({ slot: 0, instance: 'new', specHash: hash }),
    ], [
      { id: 'new', slot: 0, state: 'running', ready: true, current: true },
      { id: 'old', slot: 0, state: 'running', ready: true, current: false },
      { id: null, slot: 1, state: 'pending', ready: false, current: true },
    ]],
    ['a removing container is stopping', [aContainer({ slot: 0, instance: 'a', specHash: hash, status: 'removing' })], [
      { id: 'a', slot: 0, state: 'stopping', ready: false, current: true },
      { id: null, slot: 1, state: 'pending', ready: false, current: true },
    ]],
  ])('%s', (_name, containers, rows) => {
    expect(buildReports('n1', desired, containers, new Map(), NOW).map(row)).toEqual(rows);
  });

  it('a container without Orca labels is not reported; one of a slot no longer desired still is, not current', () => {
    const foreign: ObservedContainer = { ...aContainer({ slot: 0 }), labels: { app: 'other' } };
    const extra = aContainer({ slot: 5, instance: 'gone', specHash: hash });
    const r = buildReports('n1', desired.slice(0, 1), [foreign, extra], new Map(), NOW);
    expect(r.map(row)).toEqual([
      { id: null, slot: 0, state: 'pending', ready: false, current: true },
      { id: 'gone', slot: 5, state: 'running', ready: true, current: false },
    ]);
  });

  it('the lifecycle decides state and readiness when it knows the instance', () => {
    const containers = [aContainer({ slot: 0, instance: 'a', specHash: hash }), aContainer({ slot: 1, instance: 'b', specHash: hash })];
    const r = buildReports('n1', desired, containers, new Map(), NOW, lifecycle({ a: ['running', false], b: ['stopping', false] }));
    expect(r.map(row)).toEqual([
      { id: 'a', slot: 0, state: 'running', ready: false, current: true },
      { id: 'b', slot: 1, state: 'stopping', ready: false, current: true },
    ]);
  });

  it('an address, a start time, the container id and the node are reported; IPv6 hosts are bracketed', () => {
    const v6: ObservedContainer = { ...aContainer({ slot: 1, instance: 'b', specHash: hash }), hostIp: '::1', hostPort: 40001 };
    const [a, b] = buildReports('n7', desired, [aContainer({ slot: 0, instance: 'a', specHash: hash }), v6], new Map(), NOW);
    expect(a).toMatchObject({ address: '127.0.0.1:49153', containerId: 'cid-a', node: 'n7', startedAt: '2026-01-01T00:00:00.000Z', revision: 1 });
    expect(b).toMatchObject({ address: '[::1]:40001' });
    const created = buildReports('n1', desired, [aContainer({ slot: 0, instance: 'a', specHash: hash, status: 'created', startedAt: null })], new Map(), NOW);
    expect(created[0]).toMatchObject({ address: null, startedAt: null });
  });
});

describe('buildReports: slot memory (restarts, last exit, crash-loop backoff)', () => {
  const exit = { instance: 'a', code: 137, reason: 'oom-killed' as const, at: '2026-01-01T00:00:50.000Z' };

  it.each<[string, Partial<SlotState>, { state: InstanceStateName; id: string | null; nextRetryAt: string | null }]>([
    ['waiting out its backoff: crashloop with the next try as ISO time', { currentInstance: 'a', nextInstance: 'a2', nextRetryAt: NOW + 4_000 },
      { state: 'crashloop', id: 'a2', nextRetryAt: '2026-01-01T00:01:04.000Z' }],
    ['backoff over: pending (the replacement is due)', { currentInstance: 'a', nextInstance: 'a2', nextRetryAt: NOW - 1 },
      { state: 'pending', id: 'a', nextRetryAt: null }],
    ['the restart policy gave up on this spec: exited', { currentInstance: 'a', gaveUpOnHash: hash },
      { state: 'exited', id: 'a', nextRetryAt: null }],
    ['gave up on an older spec only: pending', { currentInstance: 'a', gaveUpOnHash: 'old-hash' },
      { state: 'pending', id: 'a', nextRetryAt: null }],
  ])('%s', (_name, memory, expected) => {
    const [r] = buildReports('n1', desired.slice(0, 1), [], slots({ slot: 0, restarts: 3, lastExit: exit, ...memory }), NOW);
    expect(r).toMatchObject({ ...expected, restarts: 3, ready: false, containerId: null, address: null });
  });

  it('the lifecycle of the waiting instance decides crashloop over the clock', () => {
    const memory = slots({ slot: 0, currentInstance: 'a', nextInstance: 'a2', nextRetryAt: NOW - 1 });
    const [r] = buildReports('n1', desired.slice(0, 1), [], memory, NOW, lifecycle({ a2: ['crashloop', false] }));
    expect(r).toMatchObject({ state: 'crashloop', id: 'a2', nextRetryAt: '2026-01-01T00:00:59.999Z' });
  });

  it.each([
    ['oom-killed', 'OOMKilled'],
    ['exited', 'Error'],
    ['completed', 'Completed'],
    ['removed', 'Removed'],
    ['liveness', 'LivenessFailed'],
    ['unhealthy', 'Unhealthy'],
    ['create-failed', 'CreateFailed'],
    ['start-timeout', 'StartTimeout'],
  ] as const)('a last exit for %s reads %s, with its code and time', (reason, text) => {
    const memory = slots({ slot: 0, lastExit: { instance: 'a', code: 1, reason, at: '2026-01-01T00:00:50.000Z' } });
    const live = [aContainer({ slot: 0, instance: 'a2', specHash: hash })];
    for (const containers of [[], live]) {
      const [r] = buildReports('n1', desired.slice(0, 1), containers, memory, NOW);
      expect(r?.lastExit).toEqual({ code: 1, reason: text, at: '2026-01-01T00:00:50.000Z' });
    }
  });
});

describe('buildReports: a container list read before the slot recorded its death', () => {
  // observe() lists the containers, then reads the slots: an instance that died in between is
  // still "running" in the list while its slot already holds its exit.
  const died = slots({ slot: 0, currentInstance: 'a', handledInstance: 'a', lastExit: { instance: 'a', code: 137, reason: 'oom-killed', at: '2026-01-01T00:00:58.000Z' } });

  it('an instance whose own exit came after it started is no live row: its slot shows the exit', () => {
    const stale = [aContainer({ slot: 0, instance: 'a', specHash: hash, startedAt: '2026-01-01T00:00:57.700Z' })];
    const [r, more] = buildReports('n1', desired.slice(0, 1), stale, died, NOW);
    expect(more).toBeUndefined();
    expect(r).toMatchObject({ containerId: null, state: 'pending', lastExit: { reason: 'OOMKilled', code: 137 } });
  });

  it('an instance started again after its recorded exit is live, and shows that exit as its past', () => {
    const again = [aContainer({ slot: 0, instance: 'a', specHash: hash, startedAt: '2026-01-01T00:00:59.000Z' })];
    const [r] = buildReports('n1', desired.slice(0, 1), again, died, NOW);
    expect(r).toMatchObject({ id: 'a', state: 'running', lastExit: { reason: 'OOMKilled', code: 137 } });
    expect(r?.containerId).not.toBeNull();
  });
});

describe('buildReports: halted rollouts and terminal errors', () => {
  it('a halted rollout to the desired spec is reported on the slot; one to an older spec is not', () => {
    const old = aContainer({ slot: 0, instance: 'old', specHash: 'old-hash' });
    const halted = slots({ slot: 0, currentInstance: 'old', rolloutFailed: { hash, reason: 'not ready within 60 s', at: NOW } });
    const [r] = buildReports('n1', desired.slice(0, 1), [old], halted, NOW);
    expect(r).toMatchObject({ id: 'old', current: false, rolloutFailed: 'not ready within 60 s' });
    const stale = slots({ slot: 0, currentInstance: 'old', rolloutFailed: { hash: 'older', reason: 'x', at: NOW } });
    expect(buildReports('n1', desired.slice(0, 1), [old], stale, NOW)[0]?.rolloutFailed).toBeNull();
    const pending = buildReports('n1', desired.slice(0, 1), [], halted, NOW)[0];
    expect(pending).toMatchObject({ state: 'pending', rolloutFailed: 'not ready within 60 s' });
  });

  it("a service's terminal error shows on a slot without an instance and on an old-spec instance, never on a current one", () => {
    const errors = new Map([['web', 'image web:2 not found on node n1']]);
    const three = slotsOf(aSpec({ replicas: 3 }), 3);
    // Slot 0 runs the desired spec, slot 1 keeps its old instance, slot 2 has none.
    const containers = [aContainer({ slot: 0, instance: 'cur', specHash: hash }), aContainer({ slot: 1, instance: 'old', specHash: 'old-hash' })];
    const r = buildReports('n1', three, containers, new Map(), NOW, undefined, errors);
    expect(r.map((x) => [x.id, x.slot, x.error])).toEqual([
      ['cur', 0, null],
      ['old', 1, 'image web:2 not found on node n1'],
      [null, 2, 'image web:2 not found on node n1'],
    ]);
  });

  it('rows are sorted by service, then slot, current first', () => {
    const api = slotsOf(aSpec({ name: 'api', replicas: 1 }), 1);
    const containers = [
      aContainer({ slot: 1, instance: 'w1-old', specHash: 'old-hash' }),
      aContainer({ slot: 1, instance: 'w1-new', specHash: hash }),
      aContainer({ service: 'api', slot: 0, instance: 'a0', specHash: api[0]!.specHash }),
    ];
    const r = buildReports('n1', [...desired, ...api], containers, new Map(), NOW);
    expect(r.map((x) => `${x.service}/${x.slot}:${x.id ?? '-'}`)).toEqual(['api/0:a0', 'web/0:-', 'web/1:w1-new', 'web/1:w1-old']);
  });
});
