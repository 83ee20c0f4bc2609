import type { Clock } from '../core/clock.js';
import type { Reconciler, ReconcileResult } from '../controllers/controller.js';
import type { NodeExecutor } from '../controllers/node/executor.js';
import { planNode, type NodeObservation, type NodeTimingConfig } from '../controllers/node/planner.js';

export { nextNodeCheckInMs, nodeStateAt, type NodeTimingConfig } from '../controllers/node/planner.js';

export interface NodeReconcilerDeps {
  clock: Clock;
  timing: NodeTimingConfig;
  /** What is known of a node now (the node registry), or undefined for a node never seen. */
  observe: (name: string) => NodeObservation | undefined;
  /** Every known node's name (for the periodic resync). */
  names: () => Iterable<string>;
  executor: NodeExecutor;
}

/**
 * The node reconciler (SPEC §3.2), key = node name: plans the node's state from its last
 * heartbeat and drain flag (controllers/node/planner.ts), has the node executor apply it, and
 * asks to look again at the node's next deadline. Driven by a Controller: triggered by the
 * node's heartbeats and sessions (the agent hub, through the registry) and by drain / uncordon
 * (the API), resynced periodically.
 */
export class NodeReconciler implements Reconciler {
  readonly name = 'node' as const;

  constructor(private readonly deps: NodeReconcilerDeps) {}

  keys(): Iterable<string> {
    return this.deps.names();
  }

  reconcile(key: string): Promise<ReconcileResult> {
    const n = this.deps.observe(key);
    if (!n) return Promise.resolve({ kind: 'done' });
    const plan = planNode(n, this.deps.timing, this.deps.clock.now());
    this.deps.executor.execute(plan.actions);
    return Promise.resolve(plan.requeueAfterMs === null ? { kind: 'done' } : { kind: 'after', ms: plan.requeueAfterMs });
  }
}
