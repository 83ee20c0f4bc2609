/**
 * The lifecycle of one instance (SPEC §3.2) as an xstate v5 machine.
 *
 *                         (init)   transient: picks the first resting state
 *                 backoffUntil > now │ otherwise
 *               ┌────────────────────┴─────┐
 *               ▼                          ▼
 *            backoff                    pending
 *               │ CREATE                   │ CREATE
 *               └─────────────────────────►│
 *                                          ▼
 *                                       creating ── CREATE_FAILED ─────────────┐
 *                                          │ CREATED {containerId}             │
 *                                          ▼                                   │
 *                                       starting ── after(startTimeoutMs) ─────┤
 *                                          │ STARTED                           │
 *                                          ▼                                   │
 *                          ┌────────────  running  ─────────────┐              │
 *                          │  unready ── READY ──► ready        │              │
 *                          │          ◄─ UNREADY ──             │              │
 *                          └────────────────────────────────────┘              │
 *          starting, running ── EXITED, VANISHED ─────────────────────────────►│
 * starting, running ── STOP, CONDEMN ──► stopping ── EXITED, VANISHED ────────►│
 *                                          │                                   ▼
 *                                          │ REMOVED                         exited
 *                                          ▼                                   │
 *          pending, backoff ── STOP ──► removed (final) ◄──── REMOVED ─────────┘
 *
 * STARTED goes to running.ready directly when `readyOnStart` (no readiness probe, no port).
 * `stopping` and `exited` each have a plain substate (entered by default) and a `condemned`
 * one: CONDEMN (a liveness failure, Docker's HEALTHCHECK unhealthy) goes to
 * stopping.condemned and the start timer to exited.condemned.
 *
 * Tags, for readers that must not parse state values or reason strings:
 * - `routable`: running.ready, the only state whose instance may take traffic;
 * - `condemned`: the agent gave up on an instance whose container may still be there
 *   (stopping.condemned, exited.condemned); `condemnedFor` says why, as an ExitReason.
 *
 * `exit.reason` by way out: EXITED from starting/running → `oom-killed`, `completed` (code 0)
 * or `exited`; EXITED or REMOVED from stopping, and STOP before creation → `stopped`;
 * VANISHED (anywhere) → `removed`; the start timer → `start-timeout`; CREATE_FAILED →
 * `create-failed`. REMOVED from exited keeps the exit it had.
 *
 * Contracts:
 * - The machine never talks to Docker. The agent sends what it did or observed; the machine
 *   decides whether that is a legal move. Events a state does not list are ignored: the
 *   snapshot stays exactly as it was (no error, no context change).
 * - Every event carries `at` (ms since epoch) so the machine itself never reads a clock;
 *   `InstanceTracker.send` stamps it from the injected clock when the caller leaves it out.
 * - The machine owns one timer, the start timeout in `starting`: an `after` delay run on the
 *   clock given to `createActor`, armed for `startTimeoutMs` when CREATED is processed (the
 *   recorded deadline is `CREATED.at + startTimeoutMs`).
 * - `backoff` only describes a replacement waiting out its crash-loop delay (status shows
 *   `crashloop`, `backoffUntil` says until when); it has no timer. The crash-loop timing has
 *   one owner, the container planner's slot memory (`nextRetryAt`, persisted) and its
 *   requeue: when the delay is due the planner creates the replacement, which sends CREATE.
 * - Nothing persists or restores snapshots: after an agent restart the actors are rebuilt
 *   from Docker (adoption through sync) and the slot memory (a replacement in backoff).
 * - Context is plain JSON: ids, counts, exit codes, timestamps.
 * - Invariants (checked by the model-based tests): `containerId` is set in starting,
 *   running and stopping; `exit` is set exactly in exited and removed; `backoffUntil` is set
 *   exactly in backoff; the instance is ready (tagged `routable`) only in running.ready;
 *   `condemnedFor` is set exactly when the snapshot is tagged `condemned`.
 * - A create that fails ends the instance in `exited` (reason `create-failed`, `lastError`
 *   set): instances are one-shot, so a retry is a new instance, never this one again.
 * - `STOP` in `creating` is ignored: the executor finishes a create before it acts again, so
 *   the agent stops the instance once `CREATED` (or `CREATE_FAILED`) has been sent.
 * - `VANISHED` means "the container we had is gone", so it applies only where a container is
 *   known (starting, running, stopping); in pending, backoff and creating no container is
 *   the expected observation, and in exited the container going away is `REMOVED`.
 */
