import type { ServiceRecord } from '../../store/types.js';
import type { NodeEndpoint } from '../../core/endpoint.js';
import type { Route, RouteBackend } from '../../proxy/table.js';
import type { RouteAction, RouteRemoveReason } from './actions.js';

/** A ready instance and where it answers, as its node reports it. */
export type Endpoint = NodeEndpoint;

export interface RoutePlanInput {
  /** The desired services (deleted ones included or not: both mean "no route"). */
  services: readonly ServiceRecord[];
  /** Ready instances on every node, as last reported. */
  endpoints: readonly Endpoint[];
  /** Whether a node is reachable now: only its endpoints are backends. */
  reachable: (node: string) => boolean;
  /** The table the proxy serves now. */
  current: readonly Route[];
}

export interface RoutePlan {
  /** One per backend added or removed, removals first, each with its reason. */
  actions: RouteAction[];
  /** The table the actions lead to (the whole table; the proxy swaps whole tables). */
  table: Route[];
  /** Whether `table` differs from `current` (backends, or a route's presence, host, path or tls). */
  changed: boolean;
}

/**
 * The route reconciler's planner: desired routes × ready endpoints on reachable nodes × the
 * current table → the backend changes and the table they lead to. Only services with a `route`
 * (and so a `port`) get a route, kept even with no backend (the proxy answers 503). Backends are
 * sorted by instance and routes by host and path, for a stable table. Pure; planning again from
 * the table it returns gives no actions and `changed: false`.
 */
export function planRoutes(input: RoutePlanInput): RoutePlan {
  const table = desiredTable(input);
  const next = new Map(table.map((r) => [r.service, r]));
  const current = new Map(input.current.map((r) => [r.service, r]));
  const services = new Map(input.services.map((s) => [s.name, s]));
  const actions: RouteAction[] = [];

  for (const [service, old] of current) {
    const now = next.get(service);
    for (const b of old.backends) {
      if (now && hasBackend(now, b)) continue;
      actions.push({ kind: 'route.remove', key: `${service}/${b.instance}`, reason: removeReason(input, services.get(service), now, b), service, instance: b.instance, address: b.address });
    }
  }
  for (const r of table) {
    const old = current.get(r.service);
    for (const b of r.backends) {
      if (old && hasBackend(old, b)) continue;
      actions.push({ kind: 'route.add', key: `${r.service}/${b.instance}`, reason: 'instance-ready', service: r.service, instance: b.instance, address: b.address });
    }
  }
  const sameShape =
    table.length === current.size &&
    table.every((r) => {
      const o = current.get(r.service);
      return o !== undefined && o.host === r.host && o.path === r.path && o.tls === r.tls;
    });
  return { actions, table, changed: actions.length > 0 || !sameShape };
}

function desiredTable({ services, endpoints, reachable }: RoutePlanInput): Route[] {
  const byService = new Map<string, Endpoint[]>();
  for (const e of endpoints) {
    if (!reachable(e.node)) continue;
    const list = byService.get(e.service) ?? [];
    list.push(e);
    byService.set(e.service, list);
  }
  const routes: Route[] = [];
  for (const s of services) {
    if (!routed(s)) continue;
    const route = s.spec.route as NonNullable<ServiceRecord['spec']['route']>;
    const backends = (byService.get(s.name) ?? [])
      .map((e) => ({ instance: e.instance, address: e.address }))
      .sort((a, b) => a.instance.localeCompare(b.instance));
    routes.push({ service: s.name, host: route.host, path: route.path, backends, ...(route.tls ? { tls: route.tls } : {}) });
  }
  return routes.sort((a, b) => a.host.localeCompare(b.host) || a.path.localeCompare(b.path));
}

const routed = (s: ServiceRecord): boolean => !s.deletedAt && !!s.spec.route && s.spec.port !== undefined;

const hasBackend = (r: Route, b: RouteBackend): boolean => r.backends.some((x) => x.instance === b.instance && x.address === b.address);

/** Why backend b of a service leaves the table (`now` is the service's next route, if any). */
function removeReason(input: RoutePlanInput, service: ServiceRecord | undefined, now: Route | undefined, b: RouteBackend): RouteRemoveReason {
  if (!now) return service && !service.deletedAt ? 'service-has-no-route' : 'service-deleted';
  const reported = input.endpoints.filter((e) => e.service === now.service && e.instance === b.instance);
  if (reported.some((e) => e.address !== b.address && input.reachable(e.node))) return 'endpoint-changed';
  if (reported.some((e) => e.address === b.address && !input.reachable(e.node))) return 'node-unreachable';
  return 'instance-not-ready';
}
