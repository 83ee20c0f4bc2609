import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { TimerHandle } from '../core/clock.js';
import { ProxyCore } from './core.js';
import { Exchange } from './exchange.js';
import { clientAddress, upstreamRequestHeaders } from './headers.js';
import type { Route } from './table.js';
import { Tunnels } from './tunnel.js';
import { PROXY_DEFAULTS, type ProxyOptions } from './types.js';

export type { ProxyMetrics, ProxyOptions } from './types.js';
export { PROXY_DEFAULTS } from './types.js';
export type { Match, Route, RouteBackend } from './table.js';
export { RouteTable } from './table.js';

/**
 * The built-in HTTP reverse proxy (SPEC §3.5): routes by Host and longest path prefix,
 * round-robin over ready backends, keep-alive pools to them, retries what is safe to retry,
 * passes upgrades (WebSocket) through, and lets a backend be drained before it stops.
 *
 * Constructing does no I/O; listen() opens the port, close() ends everything.
 */
export class Proxy {
  private readonly core: ProxyCore;
  private readonly tunnels: Tunnels;
  private readonly server: http.Server;
  /** Requests being answered now (for close()). */
  private active = 0;
  private onIdle: (() => void) | null = null;

  constructor(opts: ProxyOptions) {
    this.core = new ProxyCore(opts);
    this.tunnels = new Tunnels(this.core);
    this.server = http.createServer({ noDelay: true }, this.onRequest);
    this.server.keepAliveTimeout = PROXY_DEFAULTS.clientKeepAliveMs;
    this.server.on('upgrade', (req: http.IncomingMessage, socket, head: Buffer) => this.tunnels.handle(req, socket, head));
  }

  /**
   * Swaps the routing table at once. From the next request on, a backend that is not in the new
   * table gets nothing new (retries look the table up again); requests already on it finish.
   */
  setRoutes(routes: Route[]): void {
    this.core.setRoutes(routes);
  }

  /** The current routes. */
  routes(): Route[] {
    return this.core.table.routes();
  }

  /** Requests and open tunnels in flight to a backend ("host:port"). */
  inflight(address: string): number {
    return this.core.inflight(address);
  }

  /**
   * Resolves once nothing is in flight to the backend, or after maxMs on the clock, whichever
   * comes first; never rejects. Remove the backend with setRoutes first, or it keeps getting work.
   */
  drain(address: string, maxMs: number): Promise<void> {
    return this.core.drain(address, maxMs);
  }

  /** Starts listening; port 0 picks a free one. Resolves with the bound address. */
  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        const a = this.server.address() as AddressInfo;
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  /**
   * Stops listening, closes idle keep-alive connections and every tunnel, lets in-flight requests
   * finish for up to PROXY_DEFAULTS.closeGraceMs (then cuts them), and closes the backend pools.
   * Idempotent.
   */
  async close(): Promise<void> {
    this.core.closing = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    this.tunnels.closeAll();
    if (this.active > 0) {
      await new Promise<void>((resolve) => {
        let timer: TimerHandle | undefined;
        const done = () => {
          if (timer) this.core.clock.clearTimeout(timer);
          this.onIdle = null;
          resolve();
        };
        this.onIdle = done;
        timer = this.core.clock.setTimeout(done, PROXY_DEFAULTS.closeGraceMs);
      });
    }
    this.server.closeAllConnections();
    await closed;
    await this.core.closePools();
  }

  private readonly onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const t0 = performance.now();
    this.active++;
    res.once('close', this.onResponseClose);
    if (this.core.closing) res.shouldKeepAlive = false;
    const url = req.url ?? '/';
    const fwd = upstreamRequestHeaders(req.rawHeaders, clientAddress(req.socket.remoteAddress));
    if (url.charCodeAt(0) !== 47 /* / */) return this.reply(res, '-', 400, { error: 'bad request target' });
    const m = this.core.table.match(fwd.host, url);
    if (m.kind !== 'route') return this.reply(res, '-', 404, { error: m.kind === 'no-host' ? 'unknown host' : 'no route for path' });
    const route = m.route;
    const address = this.core.first(route);
    if (address === undefined) return this.reply(res, route.service, 503, { error: 'no ready instance', service: route.service });
    new Exchange(this.core, req, res, route, fwd, t0).start(address);
  };

  private readonly onResponseClose = (): void => {
    this.active--;
    if (this.active === 0) this.onIdle?.();
  };

  /** Answers without a backend. The client's body, if any, is left to Node to discard. */
  private reply(res: http.ServerResponse, service: string, status: number, body: object): void {
    const payload = JSON.stringify(body);
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) };
    if (status === 503) headers['retry-after'] = '1';
    res.writeHead(status, headers);
    res.end(payload);
    this.core.countRequest(service, status);
    if (this.core.log.isLevelEnabled('debug')) this.core.log.debug({ service, status }, 'proxy answered without a backend');
  }
}
