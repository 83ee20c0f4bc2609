import { describe, expect, it } from 'vitest';
import { planContainers, type ContainerPlanInput } from './planner.js';
import { freshSlotState, type SlotState } from './types.js';
import { aContainer, aSpec, slotsOf } from '../../test/builders.js';
import type { Action } from '../actions.js';

const NOW = Date.parse('2026-01-01T00:01:00.000Z');
const spec = aSpec({ replicas: 2 });
const desired = slotsOf(spec, 3);
const hash = desired[0]!.specHash;

function plan(over: Partial<ContainerPlanInput>) {
  let n = 0;
  return planContainers({
    service: 'web',
    desired,
    observed: [],
    slots: new Map(),
    now: NOW,
    newInstanceId: (s, rev, slot) => `${s}-${rev}-${slot}-new${n++}`,
    ...over,
  });
}

const kinds = (actions: Action[]) => actions.map((a) => `${a.kind}:${a.instance ?? a.key}`);
const slotState = (o: Partial<SlotState>, slot = 0): [number, SlotState] => [slot, { ...freshSlotState('web', slot), ...o }];

describe('planContainers', () => {
  it('creates every missing replica', () => {
    const p = plan({});
    expect(kinds(p.actions)).toEqual(['container.create:web-3-0-new0', 'container.create:web-3-1-new1']);
    expect(p.actions[0]).toMatchObject({ reason: 'missing-replica', slot: 0 });
  });

  it('does nothing when every slot runs the desired spec and the slot memory agrees', () => {
    const a = aContainer({ slot: 0, instance: 'a', specHash: hash });
    const b = aContainer({ slot: 1, instance: 'b', specHash: hash });
    const p = plan({ observed: [a, b], slots: new Map([slotState({ currentInstance: 'a' }), slotState({ currentInstance: 'b' }, 1)]) });
    expect(p.actions).toEqual([]);
  });

  it('adopts running containers it has no memory of, without touching them', () => {
    const a = aContainer({ slot: 0, instance: 'a', specHash: hash });
    const b = aContainer({ slot: 1, instance: 'b', specHash: hash });
    const p = plan({ observed: [a, b] });
    expect(p.actions.map((x) => x.kind)).toEqual(['slot.update', 'slot.update']);
    expect(p.actions.every((x) => x.reason === 'adopted')).toBe(true);
  });

  it('starts a container that was created but not started', () => {
    const a = aContainer({ slot: 0, instance: 'a', specHash: hash, status: 'created', startedAt: null });
    const p = plan({ desired: desired.slice(0, 1), observed: [a], slots: new Map([slotState({ currentInstance: 'a' })]) });
    expect(kinds(p.actions)).toEqual(['container.start:a']);
  });

  it('replaces a stale revision start-first: new one first, old one only once the new one runs', () => {
    const old = aContainer({ slot: 0, instance: 'old', specHash: 'old-hash' });
    const first = plan({ desired: desired.slice(0, 1), observed: [old], slots: new Map([slotState({ currentInstance: 'old' })]) });
    expect(kinds(first.actions)).toEqual(['container.create:web-3-0-new0']);
    expect(first.actions[0]).toMatchObject({ reason: 'new-revision' });

    const fresh = aContainer({ slot: 0, instance: 'web-3-0-new0', specHash: hash });
    const second = plan({ desired: desired.slice(0, 1), observed: [old, fresh], slots: new Map([slotState({ currentInstance: 'web-3-0-new0' })]) });
    expect(kinds(second.actions)).toEqual(['container.stop:old', 'container.remove:old']);
  });

  it('stop-first stops the old revision before creating the new one', () => {
    const s = aSpec({ deploy: { strategy: 'stop-first', readyTimeoutSecs: 60 } });
    const d = slotsOf(s, 2);
    const old = aContainer({ slot: 0, instance: 'old', specHash: 'old-hash' });
    const p = plan({ desired: d, observed: [old], slots: new Map([slotState({ currentInstance: 'old' })]) });
    expect(kinds(p.actions)).toEqual(['container.stop:old', 'container.remove:old', 'slot.update:old']);
    const started = p.actions[2]?.kind === 'slot.update' ? p.actions[2].slot : undefined;
    expect(started?.rollout).toEqual({ hash: d[0]!.specHash, startedAt: NOW });
    // Next look: the slot is empty, so the new instance is created.
    const next = plan({ desired: d, observed: [], slots: new Map([[0, started!]]) });
    expect(next.actions).toMatchObject([{ kind: 'container.create', reason: 'new-revision' }]);
  });

  it('replaces a crashed instance at once, counts the failure once, and keeps the corpse for logs', () => {
    const dead = aContainer({ slot: 0, instance: 'a', specHash: hash, status: 'exited', exitCode: 137 });
    const p = plan({ desired: desired.slice(0, 1), observed: [dead], slots: new Map([slotState({ currentInstance: 'a' })]) });
    expect(kinds(p.actions)).toEqual(['slot.update:a', 'container.create:web-3-0-new0']);
    const create = p.actions[1];
    expect(create?.kind === 'container.create' && create.slotAfter).toMatchObject({
      currentInstance: 'web-3-0-new0',
      restarts: 1,
      consecutiveFailures: 1,
      lastExit: { instance: 'a', code: 137, reason: 'exited' },
    });
  });

  it('heals exit code 0 under restart policy always', () => {
    const dead = aContainer({ slot: 0, instance: 'a', specHash: hash, status: 'exited', exitCode: 0 });
    const p = plan({ desired: desired.slice(0, 1), observed: [dead], slots: new Map([slotState({ currentInstance: 'a' })]) });
    expect(p.actions[0]).toMatchObject({ kind: 'slot.update', slot: { lastExit: { reason: 'completed', code: 0 } } });
    expect(p.actions[1]?.kind).toBe('container.create');
  });

  it('records OOM kills as such', () => {
    const dead = aContainer({ slot: 0, instance: 'a', specHash: hash, status: 'exited', exitCode: 137, oomKilled: true });
    const p = plan({ desired: desired.slice(0, 1), observed: [dead], slots: new Map([slotState({ currentInstance: 'a' })]) });
    expect(p.actions[0]).toMatchObject({ kind: 'slot.update', slot: { lastExit: { reason: 'oom-killed' } } });
  });

  it('corrects a plain exit to an OOM kill when the corpse shows it later (Docker sent the oom after the die), once', () => {
    const at = '2026-01-01T00:00:50.000Z';
    const failed = { handledInstance: 'a', consecutiveFailures: 1, lastExit: { instance: 'a', code: 137, reason: 'exited' as const, at } };
    // The replacement already runs; the corpse of the failed run is still there.
    const corpse = aContainer({ slot: 0, instance: 'a', specHash: hash, status: 'exited', exitCode: 137, oomKilled: true });
    const next = aContainer({ slot: 0, instance: 'b', specHash: hash });
    const slots = new Map([slotState({ ...failed, currentInstance: 'b' })]);
    const p = plan({ desired: desired.slice(0, 1), observed: [corpse, next], slots });
    expect(p.actions).toHaveLength(1);
    expect(p.actions[0]).toMatchObject({
      kind: 'slot.update',
      key: 'oom:a',
      instance: 'a',
      reason: expect.stringMatching(/^oom-killed/),
      message: expect.stringContaining('OOM-killed'),
      slot: { currentInstance: 'b', lastExit: { instance: 'a', code: 137, reason: 'oom-killed', at } },
    });
    // Applied, the slot memory agrees and nothing more is planned.
    const after = plan({ desired: desired.slice(0, 1), observed: [corpse, next], slots: new Map([[0, (p.actions[0] as { slot: SlotState }).slot]]) });
    expect(after.actions).toEqual([]);
  });

  it.each([
    ['the corpse shows no OOM kill', { oomKilled: false }, 'exited' as const],
    ['the exit was recorded otherwise (completed)', { oomKilled: true }, 'completed' as const],
    ['the corpse still runs (a restart in place)', { oomKilled: true, status: 'running' as const }, 'exited' as const],
  ])('leaves the last exit alone when %s', (_name, over, reason) => {
    const corpse = aContainer({ slot: 0, instance: 'a', specHash: hash, status: 'exited', exitCode: 137, ...over });
    const next = aContainer({ slot: 0, instance: 'b', specHash: hash });
    const slots = new Map([slotState({ currentInstance: 'b', handledInstance: 'a', lastExit: { instance: 'a', code: 137, reason, at: '2026-01-01T00:00:50.000Z' } })]);
    const p = plan({ desired: desired.slice(0, 1), observed: [corpse, next], slots });
    expect(p.actions.filter((a) => a.key.startsWith('oom:'))).toEqual([]);
  });

  it('recreates an instance removed behind its back', () => {
    const p = plan({ desired: desired.slice(0, 1), observed: [], slots: new Map([slotState({ currentInstance: 'gone' })]) });
    expect(p.actions[0]).toMatchObject({ kind: 'slot.update', slot: { lastExit: { instance: 'gone', reason: 'removed', code: null } } });
    expect(p.actions[1]).toMatchObject({ kind: 'container.create', reason: 'replace-after-removed' });
  });

  it('waits out the crash-loop backoff on a repeated failure, then replaces', () => {
    // The instance started 5 s before it died: well short of reset_after_secs.
    const dead = aContainer({
      slot: 0,
      instance: 'b',
      specHash: hash,
      status: 'exited',
      startedAt: new Date(NOW - 6000).toISOString(),
      finishedAt: new Date(NOW - 1000).toISOString(),
    });
    const slots = new Map([slotState({ currentInstance: 'b', consecutiveFailures: 2, restarts: 2, handledInstance: 'a' })]);
    const p = plan({ desired: desired.slice(0, 1), observed: [dead], slots });
    // Third failure in a row: 2 s backoff from the exit, 1 s of which has passed.
    expect(kinds(p.actions)).toEqual(['slot.update:b']);
    expect(p.actions[0]).toMatchObject({ slot: { nextRetryAt: NOW + 1000, consecutiveFailures: 3 } });
    expect(p.requeueAfterMs).toBe(1000);

    const after = p.actions[0]?.kind === 'slot.update' ? p.actions[0].slot : undefined;
    const later = plan({ desired: desired.slice(0, 1), observed: [dead], slots: new Map([[0, after!]]), now: NOW + 1000 });
    expect(kinds(later.actions)).toEqual(['container.create:web-3-0-new0']);
    expect(later.actions[0]?.kind === 'container.create' && later.actions[0].slotAfter.restarts).toBe(3);
  });

  it('resets the failure count once an instance has run for reset_after_secs', () => {
    const a = aContainer({ slot: 0, instance: 'a', specHash: hash, startedAt: new Date(NOW - 61_000).toISOString() });
    const p = plan({ desired: desired.slice(0, 1), observed: [a], slots: new Map([slotState({ currentInstance: 'a', consecutiveFailures: 4 })]) });
    expect(p.actions).toMatchObject([{ kind: 'slot.update', reason: 'ran-reset-after-secs-failure-count-reset', slot: { consecutiveFailures: 0 } }]);
  });

  it('under policy never reports the failure and replaces nothing', () => {
    const s = aSpec({ restart: { policy: 'never', backoffInitialSecs: 1, backoffMaxSecs: 60, resetAfterSecs: 60 } });
    const d = slotsOf(s, 1);
    const dead = aContainer({ slot: 0, instance: 'a', specHash: d[0]!.specHash, status: 'exited' });
    const p = plan({ desired: d, observed: [dead], slots: new Map([slotState({ currentInstance: 'a' })]) });
    expect(kinds(p.actions)).toEqual(['slot.update:a']);
    const after = p.actions[0]?.kind === 'slot.update' ? p.actions[0].slot : undefined;
    expect(plan({ desired: d, observed: [dead], slots: new Map([[0, after!]]) }).actions).toEqual([]);
  });

  it('stops and removes slots that are no longer desired (scale down)', () => {
    const a = aContainer({ slot: 0, instance: 'a', specHash: hash });
    const b = aContainer({ slot: 1, instance: 'b', specHash: hash });
    const p = plan({ desired: desired.slice(0, 1), observed: [a, b], slots: new Map([slotState({ currentInstance: 'a' })]) });
    expect(kinds(p.actions)).toEqual(['container.stop:b', 'container.remove:b']);
    expect(p.actions[0]).toMatchObject({ reason: 'scaled-down' });
  });

  it('removes everything of a deleted service, dead containers included', () => {
    const a = aContainer({ slot: 0, instance: 'a', specHash: hash });
    const dead = aContainer({ slot: 1, instance: 'd', specHash: hash, status: 'exited' });
    const p = plan({ desired: [], observed: [a, dead] });
    expect(kinds(p.actions)).toEqual(['container.stop:a', 'container.remove:a', 'container.remove:d']);
  });

  it('stops duplicates of a slot, keeping the newest running one', () => {
    const older = aContainer({ slot: 0, instance: 'older', specHash: hash, startedAt: '2026-01-01T00:00:00.000Z' });
    const newer = aContainer({ slot: 0, instance: 'newer', specHash: hash, startedAt: '2026-01-01T00:00:30.000Z' });
    const p = plan({ desired: desired.slice(0, 1), observed: [older, newer], slots: new Map([slotState({ currentInstance: 'newer' })]) });
    expect(kinds(p.actions)).toEqual(['container.stop:older', 'container.remove:older']);
  });

  it('keeps only the latest exited container per slot', () => {
    const live = aContainer({ slot: 0, instance: 'live', specHash: hash });
    const d1 = aContainer({ slot: 0, instance: 'd1', specHash: hash, status: 'exited', finishedAt: '2026-01-01T00:00:10.000Z' });
    const d2 = aContainer({ slot: 0, instance: 'd2', specHash: hash, status: 'exited', finishedAt: '2026-01-01T00:00:20.000Z' });
    const p = plan({ desired: desired.slice(0, 1), observed: [d1, live, d2], slots: new Map([slotState({ currentInstance: 'live' })]) });
    expect(kinds(p.actions)).toEqual(['container.remove:d1']);
  });

  it('ignores containers of other services', () => {
    const other = aContainer({ service: 'api', slot: 0, instance: 'x', specHash: hash });
    const p = plan({ desired: [], observed: [other] });
    expect(p.actions).toEqual([]);
  });
});

