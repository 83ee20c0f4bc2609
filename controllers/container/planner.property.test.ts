import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { ObservedContainer } from '../../runtime/types.js';
import { parseInstanceLabels } from '../../runtime/labels.js';
import { aContainer, aSpec, slotsOf } from '../../test/builders.js';
import type { Action, Plan } from '../actions.js';
import { planContainers } from './planner.js';
import type { SlotAssignment, SlotState } from './types.js';

/**
 * planContainers against a model of one node's Docker: a plan's actions are applied to the
 * model (create runs the container, stop exits it, remove deletes it, slot updates are
 * remembered), the world does things between plans (a probe passes, a container dies, time
 * passes), and the planner is asked again. Properties hold after every step.
 */

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const LIVE = new Set(['created', 'running', 'paused', 'restarting']);

interface Box {
  c: ObservedContainer;
  ready: boolean;
}

class World {
  now = T0;
  readonly boxes = new Map<string, Box>();
  readonly slots = new Map<number, SlotState>();
  private n = 0;

  constructor(public desired: SlotAssignment[]) {}

  plan(): Plan {
    const ready = new Set([...this.boxes.values()].filter((b) => b.ready && b.c.status === 'running').map((b) => labels(b.c).instance));
    return planContainers({
      service: 'web',
      desired: this.desired,
      observed: [...this.boxes.values()].map((b) => b.c),
      slots: this.slots,
      now: this.now,
      ready,
      newInstanceId: (s, rev, slot) => `${s}-${rev}-${slot}-i${this.n++}`,
    });
  }

  apply(actions: Action[]): void {
    for (const a of actions) {
      switch (a.kind) {
        case 'container.create': {
          const c = aContainer({ slot: a.slot, instance: a.instance, revision: a.assignment.revision, specHash: a.assignment.specHash });
          this.boxes.set(a.instance, { c: { ...c, startedAt: iso(this.now), createdAt: iso(this.now) }, ready: false });
          this.slots.set(a.slot, a.slotAfter);
          break;
        }
        case 'container.start':
          this.set(a.instance, { status: 'running', startedAt: iso(this.now) });
          break;
        case 'container.stop':
          if (LIVE.has(this.boxes.get(a.instance)?.c.status ?? '')) this.set(a.instance, { status: 'exited', exitCode: 143, finishedAt: iso(this.now) });
          break;
        case 'container.remove':
          if (a.instance) this.boxes.delete(a.instance);
          break;
        case 'slot.update':
        case 'rollout.halt':
          this.slots.set(a.slot.slot, a.slot);
          break;
      }
    }
  }

  /** The container at index i (mod the count) of those alive, if any. */
  pickLive(i: number): Box | undefined {
    const live = [...this.boxes.values()].filter((b) => LIVE.has(b.c.status));
    return live.length ? live[i % live.length] : undefined;
  }

  set(instance: string, patch: Partial<ObservedContainer>): void {
    const b = this.boxes.get(instance);
    if (b) b.c = { ...b.c, ...patch };
  }

  live(): Box[] {
    return [...this.boxes.values()].filter((b) => LIVE.has(b.c.status));
  }

  /** Plans and applies until a plan has nothing to do, every probe passing; time moves to each wake-up. */
  settle(maxRounds = 200): void {
    for (let i = 0; i < maxRounds; i++) {
      for (const b of this.live()) if (b.c.status === 'running') b.ready = true;
      const p = this.plan();
      if (p.actions.length > 0) this.apply(p.actions);
      else if (p.requeueAfterMs !== null) this.now += Math.max(1, p.requeueAfterMs);
      else return;
    }
    throw new Error('the planner did not converge');
  }
}

const iso = (ms: number) => new Date(ms).toISOString();
const labels = (c: ObservedContainer) => parseInstanceLabels(c.labels)!;
const sig = (a: Action) => `${a.kind} ${a.key} ${a.reason}`;

type Event = { kind: 'ready'; i: number } | { kind: 'crash'; i: number; code: number; oom: boolean } | { kind: 'tick'; ms: number };
const event: fc.Arbitrary<Event> = fc.oneof(
  fc.record({ kind: fc.constant('ready' as const), i: fc.nat(20) }),
  fc.record({ kind: fc.constant('crash' as const), i: fc.nat(20), code: fc.constantFrom(0, 1, 137), oom: fc.boolean() }),
  fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 90_000 }) }),
);

const scenario = fc.record({
  replicasBefore: fc.integer({ min: 1, max: 4 }),
  replicasAfter: fc.integer({ min: 1, max: 4 }),
  strategy: fc.constantFrom('start-first' as const, 'stop-first' as const),
  events: fc.array(event, { maxLength: 30 }),
});

function happen(w: World, e: Event): void {
  if (e.kind === 'tick') w.now += e.ms;
  else if (e.kind === 'ready') {
    const b = w.pickLive(e.i);
    if (b && b.c.status === 'running') b.ready = true;
  } else {
    const b = w.pickLive(e.i);
    if (b) w.set(labels(b.c).instance, { status: 'exited', exitCode: e.code, oomKilled: e.oom, finishedAt: iso(w.now) });
  }
}