import { assign, setup, type SnapshotFrom } from 'xstate';
import type { ExitReason } from '../container/types.js';

/**
 * How the machine saw its container end: an ExitReason it can observe itself (liveness and
 * unhealthy are the health reconciler's verdicts, not observations), or `stopped` on purpose.
 */
export type InstanceExitReason = Exclude<ExitReason, 'liveness' | 'unhealthy'> | 'stopped';

/** Why the agent gave up on an instance whose container may still be there (its one ExitReason). */
export type CondemnReason = Extract<ExitReason, 'start-timeout' | 'liveness' | 'unhealthy'>;

/** How the instance's container ended. `at` is ms since epoch. */
export interface InstanceExit {
  /** Exit code; null when there was no exit to read (vanished, timed out, never created). */
  code: number | null;
  reason: InstanceExitReason;
  at: number;
}

/** Everything the machine remembers. Plain JSON. */
export interface InstanceContext {
  instance: string;
  service: string;
  slot: number;
  containerId: string | null;
  /** ms since epoch of the next allowed try while in backoff; null in every other state. */
  backoffUntil: number | null;
  startTimeoutMs: number;
  /** No readiness probe and no port: STARTED goes straight to running.ready. */
  readyOnStart: boolean;
  exit: InstanceExit | null;
  lastError: string | null;
  /** Why the instance was asked to stop (e.g. `scaled-down`, `liveness`), once it was. */
  stopReason: string | null;
  /** Why the agent gave up on it, while the snapshot is tagged `condemned`; else null. */
  condemnedFor: CondemnReason | null;
  /** ms since epoch the instance entered its current top-level state (readiness flips do not count). */
  stateSince: number;
}

export interface InstanceInput {
  instance: string;
  service: string;
  slot: number;
  /** A replacement that must wait its crash-loop delay: starts in backoff when > now. */
  backoffUntil?: number | null;
  /** Positive and at most 2^31-1 (a timer limit). */
  startTimeoutMs: number;
  readyOnStart: boolean;
  /** ms since epoch at creation. */
  now: number;
}

/** Events. All data is JSON; `at` is ms since epoch when the thing happened or was seen. */
export type InstanceEvent =
  | { type: 'CREATE'; at: number }
  | { type: 'CREATED'; containerId: string; at: number }
  | { type: 'CREATE_FAILED'; error: string; at: number }
  | { type: 'STARTED'; at: number }
  | { type: 'READY'; at: number }
  | { type: 'UNREADY'; at: number }
  | { type: 'STOP'; reason: string; at: number }
  /** The health reconciler's verdict: the instance failed and is to be stopped and replaced. */
  | { type: 'CONDEMN'; reason: Extract<CondemnReason, 'liveness' | 'unhealthy'>; at: number }
  | { type: 'EXITED'; code: number | null; oomKilled: boolean; at: number; error?: string | null }
  | { type: 'VANISHED'; at: number }
  | { type: 'REMOVED'; at: number };

export type InstanceEventType = InstanceEvent['type'];

/** The event type xstate raises for the machine's own timer (for tests and tooling). */
export const TIMER_EVENTS = {
  startTimeout: 'xstate.after.startTimeout.instance.starting',
} as const;

