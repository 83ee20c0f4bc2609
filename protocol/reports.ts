import type { InstanceStateName } from '../controllers/instance/machine.js';

export type { InstanceStateName };

/** One instance as observed on a node, what `orca status` shows. */
export interface InstanceReport {
  id: string | null;
  service: string;
  slot: number;
  revision: number;
  specHash: string;
  node: string;
  state: InstanceStateName;
  ready: boolean;
  restarts: number;
  lastExit: { code: number | null; reason: string; at: string } | null;
  containerId: string | null;
  address: string | null;
  nextRetryAt: string | null;
  startedAt: string | null;
  /** True when this instance runs the desired spec of its slot. */
  current: boolean;
  /** Set when a rollout of this slot to the desired spec halted, with the reason. */
  rolloutFailed: string | null;
  /**
   * A terminal error that keeps this slot from getting an instance of its desired spec (for
   * example "image web:2 not found on node n1"); null when there is none. Retried slowly.
   */
  error?: string | null;
  /** The last readiness check's answer, when the instance is probed. */
  probe?: string | null;
}
