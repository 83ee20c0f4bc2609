import { createRequire } from 'node:module';
import type { Pool as UndiciPool } from 'undici';
import type { Clock, TimerHandle } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import { UpstreamPool } from './fast-path.js';
import { RouteTable, type Route } from './table.js';
import { PROXY_DEFAULTS, type ProxyMetrics, type ProxyOptions } from './types.js';

/**
 * undici's Pool, and only it, loaded on the first request that takes the full path (a body, an
 * upgrade…): the lean path (fast-path.ts) never needs it, so an idle proxy or one serving only
 * GETs does not carry it. Only the Pool: undici's index also loads fetch, WebSocket, EventSource,
 * the cache and the mock agents (110 modules; ~3 MB of V8 heap and several MB of resident memory)
 * that the proxy never uses. undici has no `exports` map, so the file is reachable; the version
 * is pinned by package-lock.json, and proxy/core.test.ts checks the class is undici's own Pool
 * and that the index stays unloaded.
 */
let PoolClass: typeof UndiciPool | undefined;
export function undiciPool(): typeof UndiciPool {
  return (PoolClass ??= createRequire(import.meta.url)('undici/lib/dispatcher/pool.js') as typeof UndiciPool);
}
/** Whether undiciPool() has loaded undici in this process (tests). */
export function undiciLoaded(): boolean {
  return PoolClass !== undefined;
}
type Pool = UndiciPool;

/**
 * The proxy's shared state, used by HTTP exchanges and upgrade tunnels: the current table,
 * round-robin positions, keep-alive pools per backend, in-flight counts and drains.
 */
export class ProxyCore {
  readonly log: Logger;
  readonly clock: Clock;
  readonly metrics: ProxyMetrics | undefined;
  readonly connectTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly idleTimeoutMs: number;
  /** The lean path's keep-alive connections to backends (fast-path.ts); undici's pools serve the full path. */
  readonly upstreams: UpstreamPool;
  private readonly poolOptions: UndiciPool.Options;

  table = new RouteTable([]);
  /** Set once close() has begun: responses ask for the connection to close. */
  closing = false;
  /** The TLS listener's port once it listens (SPEC §3.12: where plain HTTP to a TLS route is redirected). */
  tlsPort: number | null = null;

  /** Next round-robin position per route of the current table. */
  private rr = new Map<Route, number>();
  private readonly pools = new Map<string, Pool>();
  private readonly inflightBy = new Map<string, number>();
  private readonly drains = new Map<string, Set<() => void>>();
  private readonly warned = new Map<string, { at: number; suppressed: number }>();
  /** Backends that failed to connect, until when they are skipped. */
  private readonly failedUntil = new Map<string, number>();

  constructor(opts: ProxyOptions) {
    this.log = opts.log;
    this.clock = opts.clock;
    this.metrics = opts.metrics;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? PROXY_DEFAULTS.connectTimeoutMs;
    this.headersTimeoutMs = opts.headersTimeoutMs ?? PROXY_DEFAULTS.headersTimeoutMs;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? PROXY_DEFAULTS.idleTimeoutMs;
    this.upstreams = new UpstreamPool(this.connectTimeoutMs);
    this.poolOptions = {
      // No cap by default: a request over a cap would wait in the pool's queue behind slow ones
      // (up to the backend's pace, not its own); requests in flight are bounded by the client
      // connections (maxConnections), one request each, as nginx's worker_connections bound them.
      connections: opts.maxSocketsPerBackend ?? null,
      pipelining: 1,
      connect: { timeout: this.connectTimeoutMs },
      headersTimeout: this.headersTimeoutMs,
      bodyTimeout: this.idleTimeoutMs,
    };
  }

  /**
   * Swaps in a new table. Round-robin positions carry over for routes that stay; pools of backends
   * that left are closed gracefully (requests on them finish, none is added).
   */
  setRoutes(routes: Route[]): void {
    const table = new RouteTable(routes);
    const old = new Map<string, number>();
    for (const [route, n] of this.rr) old.set(routeKey(route), n);
    const rr = new Map<Route, number>();
    const live = new Set<string>();
    for (const route of table.routes()) {
      rr.set(route, old.get(routeKey(route)) ?? 0);
      for (const b of route.backends) live.add(b.address);
    }
    // table.routes() copies the list but keeps the Route objects the table's matches return.
    this.table = table;
    this.rr = rr;
    this.upstreams.prune(live);
    for (const [address, pool] of this.pools) {
      if (live.has(address)) continue;
      this.pools.delete(address);
      this.failedUntil.delete(address);
      pool.close().catch((err: unknown) => this.log.debug({ err, address }, 'proxy pool close failed'));
    }
  }

