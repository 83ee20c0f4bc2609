/** A node's state (SPEC §4 `orca nodes`). */
export type NodeState = 'ready' | 'unreachable' | 'down' | 'draining';

/** The node.mark-* action kind that puts a node in a state. */
export type MarkKind = `node.mark-${NodeState}`;

/**
 * The node reconciler's actions. Actions are data: idempotent, with a stable key and the reason
 * they were planned. They are recorded in the reconciliation log like container actions; a
 * mark's event keeps the name it always had (`node.<state>`, e.g. `node.down`), so `orca events`
 * and what reads it see the same things as before.
 */
export type NodeAction =
  | {
      kind: MarkKind;
      /** The node's name. */
      key: string;
      reason: string;
      node: string;
      from: NodeState;
      to: NodeState;
      /**
       * The node's slots are placed anew after this change (it is down, drained, or back): the
       * host runs a scheduling pass. False for a node merely unreachable (its slots stay).
       */
      reschedule: boolean;
    }
  | {
      /**
       * A replica slot leaves a down or draining node (or a node it no longer fits), or a ready
       * node to spread its service again (a rollout, `orca rebalance`).
       */
      kind: 'slot.reschedule';
      /** `service/slot`. */
      key: string;
      reason: string;
      /** For humans, when `reason` is a constant (`rollout`, `rebalance`): which slot, from where to where. */
      message?: string;
      service: string;
      /** The node it leaves. */
      from: string;
      /** The node it goes to, or null when no node can take it (it is retried on the next pass). */
      to: string | null;
      /**
       * Start-first move: the slot keeps running on `from` (the node is draining or ready, not
       * gone) until its new instance is ready on `to`.
       */
      linger: boolean;
    };

export type NodeActionKind = NodeAction['kind'];

/** The state a mark action puts its node in. */
export function markOf(state: NodeState): MarkKind {
  return `node.mark-${state}`;
}
