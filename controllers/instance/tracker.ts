import { createActor, type Actor } from 'xstate';
import type { Clock, TimerHandle } from '../../core/clock.js';
import {
  condemnedFor,
  instanceMachine,
  isReady,
  type CondemnReason,
  stateName,
  type InstanceContext,
  type InstanceEvent,
  type InstanceInput,
  type InstanceSnapshot,
  type InstanceStateName,
} from './machine.js';
import { nextSyncEvent, type ObservedInstance } from './sync.js';

/** An event whose `at` may be left out; the tracker then stamps it with its clock. */
export type InstanceEventInput = InstanceEvent extends infer E
  ? E extends { at: number }
    ? Omit<E, 'at'> & { at?: number }
    : never
  : never;

/** What `track()` takes: the machine's input, with `now` defaulting to the tracker's clock. */
export type TrackInput = Omit<InstanceInput, 'now'> & { now?: number };

/** One tracked instance as `list()` shows it. */
export interface InstanceView {
  instance: string;
  state: InstanceStateName;
  ready: boolean;
  context: InstanceContext;
}

export type InstanceListener = (instance: string, state: InstanceStateName, ready: boolean) => void;

/** Adapts Orca's Clock to the `{ setTimeout, clearTimeout }` shape xstate's scheduler calls. */
export function xstateClock(clock: Clock): { setTimeout(fn: () => void, ms: number): TimerHandle; clearTimeout(h: TimerHandle): void } {
  return {
    setTimeout: (fn, ms) => clock.setTimeout(fn, ms),
    clearTimeout: (h) => clock.clearTimeout(h),
  };
}

type InstanceActor = Actor<typeof instanceMachine>;

interface Entry {
  actor: InstanceActor;
  last: { state: InstanceStateName; ready: boolean } | null;
}

/** Bound on events per sync; the longest walk the table allows (pending → exited) takes three. */
const MAX_SYNC_STEPS = 8;

/**
 * Holds one xstate actor per instance, all on the injected clock (so backoff and start
 * timeouts run on a ManualClock in tests). Synchronous and in-memory: nothing is persisted;
 * after a restart the host tracks again what Docker and its slot memory show. It never talks
 * to Docker.
 */
export class InstanceTracker {
  private readonly entries = new Map<string, Entry>();
  private readonly listeners = new Set<InstanceListener>();
  private readonly xclock: ReturnType<typeof xstateClock>;

  constructor(private readonly clock: Clock) {
    this.xclock = xstateClock(clock);
  }

  /**
   * Starts tracking a new instance (in backoff when `backoffUntil` is still ahead, else
   * pending). Idempotent: an instance already tracked is left as it is. Returns its state.
   */
  track(input: TrackInput): InstanceStateName {
    const existing = this.entries.get(input.instance);
    if (existing) return stateName(existing.actor.getSnapshot());
    const full: InstanceInput = { ...input, now: input.now ?? this.clock.now() };
    return this.start(input.instance, createActor(instanceMachine, { input: full, clock: this.xclock }));
  }

  /**
   * Sends one event to an instance (stamping `at` from the clock when missing). Illegal
   * events change nothing. Returns the state afterwards, or undefined for an unknown instance.
   */
  send(instance: string, event: InstanceEventInput): InstanceStateName | undefined {
    const e = this.entries.get(instance);
    if (!e) return undefined;
    // A final actor would drop the event anyway, with a console warning from xstate.
    if (e.actor.getSnapshot().status === 'active') {
      e.actor.send({ ...event, at: event.at ?? this.clock.now() } as InstanceEvent);
    }
    return stateName(e.actor.getSnapshot());
  }

  /**
   * Sends whatever events make the instance agree with what Docker shows (see
   * `nextSyncEvent` for the table) and returns them, in order. Level-triggered and
   * idempotent: a second call with the same observation sends nothing. Unknown instance: [].
   */
  syncFromObserved(instance: string, observed: ObservedInstance): InstanceEvent[] {
    const e = this.entries.get(instance);
    if (!e) return [];
    const sent: InstanceEvent[] = [];
    for (let i = 0; i < MAX_SYNC_STEPS; i++) {
      const before = e.actor.getSnapshot();
      const event = nextSyncEvent(before, observed);
      if (!event) break;
      e.actor.send(event);
      sent.push(event);
      if (e.actor.getSnapshot() === before) break; // not legal here after all; stop rather than spin
    }
    return sent;
  }

  state(instance: string): InstanceStateName | undefined {
    const e = this.entries.get(instance);
    return e ? stateName(e.actor.getSnapshot()) : undefined;
  }

  ready(instance: string): boolean {
    const e = this.entries.get(instance);
    return e ? isReady(e.actor.getSnapshot()) : false;
  }

  /** Why the agent gave up on the instance while it is tagged `condemned`; else (or unknown) null. */
  condemned(instance: string): CondemnReason | null {
    const e = this.entries.get(instance);
    return e ? condemnedFor(e.actor.getSnapshot()) : null;
  }

  context(instance: string): InstanceContext | undefined {
    return this.entries.get(instance)?.actor.getSnapshot().context;
  }

  /** Stops the instance's actor and its timers. No notification. Unknown instance: no-op. */
  forget(instance: string): void {
    const e = this.entries.get(instance);
    if (!e) return;
    this.entries.delete(instance);
    e.actor.stop();
  }

  /** Forgets every instance (shutdown). */
  clear(): void {
    for (const instance of [...this.entries.keys()]) this.forget(instance);
  }

  list(): InstanceView[] {
    return [...this.entries.entries()].map(([instance, e]) => {
      const s = e.actor.getSnapshot();
      return { instance, state: stateName(s), ready: isReady(s), context: s.context };
    });
  }

  /**
   * Calls fn(instance, state, ready) whenever an instance's shown state or readiness
   * changes, including when it is first tracked and when a timer fires. Listeners
   * run synchronously and must not throw. Returns an unsubscribe function.
   */
  subscribe(fn: InstanceListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private start(instance: string, actor: InstanceActor): InstanceStateName {
    const entry: Entry = { actor, last: null };
    this.entries.set(instance, entry);
    actor.subscribe((s) => this.changed(instance, entry, s));
    actor.start();
    this.changed(instance, entry, actor.getSnapshot());
    return stateName(actor.getSnapshot());
  }

  private changed(instance: string, entry: Entry, s: InstanceSnapshot): void {
    if (this.entries.get(instance) !== entry) return; // a forgotten actor's last words
    const next = { state: stateName(s), ready: isReady(s) };
    if (entry.last && entry.last.state === next.state && entry.last.ready === next.ready) return;
    entry.last = next;
    for (const fn of [...this.listeners]) fn(instance, next.state, next.ready);
  }
}
