import { describe, expect, it } from 'vitest';
import { initialServerSession, stepServerSession, type ServerSessionInput, type ServerSessionState, type ServerSessionStep } from './server-session.js';
import { LIMITS, type AgentMessage } from './messages.js';
import type { InstanceReport } from './reports.js';
import { aSpec, slotsOf } from '../test/builders.js';
import { decodeServerMessage as decodeV1 } from '../test/fixtures/protocol-v1.js';

const web = slotsOf(aSpec({ replicas: 2 }));
const api = slotsOf(aSpec({ name: 'api' }));
const report = (slot: number): InstanceReport => ({
  id: `web-1-${slot}-aaaa`, service: 'web', slot, revision: 1, specHash: 'h', node: 'n1', state: 'running', ready: true, restarts: 0,
  lastExit: null, containerId: null, address: null, nextRetryAt: null, startedAt: null, current: true, rolloutFailed: null,
});
const ep = (instance: string) => ({ service: 'web', instance, address: '127.0.0.1:32768' });
const attached: ServerSessionInput = { kind: 'attached', reports: [], endpoints: [] };
const agent = (msg: AgentMessage): ServerSessionInput => ({ kind: 'message', msg });
const observe = (id: number): ServerSessionInput => ({ kind: 'request', id, request: { type: 'observe' }, timeoutMs: 1000 });

function run(inputs: ServerSessionInput[], state: ServerSessionState = initialServerSession()): ServerSessionStep[] {
  return inputs.map((input, i) => {
    const r = stepServerSession(state, input, 1000 + i);
    state = r.state;
    return r;
  });
}
const last = (inputs: ServerSessionInput[]) => run(inputs).at(-1)!;
/** Assignment messages as short strings: full:<count> or delta:<service>=<count>,… */
const assignmentsSent = (steps: ServerSessionStep[]) =>
  steps.flatMap((r) => r.send).flatMap((m) =>
    m.type !== 'assignments' ? [] : [m.full ? `full:${m.slots?.length}` : `delta:${Object.entries(m.services ?? {}).map(([s, l]) => `${s}=${l.length}`).join(',')}`],
  );

describe('stepServerSession: assignments', () => {
  it.each<[string, ServerSessionInput[], string[]]>([
    ['nothing before the control plane published a set (an agent would remove all it runs)', [attached], []],
    ['the full set once published', [attached, { kind: 'assignments', slots: web }], ['full:2']],
    ['nothing while detached; the full set on attach', [{ kind: 'assignments', slots: web }, attached], ['full:2']],
    ['an empty published set is sent (it was said)', [{ kind: 'assignments', slots: [] }, attached], ['full:0']],
    ['an unchanged set sends nothing', [{ kind: 'assignments', slots: [...web, ...api] }, attached, { kind: 'assignments', slots: [...web, ...api] }], ['full:3']],
    ['a service removed: a delta with its empty list', [{ kind: 'assignments', slots: [...web, ...api] }, attached, { kind: 'assignments', slots: web }], ['full:3', 'delta:api=0']],
    ['a service changed: a delta of that service only', [{ kind: 'assignments', slots: [...web, ...api] }, attached, { kind: 'assignments', slots: [...web.slice(0, 1), ...api] }], ['full:3', 'delta:web=1']],
    ['a service added: a delta of that service only', [{ kind: 'assignments', slots: web }, attached, { kind: 'assignments', slots: [...web, ...api] }], ['full:2', 'delta:api=1']],
    ['a new session gets the full set again', [{ kind: 'assignments', slots: web }, attached, { kind: 'detached' }, attached], ['full:2', 'full:2']],
  ])('%s', (_name, inputs, want) => {
    expect(assignmentsSent(run(inputs))).toEqual(want);
  });
});