/** Checks that hold after every applied plan. */
function checkStep(w: World, replicas: number): void {
  const live = w.live();
  expect(live.length).toBeLessThanOrEqual(replicas + 1);
  const readyBySlot = new Map<number, string[]>();
  for (const b of live) {
    if (!b.ready || b.c.status !== 'running') continue;
    const l = labels(b.c);
    readyBySlot.set(l.slot, [...(readyBySlot.get(l.slot) ?? []), l.instance]);
  }
  for (const [slot, ids] of readyBySlot) expect({ slot, ready: ids.length }).toEqual({ slot, ready: 1 });
}

/** Desired slots that have a ready, running instance now. */
function servingSlots(w: World): Set<number> {
  const desired = new Set(w.desired.map((d) => d.slot));
  return new Set(w.live().filter((b) => b.ready && b.c.status === 'running').map((b) => labels(b.c).slot).filter((s) => desired.has(s)));
}

describe('planContainers: properties over a model of Docker', () => {
  it('from nothing, converges to one running instance of the desired spec per slot, and then plans nothing', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 6 }), (replicas) => {
        const w = new World(slotsOf(aSpec({ replicas }), 1));
        w.settle();
        expect(w.live().map((b) => labels(b.c).slot).sort()).toEqual(Array.from({ length: replicas }, (_, i) => i));
        expect(w.plan().actions).toEqual([]);
      }),
    );
  });

  it('idempotence: a plan applied and planned again repeats none of its actions; at rest the plan is empty', () => {
    fc.assert(
      fc.property(scenario, ({ replicasBefore, replicasAfter, strategy, events }) => {
        const w = new World(slotsOf(aSpec({ replicas: replicasBefore }), 1));
        w.settle();
        w.desired = slotsOf(aSpec({ replicas: replicasAfter, image: 'orca-test/busybox:2', deploy: { strategy, readyTimeoutSecs: 60 } }), 2);
        for (const e of events) {
          happen(w, e);
          const first = w.plan();
          w.apply(first.actions);
          const again = w.plan();
          const repeated = again.actions.map(sig).filter((s) => first.actions.map(sig).includes(s));
          expect(repeated).toEqual([]);
          w.apply(again.actions);
        }
        w.settle();
        expect(w.plan()).toMatchObject({ actions: [] });
      }),
      { numRuns: 200 },
    );
  });

  it('during a rollout with failures: never more than replicas + 1 live containers, never two ready instances of one slot', () => {
    fc.assert(
      fc.property(scenario, ({ replicasBefore, replicasAfter, strategy, events }) => {
        const w = new World(slotsOf(aSpec({ replicas: replicasBefore }), 1));
        w.settle();
        checkStep(w, replicasBefore);
        w.desired = slotsOf(aSpec({ replicas: replicasAfter, image: 'orca-test/busybox:2', deploy: { strategy, readyTimeoutSecs: 60 } }), 2);
        w.apply(w.plan().actions);
        checkStep(w, replicasAfter);
        for (const e of events) {
          happen(w, e);
          w.apply(w.plan().actions);
          checkStep(w, replicasAfter);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('start-first: a step never leaves a desired slot that was serving without a ready instance', () => {
    fc.assert(
      fc.property(scenario, ({ replicasBefore, replicasAfter, events }) => {
        const w = new World(slotsOf(aSpec({ replicas: replicasBefore }), 1));
        w.settle();
        w.desired = slotsOf(aSpec({ replicas: replicasAfter, image: 'orca-test/busybox:2' }), 2);
        for (const e of [{ kind: 'tick', ms: 0 } as Event, ...events]) {
          happen(w, e);
          const before = servingSlots(w);
          w.apply(w.plan().actions);
          const after = servingSlots(w);
          expect([...before].filter((s) => !after.has(s))).toEqual([]);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('a rollout ends with every slot on the new spec (or, when it halted, every slot still serving), one instance each', () => {
    fc.assert(
      fc.property(scenario, ({ replicasBefore, replicasAfter, strategy, events }) => {
        const w = new World(slotsOf(aSpec({ replicas: replicasBefore }), 1));
        w.settle();
        const next = slotsOf(aSpec({ replicas: replicasAfter, image: 'orca-test/busybox:2', deploy: { strategy, readyTimeoutSecs: 60 } }), 2);
        w.desired = next;
        for (const e of events) {
          happen(w, e);
          w.apply(w.plan().actions);
        }
        w.settle();
        const live = w.live().map((b) => labels(b.c));
        expect(live.map((l) => l.slot).sort()).toEqual(next.map((d) => d.slot));
        const halted = [...w.slots.values()].some((s) => s.rolloutFailed?.hash === next[0]!.specHash);
        if (!halted) expect(live.every((l) => l.specHash === next[0]!.specHash)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});