describe('planContainers: lifecycle verdicts and pre-assigned replacements', () => {
  it('stops a condemned instance, counts the failure with the lifecycle reason, and replaces it at once', () => {
    const a = aContainer({ slot: 0, instance: 'a', specHash: hash });
    const p = plan({
      desired: desired.slice(0, 1),
      observed: [a],
      slots: new Map([slotState({ currentInstance: 'a' })]),
      condemned: new Map([['a', 'liveness']]),
    });
    expect(kinds(p.actions)).toEqual(['container.stop:a', 'slot.update:a', 'container.create:web-3-0-new0']);
    expect(p.actions[1]).toMatchObject({ slot: { lastExit: { instance: 'a', reason: 'liveness' }, consecutiveFailures: 1 } });
    expect(p.actions[2]).toMatchObject({ reason: 'replace-after-liveness' });
  });

  it('names the replacement when it must wait, and creates exactly that instance later', () => {
    const dead = aContainer({
      slot: 0,
      instance: 'b',
      specHash: hash,
      status: 'exited',
      startedAt: new Date(NOW - 2000).toISOString(),
      finishedAt: new Date(NOW).toISOString(),
    });
    const p = plan({ desired: desired.slice(0, 1), observed: [dead], slots: new Map([slotState({ currentInstance: 'b', consecutiveFailures: 1, handledInstance: 'a' })]) });
    const waiting = p.actions[0]?.kind === 'slot.update' ? p.actions[0].slot : undefined;
    expect(waiting).toMatchObject({ nextRetryAt: NOW + 1000, nextInstance: 'web-3-0-new0' });
    const later = plan({ desired: desired.slice(0, 1), observed: [dead], slots: new Map([[0, waiting!]]), now: NOW + 1000 });
    expect(kinds(later.actions)).toEqual(['container.create:web-3-0-new0']);
    expect(later.actions[0]?.kind === 'container.create' && later.actions[0].slotAfter.nextInstance).toBe(null);
  });
});