/** Node's timers overflow above this and would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const clampDelay = (ms: number) => Math.min(MAX_TIMER_MS, Math.max(0, ms));

/** The time an event says it is; timer and init events carry none, so entry time is used. */
function eventTime(event: { type: string }, context: InstanceContext): number {
  const at = (event as { at?: unknown }).at;
  return typeof at === 'number' ? at : context.stateSince;
}

const startDeadline = (c: InstanceContext) => c.stateSince + c.startTimeoutMs;

function exitReasonOf(code: number | null, oomKilled: boolean): InstanceExitReason {
  if (oomKilled) return 'oom-killed';
  return code === 0 ? 'completed' : 'exited';
}

export const instanceMachine = setup({
  types: {
    context: {} as InstanceContext,
    events: {} as InstanceEvent,
    input: {} as InstanceInput,
  },
  delays: {
    startTimeout: ({ context, event }) => clampDelay(startDeadline(context) - eventTime(event, context)),
  },
  guards: {
    mustWait: ({ context }) => context.backoffUntil !== null,
    readyOnStart: ({ context }) => context.readyOnStart,
  },
  actions: {
    /** The planner created the replacement (its backoff was due). */
    leftBackoff: assign(({ event }) => ({ backoffUntil: null, stateSince: event.at })),
    startTimedOut: assign(({ context }) => {
      const at = startDeadline(context);
      return { exit: { code: null, reason: 'start-timeout' as const, at }, condemnedFor: 'start-timeout' as const, stateSince: at };
    }),
    vanished: assign(({ event }) => ({ exit: { code: null, reason: 'removed' as const, at: event.at }, stateSince: event.at })),
    /** STOP before any container existed: nothing to stop or remove. */
    cancelled: assign(({ event }) => ({
      backoffUntil: null,
      stopReason: event.type === 'STOP' ? event.reason : null,
      exit: { code: null, reason: 'stopped' as const, at: event.at },
      stateSince: event.at,
    })),
    stopRequested: assign(({ event }) => ({ stopReason: event.type === 'STOP' ? event.reason : null, stateSince: event.at })),
    condemned: assign(({ event }) => {
      if (event.type !== 'CONDEMN') return {};
      return { stopReason: event.reason, condemnedFor: event.reason, stateSince: event.at };
    }),
    /** A condemned instance's container is gone: nothing is left to give up on. */
    acquitted: assign({ condemnedFor: null }),
    enteredAt: assign(({ event }) => ({ stateSince: event.at })),
    /** The container ended on its own (not asked to stop). */
    exitedOnItsOwn: assign(({ event }) => {
      if (event.type !== 'EXITED') return {};
      return {
        exit: { code: event.code, reason: exitReasonOf(event.code, event.oomKilled), at: event.at },
        lastError: event.error ?? null,
        stateSince: event.at,
      };
    }),
  },
}).createMachine({
  id: 'instance',
  context: ({ input }) => ({
    instance: input.instance,
    service: input.service,
    slot: input.slot,
    containerId: null,
    backoffUntil: input.backoffUntil != null && input.backoffUntil > input.now ? input.backoffUntil : null,
    startTimeoutMs: input.startTimeoutMs,
    readyOnStart: input.readyOnStart,
    exit: null,
    lastError: null,
    stopReason: null,
    condemnedFor: null,
    stateSince: input.now,
  }),
  initial: 'init',
  states: {
    /** Transient: picks the first resting state from the input. */
    init: {
      always: [{ guard: 'mustWait', target: 'backoff' }, { target: 'pending' }],
    },
    backoff: {
      on: {
        CREATE: { target: 'creating', actions: 'leftBackoff' },
        STOP: { target: 'removed', actions: 'cancelled' },
      },
    },
    pending: {
      on: {
        CREATE: { target: 'creating', actions: 'enteredAt' },
        STOP: { target: 'removed', actions: 'cancelled' },
      },
    },
    creating: {
      on: {
        CREATED: {
          target: 'starting',
          actions: assign(({ event }) => ({ containerId: event.containerId, stateSince: event.at })),
        },
        CREATE_FAILED: {
          target: 'exited',
          actions: assign(({ event }) => ({
            lastError: event.error,
            exit: { code: null, reason: 'create-failed' as const, at: event.at },
            stateSince: event.at,
          })),
        },
      },
    },
    starting: {
      after: { startTimeout: { target: 'exited.condemned', actions: 'startTimedOut' } },
      on: {
        STARTED: [
          { guard: 'readyOnStart', target: 'running.ready', actions: 'enteredAt' },
          { target: 'running.unready', actions: 'enteredAt' },
        ],
        STOP: { target: 'stopping', actions: 'stopRequested' },
        CONDEMN: { target: 'stopping.condemned', actions: 'condemned' },
        EXITED: { target: 'exited', actions: 'exitedOnItsOwn' },
        VANISHED: { target: 'exited', actions: 'vanished' },
      },
    },
    running: {
      initial: 'unready',
      states: {
        unready: { on: { READY: 'ready' } },
        ready: { tags: ['routable'], on: { UNREADY: 'unready' } },
      },
      on: {
        STOP: { target: 'stopping', actions: 'stopRequested' },
        CONDEMN: { target: 'stopping.condemned', actions: 'condemned' },
        EXITED: { target: 'exited', actions: 'exitedOnItsOwn' },
        VANISHED: { target: 'exited', actions: 'vanished' },
      },
    },
    stopping: {
      initial: 'asked',
      states: {
        /** Asked to stop (scaled down, replaced, drained): nothing failed. */
        asked: {},
        /** Given up on (liveness, unhealthy): to be stopped and replaced. */
        condemned: { tags: ['condemned'] },
      },
      on: {
        EXITED: {
          target: 'exited',
          actions: [
            'acquitted',
            assign(({ event }) => ({
              exit: { code: event.code, reason: 'stopped' as const, at: event.at },
              lastError: event.error ?? null,
              stateSince: event.at,
            })),
          ],
        },
        VANISHED: { target: 'exited', actions: ['acquitted', 'vanished'] },
        REMOVED: {
          target: 'removed',
          actions: ['acquitted', assign(({ event }) => ({ exit: { code: null, reason: 'stopped' as const, at: event.at }, stateSince: event.at }))],
        },
      },
    },
    exited: {
      initial: 'ended',
      states: {
        ended: {},
        /** The start timer gave up on it; its container may still be there. */
        condemned: { tags: ['condemned'] },
      },
      on: { REMOVED: { target: 'removed', actions: ['acquitted', 'enteredAt'] } },
    },
    removed: { type: 'final' },
  },
});

