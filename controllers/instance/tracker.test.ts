import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ManualClock } from '../../core/clock.js';
import type { InstanceStateName } from './machine.js';
import type { ObservedInstance } from './sync.js';
import { InstanceTracker, type InstanceEventInput } from './tracker.js';

const T0 = 1_000_000;
const ID = 'web-r1-0-abc';
const base = { instance: ID, service: 'web', slot: 0, startTimeoutMs: 1_000, readyOnStart: false };

function setup() {
  const clock = new ManualClock(T0);
  const tracker = new InstanceTracker(clock);
  const seen: Array<[string, InstanceStateName, boolean]> = [];
  tracker.subscribe((i, s, r) => seen.push([i, s, r]));
  return { clock, tracker, seen };
}

/** Everything the tracker shows of its instances (state, readiness, context), as text to compare. */
const shown = (tracker: InstanceTracker) => JSON.stringify(tracker.list());

/** Events that bring a freshly tracked instance to each state. */
const TO: Record<Exclude<InstanceStateName, 'crashloop'>, InstanceEventInput[]> = {
  pending: [],
  creating: [{ type: 'CREATE' }],
  starting: [{ type: 'CREATE' }, { type: 'CREATED', containerId: 'c-1' }],
  running: [{ type: 'CREATE' }, { type: 'CREATED', containerId: 'c-1' }, { type: 'STARTED' }],
  stopping: [{ type: 'CREATE' }, { type: 'CREATED', containerId: 'c-1' }, { type: 'STARTED' }, { type: 'STOP', reason: 'scaled-down' }],
  exited: [{ type: 'CREATE' }, { type: 'CREATED', containerId: 'c-1' }, { type: 'STARTED' }, { type: 'EXITED', code: 1, oomKilled: false }],
  removed: [{ type: 'CREATE' }, { type: 'CREATED', containerId: 'c-1' }, { type: 'STOP', reason: 'scaled-down' }, { type: 'REMOVED' }],
};

function trackedIn(state: InstanceStateName) {
  const t = setup();
  if (state === 'crashloop') t.tracker.track({ ...base, backoffUntil: T0 + 5_000 });
  else {
    t.tracker.track(base);
    for (const e of TO[state]) t.tracker.send(ID, e);
  }
  expect(t.tracker.state(ID)).toBe(state);
  return t;
}

const obs = (status: ObservedInstance['status'], more: Partial<ObservedInstance> = {}): ObservedInstance => ({
  status,
  exitCode: null,
  oomKilled: false,
  at: T0 + 500,
  ...more,
});

