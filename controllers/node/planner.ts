import { markOf, type NodeAction, type NodeState } from './actions.js';

export type { NodeState } from './actions.js';

export interface NodeTimingConfig {
  heartbeatTimeoutMs: number;
  nodeDownGraceMs: number;
}

/** What the node planner looks at for one node. */
export interface NodeObservation {
  name: string;
  /** ms since the epoch of the last sign of life (any message of its session, or its hello). */
  lastHeartbeatMs: number;
  /** `orca drain` (until `orca uncordon`). */
  drained: boolean;
  /** The state the node is in now (as last marked). */
  state: NodeState;
}

/**
 * A node is `unreachable` once nothing has been heard from it for heartbeat_timeout_secs, and
 * `down` once it has stayed unreachable for node_down_grace_secs more (SPEC §3.1; the grace is
 * always a grace, see README "Design choices"); otherwise `draining` if an operator drained it,
 * else `ready`. Pure.
 */
export function nodeStateAt(n: { lastHeartbeatMs: number; drained: boolean }, now: number, cfg: NodeTimingConfig): NodeState {
  const silentMs = now - n.lastHeartbeatMs;
  if (silentMs > cfg.heartbeatTimeoutMs + cfg.nodeDownGraceMs) return 'down';
  if (silentMs > cfg.heartbeatTimeoutMs) return 'unreachable';
  return n.drained ? 'draining' : 'ready';
}

/** When the state of a node would next change with no news from it (ms from now), or null. Pure. */
export function nextNodeCheckInMs(n: { lastHeartbeatMs: number }, now: number, cfg: NodeTimingConfig): number | null {
  const silentMs = now - n.lastHeartbeatMs;
  if (silentMs <= cfg.heartbeatTimeoutMs) return cfg.heartbeatTimeoutMs - silentMs + 1;
  if (silentMs <= cfg.heartbeatTimeoutMs + cfg.nodeDownGraceMs) return cfg.heartbeatTimeoutMs + cfg.nodeDownGraceMs - silentMs + 1;
  return null;
}

/**
 * Whether a change of state calls for a scheduling pass: a node down or drained loses its slots,
 * a node ready or back (a new node starts unreachable) may take slots and needs its assignment
 * set; one merely becoming unreachable keeps its slots (it is not given up on yet).
 */
export function reschedulesOn(from: NodeState, to: NodeState): boolean {
  return to !== 'unreachable' || from === 'down';
}

export interface NodePlan {
  actions: NodeAction[];
  /** ms from now after which the node should be planned again (its next deadline), or null. */
  requeueAfterMs: number | null;
}

/**
 * The node reconciler's planner: `(node, timing, now) → actions`. Marks the node with the state
 * its heartbeat and drain flag say (nothing when it already is), and says when its next deadline
 * falls. Pure.
 */
export function planNode(n: NodeObservation, cfg: NodeTimingConfig, now: number): NodePlan {
  const to = nodeStateAt(n, now, cfg);
  const requeueAfterMs = nextNodeCheckInMs(n, now, cfg);
  if (to === n.state) return { actions: [], requeueAfterMs };
  return {
    actions: [
      {
        kind: markOf(to),
        key: n.name,
        reason: markReason(n, to, now),
        node: n.name,
        from: n.state,
        to,
        reschedule: reschedulesOn(n.state, to),
      },
    ],
    requeueAfterMs,
  };
}

function markReason(n: NodeObservation, to: NodeState, now: number): string {
  if (to === 'unreachable' || to === 'down') return `no heartbeat for ${Math.round((now - n.lastHeartbeatMs) / 100) / 10}s`;
  // Back, or drained / uncordoned: a fresh heartbeat or the operator's flag decided.
  if (n.state === 'unreachable' || n.state === 'down') return 'heartbeat';
  if (to === 'draining') return 'drained-by-operator';
  return 'uncordoned-by-operator';
}

/** A slot that left the node it had (the scheduler's MovedSlot). */
export interface SlotMove {
  key: string;
  from: string;
  to: string | null;
  /**
   * Set when the move was asked for while its node was fine: `rollout` (a new revision spread
   * again), `rebalance` (`orca rebalance`). Absent: the node's state (down, draining) or a
   * constraint moved it.
   */
  reason?: 'rollout' | 'rebalance';
}

/**
 * The slots a scheduling pass moved, as `slot.reschedule` actions: each says where from (and
 * that node's state), where to, and whether it lingers on the node it leaves until its
 * replacement is ready (start-first): off a draining node, and a rollout's or rebalance's move
 * off a ready node. An asked-for move carries its reason constant, the where-from-where-to in
 * its message. `stateOf` gives a node's state, undefined for a node gone. Pure.
 */
export function planReschedules(moved: SlotMove[], stateOf: (node: string) => NodeState | undefined): NodeAction[] {
  return moved.map((m) => {
    const fromState = stateOf(m.from);
    const what = `${m.key} from ${m.from} (${fromState ?? 'gone'}) to ${m.to ?? 'nowhere'}`;
    return {
      kind: 'slot.reschedule' as const,
      key: m.key,
      reason: m.reason ?? what,
      ...(m.reason ? { message: what } : {}),
      service: m.key.split('/')[0] ?? m.key,
      from: m.from,
      to: m.to,
      linger: m.to !== null && (fromState === 'draining' || (m.reason !== undefined && fromState === 'ready')),
    };
  });
}
