import { describe, expect, it } from 'vitest';
import { createActor, transition } from 'xstate';
import { getShortestPaths, getSimplePaths, type StatePath } from '@xstate/graph';
import { ManualClock } from '../../core/clock.js';
import {
  TIMER_EVENTS,
  condemnedFor,
  instanceMachine,
  isReady,
  stateName,
  type InstanceEvent,
  type InstanceInput,
  type InstanceSnapshot,
} from './machine.js';
import { xstateClock } from './tracker.js';

const T0 = 1_000_000;
const START_TIMEOUT_MS = 1_000;
const BACKOFF_UNTIL = T0 + 5_000;

const input = (over: Partial<InstanceInput> = {}): InstanceInput => ({
  instance: 'web-r1-0-abc',
  service: 'web',
  slot: 0,
  startTimeoutMs: START_TIMEOUT_MS,
  readyOnStart: false,
  now: T0,
  ...over,
});

/** Every event with payload variants; times follow the model state so the clock only moves forward. */
function modelEvents(s: InstanceSnapshot): InstanceEvent[] {
  const c = s.context;
  const at = c.stateSince + 10;
  return [
    { type: 'CREATE', at },
    { type: 'CREATED', containerId: 'c-1', at },
    { type: 'CREATE_FAILED', error: 'no such image', at },
    { type: 'STARTED', at },
    { type: 'READY', at },
    { type: 'UNREADY', at },
    { type: 'STOP', reason: 'scaled-down', at },
    { type: 'CONDEMN', reason: 'liveness', at },
    { type: 'CONDEMN', reason: 'unhealthy', at },
    { type: 'EXITED', code: 0, oomKilled: false, at },
    { type: 'EXITED', code: 1, oomKilled: false, at, error: 'boom' },
    { type: 'EXITED', code: 137, oomKilled: true, at },
    { type: 'VANISHED', at },
    { type: 'REMOVED', at },
    // The machine's own timer, walked like an event so the paths through exited.condemned are too.
    ...(s.matches('starting') ? [{ type: TIMER_EVENTS.startTimeout } as never as InstanceEvent] : []),
  ];
}

const INPUTS: Array<[string, InstanceInput]> = [
  ['fresh, probed', input()],
  ['fresh, ready on start', input({ readyOnStart: true })],
  ['in backoff, probed', input({ backoffUntil: BACKOFF_UNTIL })],
  ['in backoff, ready on start', input({ backoffUntil: BACKOFF_UNTIL, readyOnStart: true })],
];

type Path = StatePath<InstanceSnapshot, InstanceEvent>;

/**
 * Simple paths (every acyclic walk) plus, for every edge of the state graph, the shortest
 * path to its source followed by that edge (so back-edges such as UNREADY are walked too).
 */
function pathsFor(i: InstanceInput): Path[] {
  const opts = { events: modelEvents, input: i };
  const shortest = getShortestPaths(instanceMachine, opts);
  const edges = shortest.flatMap((p) =>
    modelEvents(p.state)
      .filter((e) => p.state.can(e))
      .map((e): Path => {
        const [next] = transition(instanceMachine, p.state, e);
        return { state: next, steps: [...p.steps, { event: e, state: next }], weight: p.weight + 1 };
      }),
  );
  const all = [...shortest, ...getSimplePaths(instanceMachine, opts), ...edges];
  const seen = new Set<string>();
  return all.filter((p) => {
    const key = JSON.stringify(p.steps.map((s) => s.event));
    return seen.has(key) ? false : (seen.add(key), true);
  });
}

const describePath = (p: Path) => p.steps.map((s) => s.event.type.replace('xstate.after.', 'after:')).join(' → ');

/** What must hold in every resting state, on the snapshot and (when given) on the clock. */
function checkInvariants(s: InstanceSnapshot, clock?: ManualClock): void {
  const name = stateName(s);
  const c = s.context;
  if (name === 'starting' || name === 'running' || name === 'stopping') expect(c.containerId).not.toBeNull();
  if (name === 'pending' || name === 'crashloop' || name === 'creating') expect(c.containerId).toBeNull();
  expect(c.exit !== null).toBe(name === 'exited' || name === 'removed');
  expect(c.backoffUntil !== null).toBe(name === 'crashloop');
  if (isReady(s)) expect([name, s.value, c.exit, c.containerId !== null]).toEqual(['running', { running: 'ready' }, null, true]);
  if (name === 'running') expect(isReady(s)).toBe(JSON.stringify(s.value) === '{"running":"ready"}');
  if (c.exit?.reason === 'create-failed') expect([c.containerId, typeof c.lastError]).toEqual([null, 'string']);
  if (name === 'exited' && c.exit?.reason === 'start-timeout') expect(c.exit.at).toBe(c.stateSince);
  // Tags: routable exactly in running.ready; condemned exactly in the two condemned substates,
  // with the reason recorded exactly then (a start timeout's is its exit reason).
  expect(s.hasTag('routable')).toBe(JSON.stringify(s.value) === '{"running":"ready"}');
  const condemnedValue = ['{"stopping":"condemned"}', '{"exited":"condemned"}'].includes(JSON.stringify(s.value));
  expect(s.hasTag('condemned')).toBe(condemnedValue);
  expect(c.condemnedFor !== null).toBe(condemnedValue);
  expect(condemnedFor(s)).toBe(c.condemnedFor);
  if (JSON.stringify(s.value) === '{"exited":"condemned"}') expect([c.condemnedFor, c.exit?.reason]).toEqual(['start-timeout', 'start-timeout']);
  if (JSON.stringify(s.value) === '{"stopping":"condemned"}') expect(['liveness', 'unhealthy']).toContain(c.condemnedFor);
  expect(s.status).toBe(name === 'removed' ? 'done' : 'active');
  // The start timeout is the machine's only timer; the crash-loop delay is the planner's.
  if (clock) expect(clock.pending()).toBe(name === 'starting' ? 1 : 0);
}