describe('InstanceTracker.syncFromObserved', () => {
  const id = { containerId: 'c-1' };
  it.each<[InstanceStateName, ObservedInstance, string[], InstanceStateName, string | null]>([
    // tracker   observed                                  events sent                          ends in     exit reason
    ['pending', obs('missing'), [], 'pending', null],
    ['pending', obs('running'), [], 'pending', null], // cannot adopt without the container id
    ['pending', obs('running', id), ['CREATE', 'CREATED', 'STARTED'], 'running', null],
    ['pending', obs('exited', { ...id, exitCode: 3 }), ['CREATE', 'CREATED', 'EXITED'], 'exited', 'exited'],
    ['creating', obs('missing'), [], 'creating', null],
    ['creating', obs('created', id), ['CREATED'], 'starting', null],
    ['starting', obs('created'), [], 'starting', null],
    ['starting', obs('restarting'), [], 'starting', null],
    ['starting', obs('running'), ['STARTED'], 'running', null],
    ['starting', obs('paused'), ['STARTED'], 'running', null],
    ['starting', obs('exited', { exitCode: 1 }), ['EXITED'], 'exited', 'exited'],
    ['starting', obs('missing'), ['VANISHED', 'REMOVED'], 'removed', 'removed'],
    ['running', obs('running'), [], 'running', null],
    ['running', obs('removing'), [], 'running', null],
    ['running', obs('exited', { exitCode: 0 }), ['EXITED'], 'exited', 'completed'],
    ['running', obs('dead', { exitCode: 137, oomKilled: true }), ['EXITED'], 'exited', 'oom-killed'],
    ['running', obs('missing'), ['VANISHED', 'REMOVED'], 'removed', 'removed'],
    ['stopping', obs('running'), [], 'stopping', null],
    ['stopping', obs('exited', { exitCode: 143 }), ['EXITED'], 'exited', 'stopped'],
    ['stopping', obs('missing'), ['REMOVED'], 'removed', 'stopped'],
    ['exited', obs('exited', { exitCode: 1 }), [], 'exited', 'exited'],
    ['exited', obs('running'), [], 'exited', 'exited'], // one-shot: the planner replaces it
    ['exited', obs('missing'), ['REMOVED'], 'removed', 'exited'],
    ['crashloop', obs('missing'), [], 'crashloop', null],
    ['crashloop', obs('running', id), [], 'crashloop', null],
    ['removed', obs('running', id), [], 'removed', 'stopped'],
  ])('%s + Docker %j → %j, ends %s (%s)', (from, observed, events, to, reason) => {
    const { tracker } = trackedIn(from);
    expect(tracker.syncFromObserved(ID, observed).map((e) => e.type)).toEqual(events);
    expect(tracker.state(ID)).toBe(to);
    expect(tracker.context(ID)?.exit?.reason ?? null).toBe(reason);
    // Level-triggered and idempotent: the same observation again changes nothing.
    const before = shown(tracker);
    expect(tracker.syncFromObserved(ID, observed)).toEqual([]);
    expect(shown(tracker)).toBe(before);
  });

  it('uses the observation time and Docker error in the events it sends', () => {
    const { tracker } = trackedIn('running');
    tracker.syncFromObserved(ID, obs('exited', { exitCode: 1, at: T0 + 42, error: 'port is already allocated' }));
    expect(tracker.context(ID)).toMatchObject({
      exit: { code: 1, reason: 'exited', at: T0 + 42 },
      lastError: 'port is already allocated',
      stateSince: T0 + 42,
    });
  });

  it('unknown instances are left alone', () => {
    const { tracker } = setup();
    expect(tracker.syncFromObserved('nope', obs('running', { containerId: 'c' }))).toEqual([]);
    expect(tracker.send('nope', { type: 'CREATE' })).toBeUndefined();
    expect(tracker.state('nope')).toBeUndefined();
  });

  it('is idempotent from any reachable state for any observation (property)', () => {
    const event = fc.constantFrom<InstanceEventInput>(
      { type: 'CREATE' },
      { type: 'CREATED', containerId: 'c-1' },
      { type: 'CREATE_FAILED', error: 'e' },
      { type: 'STARTED' },
      { type: 'READY' },
      { type: 'UNREADY' },
      { type: 'STOP', reason: 'r' },
      { type: 'EXITED', code: 1, oomKilled: false },
      { type: 'VANISHED' },
      { type: 'REMOVED' },
    );
    const observed = fc.record({
      status: fc.constantFrom<ObservedInstance['status']>('created', 'running', 'paused', 'restarting', 'removing', 'exited', 'dead', 'missing'),
      exitCode: fc.option(fc.integer({ min: 0, max: 255 })),
      oomKilled: fc.boolean(),
      at: fc.integer({ min: T0, max: T0 + 10_000 }),
      containerId: fc.option(fc.constant('c-1'), { nil: undefined }),
    });
    fc.assert(
      fc.property(fc.boolean(), fc.array(event, { maxLength: 8 }), observed, (backoff, events, o) => {
        const { tracker } = setup();
        tracker.track({ ...base, backoffUntil: backoff ? T0 + 5_000 : null });
        for (const e of events) tracker.send(ID, e);
        tracker.syncFromObserved(ID, o);
        const once = shown(tracker);
        expect(tracker.syncFromObserved(ID, o)).toEqual([]);
        expect(shown(tracker)).toBe(once);
      }),
    );
  });
});

