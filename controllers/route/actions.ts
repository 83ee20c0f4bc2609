/**
 * The route reconciler's actions: one per backend that enters or leaves the proxy's table, with
 * the reason it was planned. Data only; the route executor applies the table they lead to and
 * records each one in the reconciliation log.
 */

/** Why a backend enters the table. */
export type RouteAddReason = 'instance-ready';

/** Why a backend leaves the table. */
export type RouteRemoveReason =
  /** Its instance is no longer among the node's ready endpoints (died, failed readiness, draining). */
  | 'instance-not-ready'
  /** Its instance is still reported ready, but by a node the server cannot reach. */
  | 'node-unreachable'
  /** Its instance is ready at another address now (the new address is added). */
  | 'endpoint-changed'
  /** Its service is deleted (or gone from the desired state). */
  | 'service-deleted'
  /** Its service still exists but has no `route` (or no `port`) any more. */
  | 'service-has-no-route';

export type RouteAction =
  | { kind: 'route.add'; key: string; reason: RouteAddReason; service: string; instance: string; address: string }
  | { kind: 'route.remove'; key: string; reason: RouteRemoveReason; service: string; instance: string; address: string };

export type RouteActionKind = RouteAction['kind'];
