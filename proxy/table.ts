/**
 * The proxy's routing table: Host header and path → route. Pure and immutable; the proxy swaps
 * whole tables (SPEC §3.5).
 *
 * Host: lower-cased, port and a trailing dot stripped. An exact host beats a wildcard; a wildcard
 * `*.example.com` matches one or more labels before `.example.com` but not the bare domain, and
 * the most specific (longest) wildcard wins. Once a host is chosen, only its routes compete: a
 * path none of them matches is `no-path`, it does not fall through to a wildcard (the way a
 * server block is chosen before its locations in nginx).
 *
 * Path: the longest prefix wins, on segment boundaries: `/api` matches `/api`, `/api/x` and
 * `/api?q`, not `/apix`; `/` matches everything. Several services may share a host on different
 * paths. Two routes with the same host and path: the first given wins.
 */

import type { Backend } from '../core/endpoint.js';

/** A backend of a route: an instance and the `host:port` the proxy connects to. */
export type RouteBackend = Backend;

export interface Route {
  service: string;
  /** Exact host name, or a wildcard like "*.example.com". */
  host: string;
  /** Path prefix; "/" matches every path. */
  path: string;
  /** Ready backends, in a stable order (round-robin walks it). Empty: the route answers 503. */
  backends: RouteBackend[];
  /** HTTPS at the edge (SPEC §3.12): plain HTTP to this route is redirected (308) to https. Absent: plain. */
  tls?: 'acme' | 'manual';
}

export type Match = { kind: 'route'; route: Route } | { kind: 'no-host' } | { kind: 'no-path' };

interface Entry {
  prefix: string;
  route: Route;
}

const NO_HOST: Match = Object.freeze({ kind: 'no-host' });
const NO_PATH: Match = Object.freeze({ kind: 'no-path' });

export class RouteTable {
  private readonly list: Route[];
  private readonly exact = new Map<string, Entry[]>();
  /** Wildcard routes by their suffix including the dot: "*.example.com" → ".example.com". */
  private readonly wildcard = new Map<string, Entry[]>();
  private readonly matches = new Map<Route, Match>();

  constructor(routes: Route[]) {
    this.list = routes.slice();
    for (const route of this.list) {
      const host = normaliseRouteHost(route.host);
      if (host === '') continue;
      const wild = host.startsWith('*.');
      const map = wild ? this.wildcard : this.exact;
      const key = wild ? host.slice(1) : host;
      let entries = map.get(key);
      if (!entries) map.set(key, (entries = []));
      entries.push({ prefix: normalisePrefix(route.path), route });
      this.matches.set(route, { kind: 'route', route });
    }
    // Longest prefix first; sort is stable, so among equal prefixes the first given stays first.
    for (const entries of [...this.exact.values(), ...this.wildcard.values()]) {
      entries.sort((a, b) => b.prefix.length - a.prefix.length);
    }
  }

  /**
   * The route for a request. `hostHeader` is the raw Host header (any case, maybe with a port);
   * `path` is the request target (a query string is ignored).
   */
  match(hostHeader: string | undefined, path: string): Match {
    const host = hostFromHeader(hostHeader);
    if (host === '') return NO_HOST;
    let entries = this.exact.get(host);
    if (!entries && this.wildcard.size > 0) {
      // From the longest suffix to the shortest; i > 0 keeps at least one label before it.
      for (let i = host.indexOf('.'); i > 0 && !entries; i = host.indexOf('.', i + 1)) {
        entries = this.wildcard.get(host.slice(i));
      }
    }
    if (!entries) return NO_HOST;
    const q = path.indexOf('?');
    const p = q === -1 ? path : path.slice(0, q);
    for (const e of entries) {
      if (prefixMatches(e.prefix, p)) return this.matches.get(e.route) ?? { kind: 'route', route: e.route };
    }
    return NO_PATH;
  }

  /** The routes this table was built from, in the order given. */
  routes(): Route[] {
    return this.list.slice();
  }
}

/** Host header → bare lower-case host name ("" when missing). Handles "[::1]:8080". */
export function hostFromHeader(header: string | undefined): string {
  if (!header) return '';
  let host = header;
  if (host.charCodeAt(0) === 91 /* [ */) {
    const end = host.indexOf(']');
    host = end === -1 ? host : host.slice(0, end + 1);
  } else {
    const colon = host.indexOf(':');
    if (colon !== -1) host = host.slice(0, colon);
  }
  if (host.endsWith('.')) host = host.slice(0, -1);
  return host.toLowerCase();
}

function normaliseRouteHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h;
}

/** "" and "/" → "/"; otherwise a leading slash and no trailing one: "api/" → "/api". */
function normalisePrefix(path: string): string {
  let p = path.startsWith('/') ? path : `/${path}`;
  while (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
  return p;
}

function prefixMatches(prefix: string, path: string): boolean {
  if (prefix === '/') return true;
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || path.charCodeAt(prefix.length) === 47 /* / */;
}
