import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/log.js';
import type { EventRecord } from '../../store/types.js';
import type { NodeAction, NodeState } from './actions.js';

/** The ports the node executor acts through; none of them may throw. */
export interface NodeExecutorDeps {
  clock: Clock;
  log: Logger;
  /** Puts a node in a state (the node registry). */
  setState: (node: string, to: NodeState) => void;
  /** Keeps a slot on the node it leaves until its replacement is ready there (the control plane). */
  linger: (key: string, from: string) => void;
  /** Receives one record per action (the reconciliation log). */
  record: (e: EventRecord) => void;
  /**
   * Events for the host to turn into other reconcilers' triggers. A node changed state (routes
   * follow: an unreachable node's instances leave the table at once).
   */
  onNodeStateChanged: (node: string, from: NodeState, to: NodeState) => void;
  /** A node's change calls for a scheduling pass (it is down, drained or back). */
  onSchedulingChanged: (node: string) => void;
}

/**
 * Applies the node reconciler's actions. Every effect is in memory, so an action cannot fail
 * half-way; each becomes one log line and one event in the reconciliation log, in the shape
 * these events always had: a mark is recorded as `node.<state>` (e.g. `node.unreachable`), a
 * moved slot as `slot.reschedule` on the node it goes to (`unplaced` when none).
 */
export class NodeExecutor {
  constructor(private readonly deps: NodeExecutorDeps) {}

  execute(actions: readonly NodeAction[]): void {
    for (const a of actions) this.apply(a);
  }

  private apply(a: NodeAction): void {
    const started = this.deps.clock.now();
    if (a.kind === 'slot.reschedule') {
      if (a.linger && a.to !== null) this.deps.linger(a.key, a.from);
      this.deps.log.info({ slot: a.key, from: a.from, to: a.to, reason: a.reason }, 'slot rescheduled');
      this.recordOf(a, started, { service: a.service, node: a.to, action: a.kind, outcome: a.to ? 'ok' : 'unplaced', ...(a.message ? { message: a.message } : {}) });
      return;
    }
    this.deps.setState(a.node, a.to);
    this.deps.log.info({ reconciler: 'node', node: a.node, from: a.from, to: a.to, reason: a.reason }, 'node state changed');
    this.recordOf(a, started, { service: null, node: a.node, action: `node.${a.to}`, outcome: 'ok' });
    this.deps.onNodeStateChanged(a.node, a.from, a.to);
    if (a.reschedule) this.deps.onSchedulingChanged(a.node);
  }

  private recordOf(a: NodeAction, started: number, f: { service: string | null; node: string | null; action: string; outcome: string; message?: string }): void {
    const now = this.deps.clock.now();
    this.deps.record({
      time: new Date(now).toISOString(),
      reconciler: 'node',
      service: f.service,
      instance: null,
      node: f.node,
      action: f.action,
      reason: a.reason,
      outcome: f.outcome,
      durationMs: now - started,
      ...(f.message ? { message: f.message } : {}),
    });
  }
}