describe('stepServerSession: report sets', () => {
  it('assembles a set sent in parts and keeps the last complete set meanwhile', () => {
    const steps = run([
      attached,
      agent({ type: 'state', reports: [report(9)], endpoints: [ep('a')] }),
      agent({ type: 'state', reports: [report(0)], endpoints: [], more: true }),
      agent({ type: 'state', reports: [report(1)], endpoints: [ep('b')] }),
    ]);
    expect(steps[1]!.state.reports.map((r) => r.slot)).toEqual([9]);
    expect(steps[2]!.state.reports.map((r) => r.slot)).toEqual([9]);
    expect(steps[3]!.state.reports.map((r) => r.slot)).toEqual([0, 1]);
    expect(steps[3]!.state.endpoints).toEqual([ep('b')]);
  });

  it('drops a set over the limit and keeps the last complete one', () => {
    const many = Array.from({ length: LIMITS.reportsTotal }, (_, i) => report(i));
    const steps = run([attached, agent({ type: 'state', reports: [report(9)], endpoints: [] }), agent({ type: 'state', reports: many, endpoints: [], more: true }), agent({ type: 'state', reports: [report(1)], endpoints: [], more: true })]);
    expect(steps[3]!.effects).toMatchObject([{ kind: 'log', level: 'warn', msg: 'report set over the limit; the last complete one is kept' }]);
    expect(steps[3]!.state.reports.map((r) => r.slot)).toEqual([9]);
    expect(steps[3]!.state.partialReports).toBeNull();
  });

  it('takes the hello’s reports and endpoints on attach, and an endpoints push alone', () => {
    const steps = run([{ kind: 'attached', reports: [report(3)], endpoints: [ep('a')] }, agent({ type: 'endpoints', endpoints: [ep('b')] })]);
    expect(steps[0]!.state.reports).toEqual([report(3)]);
    expect(steps[1]!.state.endpoints).toEqual([ep('b')]);
    expect(steps[1]!.state.reports).toEqual([report(3)]);
  });
});