describe('planContainers: rollouts', () => {
  const s3 = aSpec({ replicas: 3, deploy: { strategy: 'start-first', readyTimeoutSecs: 60 } });
  const d3 = slotsOf(s3, 2);
  const h3 = d3[0]!.specHash;
  const olds = [0, 1, 2].map((slot) => aContainer({ slot, instance: `old${slot}`, specHash: 'old-hash' }));
  const oldSlots = () => new Map([0, 1, 2].map((i) => slotState({ currentInstance: `old${i}` }, i)));

  it('moves one slot at a time (a surge of one)', () => {
    const p = plan({ desired: d3, observed: olds, slots: oldSlots(), ready: new Set(['old0', 'old1', 'old2']) });
    expect(kinds(p.actions)).toEqual(['container.create:web-2-0-new0']);
    expect(p.actions[0]).toMatchObject({ reason: 'new-revision', slotAfter: { rollout: { hash: h3, startedAt: NOW } } });
  });

  it('waits for the new instance to be ready before retiring the old one or moving on', () => {
    const fresh = aContainer({ slot: 0, instance: 'new0', specHash: h3 });
    const slots = oldSlots();
    slots.set(0, { ...freshSlotState('web', 0), currentInstance: 'new0', rollout: { hash: h3, startedAt: NOW - 1000 } });
    const notReady = plan({ desired: d3, observed: [...olds, fresh], slots, ready: new Set(['old0', 'old1', 'old2']) });
    expect(notReady.actions).toEqual([]);
    expect(notReady.requeueAfterMs).toBe(59_000); // the rollout deadline

    const ready = plan({ desired: d3, observed: [...olds, fresh], slots, ready: new Set(['old0', 'old1', 'old2', 'new0']) });
    expect(kinds(ready.actions)).toEqual(['container.stop:old0', 'container.remove:old0', 'slot.update:new0', 'container.create:web-2-1-new0']);
  });

  it('halts at ready_timeout_secs: the new instance goes, the old ones keep serving, no further slot moves', () => {
    const fresh = aContainer({ slot: 0, instance: 'new0', specHash: h3 });
    const slots = oldSlots();
    slots.set(0, { ...freshSlotState('web', 0), currentInstance: 'new0', rollout: { hash: h3, startedAt: NOW - 60_000 } });
    const p = plan({ desired: d3, observed: [...olds, fresh], slots, ready: new Set(['old0', 'old1', 'old2']) });
    expect(kinds(p.actions)).toEqual(['container.stop:new0', 'container.remove:new0', 'rollout.halt:new0']);
    const halt = p.actions[2];
    expect(halt?.kind === 'rollout.halt' && halt.slot.rolloutFailed).toMatchObject({ hash: h3, reason: expect.stringContaining('ready_timeout_secs = 60') });

    // Afterwards: nothing moves, the old ones are untouched.
    const halted = new Map(slots);
    halted.set(0, halt?.kind === 'rollout.halt' ? halt.slot : slots.get(0)!);
    const after = plan({ desired: d3, observed: olds, slots: halted, ready: new Set(['old0', 'old1', 'old2']) });
    expect(after.actions.filter((a) => a.kind !== 'slot.update')).toEqual([]);

    // A new spec clears the halt and moves again.
    const s4 = aSpec({ ...s3, env: { V: '4' } });
    const d4 = slotsOf(s4, 3);
    const again = plan({ desired: d4, observed: olds, slots: halted, ready: new Set(['old0', 'old1', 'old2']) });
    expect(again.actions.some((a) => a.kind === 'container.create')).toBe(true);
  });

  it('heals an empty slot at once even while a rollout is moving another', () => {
    const fresh = aContainer({ slot: 0, instance: 'new0', specHash: h3 });
    const slots = oldSlots();
    slots.set(0, { ...freshSlotState('web', 0), currentInstance: 'new0', rollout: { hash: h3, startedAt: NOW - 1000 } });
    slots.set(2, { ...freshSlotState('web', 2), currentInstance: 'gone2' });
    const p = plan({ desired: d3, observed: [...olds.slice(0, 2), fresh], slots, ready: new Set(['old0', 'old1']) });
    expect(p.actions.filter((a) => a.kind === 'container.create').map((a) => a.kind === 'container.create' && a.slot)).toEqual([2]);
  });

  it('a crashing new instance during a rollout waits out its backoff', () => {
    const dead = aContainer({ slot: 0, instance: 'new0', specHash: h3, status: 'exited', startedAt: new Date(NOW - 2000).toISOString(), finishedAt: new Date(NOW).toISOString() });
    const slots = oldSlots();
    slots.set(0, { ...freshSlotState('web', 0), currentInstance: 'new0', consecutiveFailures: 1, handledInstance: 'x', rollout: { hash: h3, startedAt: NOW - 5000 } });
    const p = plan({ desired: d3, observed: [...olds, dead], slots, ready: new Set(['old0', 'old1', 'old2']) });
    expect(kinds(p.actions)).toEqual(['slot.update:new0']);
    expect(p.requeueAfterMs).toBe(1000);
    const waiting = p.actions[0]?.kind === 'slot.update' ? p.actions[0].slot : undefined;
    const later = plan({ desired: d3, observed: [...olds, dead], slots: new Map([...slots, [0, waiting!]]), ready: new Set(['old0', 'old1', 'old2']), now: NOW + 1000 });
    expect(later.actions).toMatchObject([{ kind: 'container.create', slot: 0, reason: 'replace-after-exited' }]);
  });
});