  /**
   * The backend a new request on this route goes to (round-robin), or undefined when none.
   * A backend that could not be connected to lately is skipped while another one is left.
   */
  first(route: Route): string | undefined {
    const list = route.backends;
    const n = list.length;
    if (n === 0) return undefined;
    const i = (this.rr.get(route) ?? 0) % n;
    this.rr.set(route, i + 1 >= n ? 0 : i + 1);
    const address = list[i]?.address;
    if (this.failedUntil.size === 0 || address === undefined || !this.failing(address)) return address;
    for (let k = 1; k < n; k++) {
      const other = list[(i + k) % n]?.address;
      if (other !== undefined && !this.failing(other)) return other;
    }
    return address;
  }

  /**
   * The backend for a retry: looked up again in the current table (a backend removed since is
   * never chosen), the next one after `failed` in round-robin order that is not in `tried`,
   * preferring one that has not failed to connect lately.
   */
  next(host: string | undefined, url: string, tried: ReadonlySet<string>, failed: string): { route: Route; address: string } | undefined {
    const m = this.table.match(host, url);
    if (m.kind !== 'route') return undefined;
    const list = m.route.backends;
    const n = list.length;
    const start = list.findIndex((b) => b.address === failed) + 1;
    let fallback: string | undefined;
    for (let k = 0; k < n; k++) {
      const address = list[(start + k) % n]?.address;
      if (address === undefined || tried.has(address)) continue;
      if (!this.failing(address)) return { route: m.route, address };
      fallback ??= address;
    }
    return fallback === undefined ? undefined : { route: m.route, address: fallback };
  }

  /**
   * Notes that a backend could not be connected to (refused, unreachable, connect timeout):
   * new requests avoid it for PROXY_DEFAULTS.failedBackendSkipMs, so that a dead backend costs
   * a retry (or a connect timeout) now and then rather than on every round.
   */
  connectFailed(address: string): void {
    this.failedUntil.set(address, this.clock.now() + PROXY_DEFAULTS.failedBackendSkipMs);
  }

  private failing(address: string): boolean {
    const until = this.failedUntil.get(address);
    if (until === undefined) return false;
    if (this.clock.now() < until) return true;
    this.failedUntil.delete(address);
    return false;
  }

  /** The keep-alive pool of a backend (created on first use). */
  pool(address: string): Pool {
    let pool = this.pools.get(address);
    if (!pool) {
      // Callers only pass addresses of the current table; a stray one is closed by the next setRoutes.
      pool = new (undiciPool())(`http://${address}`, this.poolOptions);
      this.pools.set(address, pool);
    }
    return pool;
  }

  acquire(address: string): void {
    this.inflightBy.set(address, (this.inflightBy.get(address) ?? 0) + 1);
  }

  release(address: string): void {
    const n = (this.inflightBy.get(address) ?? 1) - 1;
    if (n > 0) {
      this.inflightBy.set(address, n);
      return;
    }
    this.inflightBy.delete(address);
    const waiters = this.drains.get(address);
    if (!waiters) return;
    this.drains.delete(address);
    for (const w of waiters) w();
  }

  inflight(address: string): number {
    return this.inflightBy.get(address) ?? 0;
  }

  drain(address: string, maxMs: number): Promise<void> {
    if (this.inflight(address) === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let waiters = this.drains.get(address);
      if (!waiters) this.drains.set(address, (waiters = new Set()));
      let timer: TimerHandle | undefined;
      const done = () => {
        if (timer) this.clock.clearTimeout(timer);
        waiters.delete(done);
        if (waiters.size === 0 && this.drains.get(address) === waiters) this.drains.delete(address);
        resolve();
      };
      waiters.add(done);
      timer = this.clock.setTimeout(done, maxMs);
    });
  }

  countRequest(route: string, status: number): void {
    this.metrics?.request(route, status);
  }

  observeUpstream(route: string, seconds: number): void {
    this.metrics?.upstreamSeconds(route, seconds);
  }

  /** Warns about a failed upstream attempt, at most once per backend per warnIntervalMs. */
  upstreamFailed(fields: { service: string; address: string; err: unknown; phase: string; retry: boolean }): void {
    const now = this.clock.now();
    const w = this.warned.get(fields.address);
    if (w && now - w.at < PROXY_DEFAULTS.warnIntervalMs) {
      w.suppressed++;
      return;
    }
    const suppressed = w?.suppressed ?? 0;
    this.warned.set(fields.address, { at: now, suppressed: 0 });
    if (this.warned.size > 1024) this.warned.clear();
    this.log.warn({ ...fields, err: errSummary(fields.err), suppressed }, 'proxy upstream failed');
  }

  async closePools(): Promise<void> {
    this.upstreams.prune();
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(() => undefined)));
  }
}

function routeKey(r: Route): string {
  return `${r.service}\n${r.host}\n${r.path}`;
}

/** The parts of an upstream error worth a log line (no stack: these are expected events). */
export function errSummary(err: unknown): { code?: string; message: string } {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' ? { code, message: err.message } : { message: err.message };
  }
  return { message: String(err) };
}
