import type { ServiceSpec } from '../../manifest/types.js';
import type { EpochMs, IsoTime } from '../../core/time.js';

/** One replica slot of a service, assigned to this node by the scheduler. */
export interface SlotAssignment {
  service: string;
  slot: number;
  revision: number;
  specHash: string;
  spec: ServiceSpec;
  /**
   * Secret name → version, of the secrets the spec uses (`secrets` and `secret_env`), as the
   * revision was made with them (SPEC §3.9). Absent when it uses none. Never a value.
   */
  secretVersions?: Record<string, number>;
}

/** Every reason an instance stops being there: the one list (the instance machine's reasons derive from it). */
export const EXIT_REASONS = ['exited', 'completed', 'oom-killed', 'removed', 'liveness', 'create-failed', 'start-timeout', 'unhealthy'] as const;

/** Why an instance stopped being there. */
export type ExitReason = (typeof EXIT_REASONS)[number];

export interface LastExit {
  instance: string;
  /** Exit code, null when the container vanished. */
  code: number | null;
  reason: ExitReason;
  at: IsoTime;
}

/**
 * What the agent remembers about a replica slot across instance replacements: restart
 * counts survive the replacement of instances (they are per slot, not per container).
 * Serialisable; persisted in the agent store.
 */
export interface SlotState {
  service: string;
  slot: number;
  /** The instance Orca created or adopted for this slot. */
  currentInstance: string | null;
  /** Replacements made after failures. */
  restarts: number;
  /** Failures since the slot last ran for reset_after_secs. */
  consecutiveFailures: number;
  lastExit: LastExit | null;
  /** The instance whose failure has been counted, so one failure counts once. */
  handledInstance: string | null;
  /** The next allowed replacement (crash-loop backoff), or null. Persisted under this name. */
  nextRetryAt: EpochMs | null;
  /** The id the replacement will have while it waits out its backoff (so it can be tracked and shown). */
  nextInstance: string | null;
  /** Spec hash for which the restart policy decided not to replace; a new spec clears it. */
  gaveUpOnHash: string | null;
  /** A rollout of this slot to a new spec hash in progress: since when. */
  rollout: { hash: string; startedAt: EpochMs } | null;
  /** A rollout to this spec hash that halted, and why; a new spec clears it. */
  rolloutFailed: { hash: string; reason: string; at: EpochMs } | null;
}

export function freshSlotState(service: string, slot: number): SlotState {
  return {
    service,
    slot,
    currentInstance: null,
    restarts: 0,
    consecutiveFailures: 0,
    lastExit: null,
    handledInstance: null,
    nextRetryAt: null,
    nextInstance: null,
    gaveUpOnHash: null,
    rollout: null,
    rolloutFailed: null,
  };
}

export const slotKey = (service: string, slot: number) => `${service}/${slot}`;
