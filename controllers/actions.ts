import type { SlotAssignment, SlotState } from './container/types.js';

/**
 * Actions are data: each is idempotent and carries a stable key (for dedupe and logs)
 * and the reason it was planned.
 */
export type Action =
  | {
      kind: 'container.create';
      key: string;
      reason: string;
      service: string;
      instance: string;
      slot: number;
      assignment: SlotAssignment;
      /** Slot state to persist once the container exists. */
      slotAfter: SlotState;
    }
  | { kind: 'container.start'; key: string; reason: string; service: string; instance: string; containerId: string }
  | {
      kind: 'container.stop';
      key: string;
      reason: string;
      service: string;
      instance: string;
      containerId: string;
      graceSecs: number;
    }
  | {
      kind: 'container.remove';
      key: string;
      reason: string;
      service: string | null;
      instance: string | null;
      containerId: string;
      /** Only for orphans that may still run. */
      force?: boolean;
    }
  | {
      /** Bookkeeping: a failure was counted, a backoff set, a rollout halted; no runtime call. */
      kind: 'slot.update' | 'rollout.halt';
      key: string;
      reason: string;
      /** Advice for the operator, shown in the reconciliation log (e.g. raise resources.memory). */
      message?: string;
      service: string;
      instance: string | null;
      slot: SlotState;
    };

export type ActionKind = Action['kind'];

/** Planned actions plus when to look again if nothing else happens first. */
export interface Plan {
  actions: Action[];
  /** ms from now after which the key should be re-planned (crash-loop backoff ends), or null. */
  requeueAfterMs: number | null;
}
