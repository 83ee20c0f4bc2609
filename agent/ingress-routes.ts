import type { Endpoint } from '../core/endpoint.js';
import type { Route } from '../proxy/table.js';
import type { RouteEntry } from '../protocol/routes.js';

/**
 * The table a node's own proxy serves (SPEC §3.11): the cluster's table as the control plane
 * last pushed it, with this node's backends taken from the node's own state instead — the
 * pushed ones of `node` are dropped, and `own` (the node's ready instances now, from its
 * lifecycle and probes) are put in every route of their service. So a local instance that dies
 * or goes unready leaves at once, one that becomes ready is added at once, whatever the control
 * plane last said or whether it can be reached. An own instance of a service the pushed table
 * has no route for is not routed (the route's host and path come from the control plane).
 *
 * Backends are in instance order (as the control plane sorts them), each instance once. Pure.
 */
export function nodeRouteTable(table: readonly RouteEntry[], node: string, own: readonly Endpoint[]): Route[] {
  const ownBy = new Map<string, Endpoint[]>();
  for (const e of own) {
    const list = ownBy.get(e.service) ?? [];
    list.push(e);
    ownBy.set(e.service, list);
  }
  return table.map((r) => {
    const seen = new Set<string>();
    const backends: Route['backends'] = [];
    const add = (instance: string, address: string) => {
      if (seen.has(instance)) return;
      seen.add(instance);
      backends.push({ instance, address });
    };
    for (const e of ownBy.get(r.service) ?? []) add(e.instance, e.address);
    for (const b of r.backends) if (b.node !== node) add(b.instance, b.address);
    backends.sort((a, b) => (a.instance < b.instance ? -1 : a.instance > b.instance ? 1 : 0));
    return { service: r.service, host: r.host, path: r.path, backends, ...(r.tls ? { tls: r.tls } : {}) };
  });
}
