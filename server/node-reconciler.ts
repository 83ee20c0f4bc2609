import type { NodeState } from './nodes.js';

export interface NodeTimingConfig {
  heartbeatTimeoutMs: number;
  nodeDownGraceMs: number;
}

/**
 * The node reconciler's planner (SPEC §3.1): a node is `unreachable` once nothing has been
 * heard from it for heartbeat_timeout_secs, and `down` once it has stayed unreachable for
 * node_down_grace_secs more; otherwise `draining` if an operator drained it, else `ready`.
 * Pure.
 */
export function nodeStateAt(n: { lastHeartbeatMs: number; drained: boolean }, now: number, cfg: NodeTimingConfig): NodeState {
  const silentMs = now - n.lastHeartbeatMs;
  if (silentMs > cfg.heartbeatTimeoutMs + cfg.nodeDownGraceMs) return 'down';
  if (silentMs > cfg.heartbeatTimeoutMs) return 'unreachable';
  return n.drained ? 'draining' : 'ready';
}

/** When the state of a node would next change with no news from it (ms from now), or null. */
export function nextNodeCheckInMs(n: { lastHeartbeatMs: number }, now: number, cfg: NodeTimingConfig): number | null {
  const silentMs = now - n.lastHeartbeatMs;
  if (silentMs <= cfg.heartbeatTimeoutMs) return cfg.heartbeatTimeoutMs - silentMs + 1;
  if (silentMs <= cfg.heartbeatTimeoutMs + cfg.nodeDownGraceMs) return cfg.heartbeatTimeoutMs + cfg.nodeDownGraceMs - silentMs + 1;
  return null;
}

/** Whether a node in this state may receive new slots, and whether it keeps the ones it has. */
export function schedulingOf(state: NodeState): { schedulable: boolean; keepsSlots: boolean } {
  switch (state) {
    case 'ready':
      return { schedulable: true, keepsSlots: true };
    case 'unreachable':
      // Not yet given up on: its instances keep running there (and are healed there).
      return { schedulable: false, keepsSlots: true };
    case 'draining':
    case 'down':
      return { schedulable: false, keepsSlots: false };
  }
}