describe('stepServerSession: requests', () => {
  it('asks, bounds the wait, and takes an observe’s answer as the node’s report set', () => {
    const steps = run([attached, observe(5), agent({ type: 'observed', id: 5, reports: [report(2)], endpoints: [ep('c')] })]);
    expect(steps[1]!.send).toEqual([{ type: 'observe', id: 5 }]);
    expect(steps[1]!.effects).toEqual([{ kind: 'timer.set', timer: 'rpc:5', ms: 1000 }]);
    expect(steps[2]!.effects).toEqual([
      { kind: 'timer.clear', timer: 'rpc:5' },
      { kind: 'reply', id: 5, msg: { type: 'observed', id: 5, reports: [report(2)], endpoints: [ep('c')] } },
    ]);
    expect(steps[2]!.state.reports).toEqual([report(2)]);
    expect(steps[2]!.state.endpoints).toEqual([ep('c')]);
  });

  it('assembles an answer in parts', () => {
    const r = last([attached, observe(5), agent({ type: 'observed', id: 5, reports: [report(0)], more: true }), agent({ type: 'observed', id: 5, reports: [report(1)] })]);
    expect(r.effects.at(-1)).toEqual({ kind: 'reply', id: 5, msg: { type: 'observed', id: 5, reports: [report(0), report(1)] } });
  });

  it('ignores an answer in parts over the limit (the request then times out)', () => {
    const many = Array.from({ length: LIMITS.reportsTotal }, (_, i) => report(i));
    const steps = run([attached, observe(5), agent({ type: 'observed', id: 5, reports: many, more: true }), agent({ type: 'observed', id: 5, reports: [report(1)], more: true }), { kind: 'timer', timer: 'rpc:5' }]);
    expect(steps[3]!.effects).toMatchObject([{ kind: 'log', level: 'warn' }]);
    expect(steps[3]!.state.observedParts).toEqual({});
    expect(steps[4]!.effects).toEqual([{ kind: 'reply-timeout', id: 5 }]);
  });

  it.each<[string, ServerSessionInput[]]>([
    ['an observe that failed on the node', [observe(5), agent({ type: 'observed', id: 5, reports: [], error: 'docker down' })]],
    ['a containers request answered with a report set', [{ kind: 'request', id: 5, request: { type: 'containers', service: 'web' }, timeoutMs: 1000 }, agent({ type: 'observed', id: 5, reports: [report(2)] })]],
    ['an answer nobody asked for', [agent({ type: 'observed', id: 77, reports: [report(2)] })]],
  ])('%s does not replace the report set', (_name, inputs) => {
    const r = last([attached, agent({ type: 'state', reports: [report(9)], endpoints: [] }), ...inputs]);
    expect(r.state.reports).toEqual([report(9)]);
  });

  it('answers containers', () => {
    const steps = run([attached, { kind: 'request', id: 6, request: { type: 'containers', service: 'web' }, timeoutMs: 1000 }, agent({ type: 'containers-result', id: 6, containers: [] })]);
    expect(steps[1]!.send).toEqual([{ type: 'containers', id: 6, service: 'web' }]);
    expect(steps[2]!.effects).toEqual([{ kind: 'timer.clear', timer: 'rpc:6' }, { kind: 'reply', id: 6, msg: { type: 'containers-result', id: 6, containers: [] } }]);
  });

  it('answers volumes and volumes-remove by id', () => {
    const vol = { name: 'orca-c-db-data-0', service: 'db', volume: 'data', slot: 0, inUse: true, sizeBytes: null };
    const steps = run([
      attached,
      { kind: 'request', id: 7, request: { type: 'volumes' }, timeoutMs: 1000 },
      { kind: 'request', id: 8, request: { type: 'volumes-remove', service: 'db' }, timeoutMs: 1000 },
      agent({ type: 'volumes-result', id: 7, volumes: [vol] }),
      agent({ type: 'volumes-removed', id: 8, removed: [vol.name], failed: [] }),
      agent({ type: 'volumes-removed', id: 8, removed: [], failed: [] }),
    ]);
    expect(steps[1]!.send).toEqual([{ type: 'volumes', id: 7 }]);
    expect(steps[2]!.send).toEqual([{ type: 'volumes-remove', id: 8, service: 'db' }]);
    expect(steps[3]!.effects).toEqual([{ kind: 'timer.clear', timer: 'rpc:7' }, { kind: 'reply', id: 7, msg: { type: 'volumes-result', id: 7, volumes: [vol] } }]);
    expect(steps[4]!.effects).toEqual([{ kind: 'timer.clear', timer: 'rpc:8' }, { kind: 'reply', id: 8, msg: { type: 'volumes-removed', id: 8, removed: [vol.name], failed: [] } }]);
    // A second answer to the same id is dropped.
    expect(steps[5]!.effects).toEqual([]);
  });

  it('times out, and a late answer is dropped', () => {
    const steps = run([attached, observe(5), { kind: 'timer', timer: 'rpc:5' }, agent({ type: 'observed', id: 5, reports: [report(2)] })]);
    expect(steps[2]!.effects).toEqual([{ kind: 'reply-timeout', id: 5 }]);
    expect(steps[3]!.effects).toEqual([]);
    expect(steps[3]!.state.reports).toEqual([]);
  });

  it('a session that ends fails the requests in flight and ends the log streams', () => {
    const r = last([attached, observe(5), { kind: 'logs-open', id: 6, containerId: 'c', follow: true, window: 100 }, { kind: 'detached' }]);
    expect(r.effects).toEqual([
      { kind: 'timer.clear', timer: 'rpc:5' },
      { kind: 'reply', id: 5, msg: { type: 'observed', id: -1, reports: [], error: 'session ended' } },
      { kind: 'log-end', id: 6, sessionEnded: true },
    ]);
    expect(r.state.pending).toEqual({});
    expect(r.state.logStreams).toEqual([]);
  });

  it('a request without a session fails at once, nothing sent', () => {
    const r = last([observe(5)]);
    expect(r.send).toEqual([]);
    expect(r.effects).toMatchObject([{ kind: 'reply', id: 5, msg: { error: 'session ended' } }]);
  });
});

describe('stepServerSession: log streams', () => {
  const open: ServerSessionInput = { kind: 'logs-open', id: 6, containerId: 'c', follow: true, tail: 10, window: 100 };

  it('asks with its window, passes lines, credit and a cancel, and ends', () => {
    const steps = run([attached, open, agent({ type: 'logs-data', id: 6, lines: ['a'] }), { kind: 'logs-credit', id: 6, chars: 50 }, { kind: 'logs-cancel', id: 6 }, agent({ type: 'logs-end', id: 6, error: 'gone' })]);
    expect(steps[1]!.send).toEqual([{ type: 'logs', id: 6, containerId: 'c', follow: true, window: 100, tail: 10 }]);
    expect(steps[2]!.effects).toEqual([{ kind: 'log-lines', id: 6, lines: ['a'] }]);
    expect(steps[3]!.send).toEqual([{ type: 'logs-credit', id: 6, chars: 50 }]);
    expect(steps[4]!.send).toEqual([{ type: 'logs-cancel', id: 6 }]);
    expect(steps[5]!.effects).toEqual([{ kind: 'log-end', id: 6, error: 'gone' }]);
  });

  it.each<[string, ServerSessionInput[]]>([
    ['lines of a stream never opened', [agent({ type: 'logs-data', id: 9, lines: ['a'] })]],
    ['lines after the reader left', [open, { kind: 'logs-closed', id: 6 }, agent({ type: 'logs-data', id: 6, lines: ['a'] })]],
    ['an end after the reader left', [open, { kind: 'logs-closed', id: 6 }, agent({ type: 'logs-end', id: 6 })]],
  ])('drops %s', (_name, inputs) => {
    expect(last([attached, ...inputs]).effects).toEqual([]);
  });

  it('sends nothing without a session', () => {
    const steps = run([attached, open, { kind: 'detached' }, { kind: 'logs-credit', id: 6, chars: 5 }, { kind: 'logs-cancel', id: 6 }]);
    expect(steps.slice(2).flatMap((s) => s.send)).toEqual([]);
  });
});