describe('planContainers as a table: one slot, what is observed → what is planned', () => {
  const one = desired.slice(0, 1);
  const memory = (o: Partial<SlotState> = {}) => new Map([slotState({ currentInstance: 'a', ...o })]);
  const running = (o: Parameters<typeof aContainer>[0] = {}) => aContainer({ slot: 0, instance: 'a', specHash: hash, ...o });
  it.each<[string, Partial<ContainerPlanInput>, string[]]>([
    ['nothing observed, nothing remembered', { observed: [] }, ['container.create:missing-replica']],
    ['running and remembered', { observed: [running()], slots: memory() }, []],
    ['running, not remembered: adopted', { observed: [running()] }, ['slot.update:adopted']],
    ['created, not started', { observed: [running({ status: 'created', startedAt: null })], slots: memory() }, ['container.start:created-not-started']],
    ['exited (code 1): failure counted, replaced at once', { observed: [running({ status: 'exited', exitCode: 1 })], slots: memory() }, ['slot.update:exited; first-failure-restart-now', 'container.create:replace-after-exited']],
    ['gone: counted as removed, replaced', { observed: [], slots: memory() }, ['slot.update:removed; first-failure-restart-now', 'container.create:replace-after-removed']],
    ['condemned by liveness', { observed: [running()], slots: memory(), condemned: new Map([['a', 'liveness' as const]]) }, ['container.stop:liveness', 'slot.update:liveness; first-failure-restart-now', 'container.create:replace-after-liveness']],
    ['an old spec, ready: start-first creates the new one beside it', { observed: [running({ specHash: 'old' })], slots: memory() }, ['container.create:new-revision']],
    ['an old spec and a ready new one: the old one goes', { observed: [running({ specHash: 'old' }), running({ instance: 'b' })], slots: memory({ currentInstance: 'b', rollout: { hash, startedAt: NOW } }) }, ['container.stop:replaced-by-new-revision', 'container.remove:replaced-by-new-revision', 'slot.update:rollout-slot-done']],
    ['an old spec and a new one not ready yet: wait', { observed: [running({ specHash: 'old' }), running({ instance: 'b' })], slots: memory({ currentInstance: 'b', rollout: { hash, startedAt: NOW } }), ready: new Set(['a']) }, []],
    ['a duplicate of the desired spec', { observed: [running(), running({ instance: 'b', startedAt: '2025-12-31T00:00:00.000Z' })], slots: memory() }, ['container.stop:duplicate-instance', 'container.remove:duplicate-instance']],
  ])('%s', (_name, over, expected) => {
    const p = plan({ desired: one, ...over });
    expect(p.actions.map((a) => `${a.kind}:${a.reason}`)).toEqual(expected);
  });
});
