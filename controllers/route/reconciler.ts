import type { ServiceRecord } from '../../store/types.js';
import type { Route } from '../../proxy/table.js';
import type { ReconcileResult, Reconciler } from '../controller.js';
import type { RouteExecutor } from './executor.js';
import { planRoutes, type Endpoint } from './planner.js';

/**
 * The route reconciler's one key. The proxy swaps whole tables, two services may share a host
 * (on different paths), a node's reachability changes the backends of every service at once, and
 * planning is a pass over in-memory lists: one key for the whole table is as fast as one per
 * service and never has two half-tables racing to be swapped in.
 */
export const ROUTE_TABLE_KEY = 'table';

export interface RouteReconcilerDeps {
  /** The desired services (kept by the host in step with the store). */
  desired: () => readonly ServiceRecord[];
  /** Ready endpoints on every node, as last reported (memory kept in step with Docker). */
  endpoints: () => readonly Endpoint[];
  reachable: (node: string) => boolean;
  /** The table the proxy serves now (the observed state of the route reconciler). */
  current: () => readonly Route[];
  executor: RouteExecutor;
}

/**
 * Keeps the proxy's table equal to planRoutes(desired, endpoints, reachability, current).
 * Reconciling is synchronous up to its result, so a trigger from an idle controller has the
 * table swapped before `trigger` returns (a dead instance leaves the routes at once). A Docker
 * `die` reaches it only as such a trigger: the agent's lifecycle marks the instance not ready on
 * the event, the agent pushes its endpoints, and the host triggers this key on the push.
 */
export class RouteReconciler implements Reconciler {
  readonly name = 'route' as const;

  constructor(private readonly deps: RouteReconcilerDeps) {}

  keys(): string[] {
    return [ROUTE_TABLE_KEY];
  }

  reconcile(_key: string): Promise<ReconcileResult> {
    try {
      const plan = planRoutes({ services: this.deps.desired(), endpoints: this.deps.endpoints(), reachable: this.deps.reachable, current: this.deps.current() });
      this.deps.executor.execute(plan);
      return Promise.resolve({ kind: 'done' });
    } catch (err) {
      return Promise.reject(err);
    }
  }
}