export type InstanceSnapshot = SnapshotFrom<typeof instanceMachine>;

/** The state names shown by `orca status` (SPEC §4): backoff shows as crashloop. */
export type InstanceStateName =
  | 'pending'
  | 'creating'
  | 'starting'
  | 'running'
  | 'stopping'
  | 'exited'
  | 'removed'
  | 'crashloop';

/** The top-level state of a snapshot as shown to users. */
export function stateName(snapshot: InstanceSnapshot): InstanceStateName {
  const v = snapshot.value;
  const top = typeof v === 'string' ? v : Object.keys(v)[0];
  switch (top) {
    case 'backoff':
      return 'crashloop';
    case 'pending':
    case 'creating':
    case 'starting':
    case 'running':
    case 'stopping':
    case 'exited':
    case 'removed':
      return top;
    default:
      // 'init' is transient and never rests; anything else is a bug.
      throw new Error(`instance machine in unknown state ${JSON.stringify(v)}`);
  }
}

/** True only in running.ready (tagged `routable`). */
export function isReady(snapshot: InstanceSnapshot): boolean {
  return snapshot.hasTag('routable');
}

/** Why the agent gave up on the instance while it is tagged `condemned`, else null. */
export function condemnedFor(snapshot: InstanceSnapshot): CondemnReason | null {
  return snapshot.hasTag('condemned') ? snapshot.context.condemnedFor : null;
}