describe('InstanceTracker notifications', () => {
  it('fires (instance, state, ready) on every shown change, and only then', () => {
    const { tracker, seen } = setup();
    tracker.track(base);
    for (const e of [
      { type: 'CREATE' },
      { type: 'STARTED' }, // illegal in creating: no change, no notification
      { type: 'CREATED', containerId: 'c-1' },
      { type: 'STARTED' },
      { type: 'READY' },
      { type: 'READY' }, // already ready
      { type: 'UNREADY' },
      { type: 'STOP', reason: 'scaled-down' },
      { type: 'EXITED', code: 143, oomKilled: false },
      { type: 'REMOVED' },
      { type: 'CREATE' }, // final: ignored
    ] as InstanceEventInput[]) {
      tracker.send(ID, e);
    }
    expect(seen).toEqual([
      [ID, 'pending', false],
      [ID, 'creating', false],
      [ID, 'starting', false],
      [ID, 'running', false],
      [ID, 'running', true],
      [ID, 'running', false],
      [ID, 'stopping', false],
      [ID, 'exited', false],
      [ID, 'removed', false],
    ]);
  });

  it('fires when a timer moves the instance, on the injected clock', () => {
    const { clock, tracker, seen } = setup();
    tracker.track(base);
    for (const e of TO.starting) tracker.send(ID, e);
    clock.advance(999);
    expect(seen.at(-1)).toEqual([ID, 'starting', false]);
    clock.advance(1);
    expect(seen.at(-1)).toEqual([ID, 'exited', false]);
  });

  it('a replacement in backoff stays crashloop past its backoff until it is created', () => {
    const { clock, tracker, seen } = setup();
    expect(tracker.track({ ...base, backoffUntil: T0 + 2_000 })).toBe('crashloop');
    clock.advance(10_000);
    expect(seen).toEqual([[ID, 'crashloop', false]]);
    expect(tracker.send(ID, { type: 'CREATE' })).toBe('creating');
    expect(tracker.context(ID)).toMatchObject({ backoffUntil: null, stateSince: T0 + 10_000 });
  });

  it('track is idempotent; unsubscribe stops notifications; forget stops timers silently', () => {
    const { clock, tracker, seen } = setup();
    const off = tracker.subscribe(() => {
      throw new Error('unsubscribed listener called');
    });
    off();
    tracker.track({ ...base, backoffUntil: T0 + 2_000 });
    expect(tracker.track(base)).toBe('crashloop');
    expect(seen).toHaveLength(1);
    tracker.send(ID, { type: 'CREATE' });
    tracker.send(ID, { type: 'CREATED', containerId: 'c-1' });
    expect(clock.pending()).toBe(1); // the start timeout
    expect(seen).toHaveLength(3);
    tracker.forget(ID);
    expect(clock.pending()).toBe(0);
    clock.advance(5_000);
    expect(seen).toHaveLength(3);
    expect(tracker.list()).toEqual([]);
  });

  it('stamps events with the clock when at is left out', () => {
    const { clock, tracker } = setup();
    tracker.track(base);
    clock.advance(250);
    tracker.send(ID, { type: 'CREATE' });
    expect(tracker.context(ID)?.stateSince).toBe(T0 + 250);
  });

  it('lists every instance with state, readiness and context', () => {
    const { tracker } = setup();
    tracker.track({ ...base, readyOnStart: true });
    tracker.track({ ...base, instance: 'web-r1-1-def', slot: 1 });
    for (const e of TO.running) tracker.send(ID, e);
    expect(tracker.list().map(({ instance, state, ready }) => [instance, state, ready])).toEqual([
      [ID, 'running', true],
      ['web-r1-1-def', 'pending', false],
    ]);
  });
});