/**
 * Replays a model path on a real actor driven by a ManualClock, checking each step against the
 * model; returns the actor (started, at the path's end) and its clock.
 */
function runPath(path: Path, i: InstanceInput) {
  const clock = new ManualClock(i.now);
  const actor = createActor(instanceMachine, { input: i, clock: xstateClock(clock) });
  actor.start();
  for (const step of path.steps) {
    const ev = step.event;
    const type: string = ev.type;
    const before = actor.getSnapshot();
    if (type === TIMER_EVENTS.startTimeout) {
      const due = before.context.stateSince + before.context.startTimeoutMs;
      clock.advance(due - 1 - clock.now());
      expect(actor.getSnapshot()).toBe(before); // not a millisecond early
      clock.advance(1);
    } else if (type !== 'xstate.init') {
      clock.advance(Math.max(0, ev.at - clock.now()));
      actor.send(ev);
    }
    const now = actor.getSnapshot();
    expect({ value: now.value, context: now.context }).toEqual({ value: step.state.value, context: step.state.context });
    checkInvariants(now, clock);
  }
  return { actor, clock };
}

describe('instance machine, model-based', () => {
  for (const [name, i] of INPUTS) {
    describe(name, () => {
      const paths = pathsFor(i);

      it('reaches every state the input allows', () => {
        const names = new Set(paths.map((p) => stateName(p.state)));
        const expected = ['creating', 'starting', 'running', 'stopping', 'exited', 'removed'];
        // A replacement in backoff leaves it only by CREATE (or STOP): it never rests in pending.
        expect([...names].sort()).toEqual([...expected, i.backoffUntil ? 'crashloop' : 'pending'].sort());
        const values = new Set(paths.map((p) => JSON.stringify(p.state.value)));
        expect(values).toContain(JSON.stringify({ running: 'ready' }));
        expect(values).toContain(JSON.stringify({ running: 'unready' }));
        expect(values).toContain(JSON.stringify({ stopping: 'condemned' }));
        expect(values).toContain(JSON.stringify({ exited: 'condemned' }));
      });

      it('takes every transition of every state it reaches', () => {
        const taken = new Set<string>();
        const offered = new Set<string>();
        for (const p of paths) {
          p.steps.forEach((step, k) => {
            const prev = k > 0 ? p.steps[k - 1]?.state : undefined;
            if (!prev) return;
            taken.add(`${JSON.stringify(prev.value)} ${step.event.type}`);
          });
          for (const step of p.steps) {
            for (const ev of modelEvents(step.state)) {
              if (step.state.can(ev)) offered.add(`${JSON.stringify(step.state.value)} ${ev.type}`);
            }
          }
        }
        for (const edge of offered) expect(taken).toContain(edge);
      });

      it.each(paths.map((p) => [describePath(p), p] as const))('%s', (_d, p) => {
        runPath(p, i);
      });
    });
  }
});

/** Legal events per resting state; everything else must be ignored. */
const LEGAL: Record<string, string[]> = {
  '"backoff"': ['CREATE', 'STOP'],
  '"pending"': ['CREATE', 'STOP'],
  '"creating"': ['CREATED', 'CREATE_FAILED'],
  '"starting"': ['STARTED', 'STOP', 'CONDEMN', 'EXITED', 'VANISHED', TIMER_EVENTS.startTimeout],
  '{"running":"unready"}': ['READY', 'STOP', 'CONDEMN', 'EXITED', 'VANISHED'],
  '{"running":"ready"}': ['UNREADY', 'STOP', 'CONDEMN', 'EXITED', 'VANISHED'],
  '{"stopping":"asked"}': ['EXITED', 'VANISHED', 'REMOVED'],
  '{"stopping":"condemned"}': ['EXITED', 'VANISHED', 'REMOVED'],
  '{"exited":"ended"}': ['REMOVED'],
  '{"exited":"condemned"}': ['REMOVED'],
  '"removed"': [],
};

