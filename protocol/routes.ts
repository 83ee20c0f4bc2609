/**
 * The route table the control plane pushes to every agent that runs a proxy (SPEC §3.11 "ingress
 * on every node"): per route (service, host, path) its ready backends on every node, each with
 * the node that runs it, so an agent can put its own node's instances from its own state.
 *
 * On the wire it is the `routes` server message (protocol/messages.ts), the whole table each
 * time. A table too large for one message (LIMITS.maxMessageBytes) is sent in parts (`more:
 * true` on all but the last, a route's backends cut over several entries of the same route when
 * needed); the agent applies a table only once its last part is in (`takeRoutesPart`). Bounds: at
 * most ROUTE_LIMITS.entries entries and ROUTE_LIMITS.backends backends per message, at most
 * ROUTE_LIMITS.totalBackends backends in a whole table — the server cuts what is over (the
 * backends after that many are left out, with a warning), an agent drops a table that is over and
 * keeps serving its last one. Pure.
 */
import { z } from 'zod';
import { jsonBytes } from './split.js';

export const ROUTE_LIMITS = {
  /** Route entries in one message. */
  entries: 4096,
  /** Backends of one entry. */
  backends: 4096,
  /** Backends of a whole table, all parts together. */
  totalBackends: 50_000,
  host: 253,
  path: 1024,
  /** What one message's entries may add up to (JSON bytes), under the 1 MiB message limit. */
  messageBudgetBytes: 768 * 1024,
} as const;

/** A backend as pushed to the agents: the instance, where it answers, and the node it runs on. */
export interface RouteBackendEntry {
  instance: string;
  address: string;
  node: string;
}

/** One route of the pushed table. */
export interface RouteEntry {
  service: string;
  host: string;
  path: string;
  backends: RouteBackendEntry[];
  /** HTTPS at the edge (SPEC §3.12); absent: plain. */
  tls?: 'acme' | 'manual';
}

/** The `routes` message: the whole table, or a part of it (`more`: parts follow). */
export interface RoutesMessage {
  type: 'routes';
  routes: RouteEntry[];
  more?: boolean;
}

const bounded = (max: number) => z.string().min(1).max(max);
/** `node` is "" when the server could not tell (never this agent's node, then). */
const routeBackendEntry = z.strictObject({ instance: bounded(128), address: bounded(300), node: z.string().max(253) });
const routeEntry = z.strictObject({
  service: bounded(253),
  host: bounded(ROUTE_LIMITS.host),
  path: bounded(ROUTE_LIMITS.path),
  backends: z.array(routeBackendEntry).max(ROUTE_LIMITS.backends),
  tls: z.enum(['acme', 'manual']).optional(),
});
/** The schema of the `routes` server message (a member of serverMessage). */
export const routesMessageSchema = z.strictObject({
  type: z.literal('routes'),
  routes: z.array(routeEntry).max(ROUTE_LIMITS.entries),
  more: z.boolean().optional(),
});

/**
 * The table as messages: one when it fits, else parts in order (all but the last with `more`).
 * A route with more backends than fit in one part is cut into several entries of that route.
 * Backends past ROUTE_LIMITS.totalBackends are left out (`cut` counts them). Always at least one
 * message: an empty table is a table too.
 */
export function routeMessages(table: readonly RouteEntry[], budgetBytes: number = ROUTE_LIMITS.messageBudgetBytes): { messages: RoutesMessage[]; cut: number } {
  const parts: RouteEntry[][] = [];
  let current: RouteEntry[] = [];
  let bytes = 0;
  let total = 0;
  let cut = 0;
  const flush = () => {
    parts.push(current);
    current = [];
    bytes = 0;
  };
  for (const route of table) {
    const head = jsonBytes({ ...route, backends: [] }) + 1;
    let backends = route.backends;
    if (total + backends.length > ROUTE_LIMITS.totalBackends) {
      const room = Math.max(0, ROUTE_LIMITS.totalBackends - total);
      cut += backends.length - room;
      backends = backends.slice(0, room);
    }
    total += backends.length;
    const open = (): RouteEntry => {
      const entry: RouteEntry = { service: route.service, host: route.host, path: route.path, backends: [], ...(route.tls ? { tls: route.tls } : {}) };
      current.push(entry);
      bytes += head;
      return entry;
    };
    // One entry per route at least (a route without backends is a route: it answers 503).
    if (current.length > 0 && (bytes + head > budgetBytes || current.length >= ROUTE_LIMITS.entries)) flush();
    let entry = open();
    for (const b of backends) {
      const size = jsonBytes(b) + 1;
      if (entry.backends.length > 0 && (bytes + size > budgetBytes || entry.backends.length >= ROUTE_LIMITS.backends)) {
        flush();
        entry = open();
      }
      entry.backends.push(b);
      bytes += size;
    }
  }
  flush();
  const messages = parts.map((routes, k): RoutesMessage => (k < parts.length - 1 ? { type: 'routes', routes, more: true } : { type: 'routes', routes }));
  return { messages, cut };
}

/** A table coming in parts: what came so far, or `over` once it went past the bounds (the rest is skipped). */
export type RoutesInProgress = { over: false; routes: RouteEntry[]; backends: number } | { over: true };

/**
 * The agent's side of a table in parts: `partial` is what came so far (null when no table is
 * under way). Returns the new partial, and the whole table when this was its last part (entries
 * of the same route joined). A table whose parts go past the bounds is dropped whole — `dropped`
 * says why, once, and its remaining parts are skipped up to its last — and the agent keeps
 * serving its last table.
 */
export function takeRoutesPart(partial: RoutesInProgress | null, msg: RoutesMessage): { partial: RoutesInProgress | null; table?: RouteEntry[]; dropped?: string } {
  let next: RoutesInProgress = partial ?? { over: false, routes: [], backends: 0 };
  let dropped: string | undefined;
  if (!next.over) {
    const routes = next.routes.concat(msg.routes);
    const backends = next.backends + msg.routes.reduce((n, r) => n + r.backends.length, 0);
    if (backends > ROUTE_LIMITS.totalBackends || routes.length > ROUTE_LIMITS.totalBackends) {
      next = { over: true };
      dropped = `route table over ${ROUTE_LIMITS.totalBackends} backends`;
    } else next = { over: false, routes, backends };
  }
  const said = dropped ? { dropped } : {};
  if (msg.more) return { partial: next, ...said };
  return next.over ? { partial: null, ...said } : { partial: null, table: joinEntries(next.routes) };
}

/** Entries of the same route (service, host, path) as one, in first-seen order. */
function joinEntries(entries: readonly RouteEntry[]): RouteEntry[] {
  const byKey = new Map<string, RouteEntry>();
  for (const e of entries) {
    const key = `${e.service}\n${e.host}\n${e.path}`;
    const seen = byKey.get(key);
    if (seen) seen.backends = seen.backends.concat(e.backends);
    else byKey.set(key, { ...e, backends: e.backends.slice() });
  }
  return [...byKey.values()];
}