describe('stepServerSession: purity', () => {
  it('never changes the state it is given', () => {
    let state = initialServerSession();
    const inputs: ServerSessionInput[] = [
      { kind: 'assignments', slots: [...web, ...api] },
      attached,
      { kind: 'assignments', slots: web },
      observe(1),
      agent({ type: 'observed', id: 1, reports: [report(0)], more: true }),
      agent({ type: 'observed', id: 1, reports: [report(1)] }),
      agent({ type: 'state', reports: [report(0)], endpoints: [], more: true }),
      { kind: 'logs-open', id: 2, containerId: 'c', follow: false, window: 10 },
      { kind: 'detached' },
    ];
    // Each step gets a frozen copy: any write to it throws.
    for (const input of inputs) state = stepServerSession(deepFreeze(structuredClone(state)), input, 5).state;
    expect(state.attached).toBe(false);
  });
});

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

describe('stepServerSession: a session with an agent one protocol version behind', () => {
  const v1 = (steps: ServerSessionStep[]) => steps.flatMap((r) => r.send).map((m) => decodeV1(JSON.stringify(m)));
  const withSecret = slotsOf(aSpec({ name: 'db', secrets: ['pw'] })).map((a) => ({ ...a, secretVersions: { pw: 1 } }));
  const secrets = [{ name: 'pw', version: 1, value: 'c2VjcmV0' }];

  it('sends assignments as version 1 has them (no secrets, no secretVersions): every message decodes with the old agent’s own decoder', () => {
    const steps = run([{ ...attached, protocol: 1 }, { kind: 'assignments', slots: [...web, ...withSecret], secrets }, { kind: 'assignments', slots: withSecret, secrets }]);
    const decoded = v1(steps);
    expect(decoded.map((d) => d.ok)).toEqual([true, true]);
    const text = JSON.stringify(steps.flatMap((r) => r.send));
    expect(text).not.toMatch(/secretVersions|c2VjcmV0/);
    expect(steps.flatMap((r) => r.send).some((m) => 'secrets' in m)).toBe(false);
    // The same inputs on a current session do carry them.
    const now = run([attached, { kind: 'assignments', slots: withSecret, secrets }]);
    expect(now[1]!.send[0]).toMatchObject({ type: 'assignments', secrets });
  });

  it('a volume request is answered at once with none, and nothing is sent (version 1 has no volumes)', () => {
    const steps = run([
      { ...attached, protocol: 1 },
      { kind: 'request', id: 7, request: { type: 'volumes' }, timeoutMs: 1000 },
      { kind: 'request', id: 8, request: { type: 'volumes-remove', service: 'db' }, timeoutMs: 1000 },
      observe(9),
    ]);
    expect(steps[1]!.send).toEqual([]);
    expect(steps[1]!.effects).toEqual([{ kind: 'reply', id: 7, msg: { type: 'volumes-result', id: 7, volumes: [] } }]);
    expect(steps[2]!.effects).toEqual([{ kind: 'reply', id: 8, msg: { type: 'volumes-removed', id: 8, removed: [], failed: [] } }]);
    // What version 1 has is asked as before.
    expect(steps[3]!.send).toEqual([{ type: 'observe', id: 9 }]);
    expect(v1(steps).every((d) => d.ok)).toBe(true);
  });

  it('a later session of a current agent on the same node gets everything again', () => {
    const steps = run([{ ...attached, protocol: 1 }, { kind: 'assignments', slots: withSecret, secrets }, { kind: 'detached' }, attached]);
    expect(steps[3]!.send[0]).toMatchObject({ type: 'assignments', full: true, secrets });
  });
});