describe('illegal events', () => {
  // One shortest path to each resting state, from a fresh instance or (for backoff) a replacement.
  const reps = new Map<string, { p: Path; i: InstanceInput }>();
  for (const [, i] of INPUTS.filter(([n]) => n === 'fresh, probed' || n === 'in backoff, probed')) {
    for (const p of getShortestPaths(instanceMachine, { events: modelEvents, input: i })) {
      const key = JSON.stringify(p.state.value);
      if (!reps.has(key) || reps.get(key)!.p.steps.length > p.steps.length) reps.set(key, { p, i });
    }
  }

  it('covers every resting state', () => expect([...reps.keys()].sort()).toEqual(Object.keys(LEGAL).sort()));

  it.each(Object.entries(LEGAL))('in %s only %j are accepted; the rest change nothing', (value, legal) => {
    const { p, i } = reps.get(value)!;
    const s = p.state;
    const accepted = new Set(modelEvents(s).filter((e) => s.can(e)).map((e) => e.type));
    expect([...accepted].sort()).toEqual([...legal].sort());

    const illegal = modelEvents(s).filter((e) => !legal.includes(e.type));
    for (const ev of illegal) expect(transition(instanceMachine, s, ev)[0]).toBe(s);
    if (s.status !== 'active') return; // a final actor drops (and xstate warns about) every event
    const { actor } = runPath(p, i);
    for (const ev of illegal) {
      const before = actor.getSnapshot();
      actor.send(ev);
      expect(actor.getSnapshot()).toBe(before);
    }
    expect({ value: actor.getSnapshot().value, context: actor.getSnapshot().context }).toEqual({ value: s.value, context: s.context });
  });
});

describe('timers on a ManualClock', () => {
  const start = (i: InstanceInput) => {
    const clock = new ManualClock(i.now);
    const actor = createActor(instanceMachine, { input: i, clock: xstateClock(clock) });
    actor.start();
    return { clock, actor, name: () => stateName(actor.getSnapshot()) };
  };

  it('backoff has no timer: it shows crashloop until the replacement is created', () => {
    const { clock, actor, name } = start(input({ backoffUntil: BACKOFF_UNTIL }));
    expect(name()).toBe('crashloop');
    expect(actor.getSnapshot().context.backoffUntil).toBe(BACKOFF_UNTIL);
    expect(clock.pending()).toBe(0);
    clock.advance(BACKOFF_UNTIL - T0 + 60_000);
    expect(name()).toBe('crashloop');
    actor.send({ type: 'CREATE', at: BACKOFF_UNTIL + 60_000 });
    expect(name()).toBe('creating');
    expect(actor.getSnapshot().context).toMatchObject({ backoffUntil: null, stateSince: BACKOFF_UNTIL + 60_000 });
  });

  it('a backoff already over (or absent) starts pending with no timer', () => {
    for (const backoffUntil of [T0, T0 - 1, null, undefined]) {
      const { clock, name } = start(input({ backoffUntil }));
      expect(name()).toBe('pending');
      expect(clock.pending()).toBe(0);
    }
  });

  it('start timeout fires startTimeoutMs after CREATED and records the exit', () => {
    const { clock, actor, name } = start(input());
    actor.send({ type: 'CREATE', at: T0 });
    clock.advance(50);
    actor.send({ type: 'CREATED', containerId: 'c-1', at: T0 + 50 });
    clock.advance(START_TIMEOUT_MS - 1);
    expect(name()).toBe('starting');
    clock.advance(1);
    expect(name()).toBe('exited');
    expect(actor.getSnapshot().context.exit).toEqual({ code: null, reason: 'start-timeout', at: T0 + 50 + START_TIMEOUT_MS });
  });

  it('STARTED cancels the start timeout; readyOnStart goes straight to ready', () => {
    for (const readyOnStart of [false, true]) {
      const { clock, actor } = start(input({ readyOnStart }));
      actor.send({ type: 'CREATE', at: T0 });
      actor.send({ type: 'CREATED', containerId: 'c-1', at: T0 });
      actor.send({ type: 'STARTED', at: T0 + 5 });
      expect(clock.pending()).toBe(0);
      expect(actor.getSnapshot().value).toEqual({ running: readyOnStart ? 'ready' : 'unready' });
      expect(isReady(actor.getSnapshot())).toBe(readyOnStart);
    }
  });

  it.each([
    [{ code: 0, oomKilled: false }, 'completed'],
    [{ code: 2, oomKilled: false }, 'exited'],
    [{ code: 137, oomKilled: true }, 'oom-killed'],
    [{ code: null, oomKilled: false }, 'exited'],
  ] as const)('EXITED %j while running records %s', (exit, reason) => {
    const { actor } = start(input({ readyOnStart: true }));
    actor.send({ type: 'CREATE', at: T0 });
    actor.send({ type: 'CREATED', containerId: 'c-1', at: T0 });
    actor.send({ type: 'STARTED', at: T0 });
    actor.send({ type: 'EXITED', ...exit, at: T0 + 9 });
    expect(actor.getSnapshot().context.exit).toEqual({ code: exit.code, reason, at: T0 + 9 });
  });
});
