import http from 'node:http';
import https from 'node:https';
import { createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import net, { type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import type { TimerHandle } from '../core/clock.js';
import { ProxyCore } from './core.js';
import { Exchange } from './exchange.js';
import { LeanConnection, type LeanHost } from './fast-path.js';
import { type HeadLimits, parseRequestHead } from './head.js';
import { clientAddress } from './headers.js';
import type { Route } from './table.js';
import { Tunnels } from './tunnel.js';
import { acmeChallengeToken, httpsLocation, pickCertificate, type EdgeState } from './tls.js';
import { PROXY_DEFAULTS, type ProxyOptions } from './types.js';

/** How long, and how many bytes, a refused client's further bytes are read and dropped before closing. */
const LINGER_MS = 2_000;
const LINGER_MAX_BYTES = 4 * 1024 * 1024;
const INTERNAL_ERROR = Buffer.from(JSON.stringify({ error: 'internal proxy error' }));
/** Node's parser errors and the status Node itself would answer them with; anything else is 400. */
const CLIENT_ERROR_STATUS: Record<string, number> = {
  HPE_HEADER_OVERFLOW: 431,
  HPE_CHUNK_EXTENSIONS_OVERFLOW: 413,
  ERR_HTTP_REQUEST_TIMEOUT: 408,
};

export type { ProxyMetrics, ProxyOptions } from './types.js';
export { PROXY_DEFAULTS } from './types.js';
export type { Match, Route, RouteBackend } from './table.js';
export { RouteTable } from './table.js';
export type { AcmeChallenge, EdgeCert, EdgeState } from './tls.js';

/** A plain listener: the lean path's net.Server in front, Node's HTTP server for the full path. */
interface PlainListener {
  front: net.Server;
  http: http.Server;
  /** Its client connections on the lean path now. */
  conns: Set<LeanConnection>;
}

/** Stops a plain listener from accepting; resolves once its front has closed (connections aside). */
function closePlain(p: PlainListener): Promise<void> {
  // The http.Server never listened: closing it stops its timeout checks and closes its idle connections.
  p.http.close(() => undefined);
  return new Promise<void>((resolve) => p.front.close(() => resolve()));
}

/** A TLS client gets this long to finish its handshake. */
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/** Listens (port 0 picks a free one) and resolves with the bound address; rejects on a listen error. */
function listenOn(server: net.Server, host: string, port: number): Promise<{ host: string; port: number }> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const a = server.address() as AddressInfo;
      resolve({ host: a.address, port: a.port });
    });
  });
}

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
  /** The plain listener: the lean path in front (fast-path.ts), Node's HTTP server behind it. */
  private readonly server: PlainListener;
  /** More listeners (listenAlso), each with the same handlers and bounds. */
  private readonly extra = new Set<PlainListener>();
  /** The TLS listener (`--proxy-listen-tls`), once it listens, and its port (for the 308's Location). */
  private tlsServer: https.Server | null = null;
  /** SNI name → the certificate's context (setEdge); `edgeText` keeps each one's PEM to rebuild only what changed. */
  private contexts = new Map<string, SecureContext>();
  private edgeText = new Map<string, string>();
  /** ACME HTTP-01 challenges answered now: token → key authorization. */
  private challenges = new Map<string, string>();
  private readonly opts: ProxyOptions;
  private readonly limits: HeadLimits;
  /** Connections closing after a parse error (onClientError). */
  private readonly lingering = new Set<Duplex>();
  /** Requests being answered now (for close()). */
  private active = 0;
  private onIdle: (() => void) | null = null;

  constructor(opts: ProxyOptions) {
    this.opts = opts;
    this.core = new ProxyCore(opts);
    this.limits = { maxHeaderCount: opts.maxHeaderCount ?? PROXY_DEFAULTS.maxHeaderCount };
    this.tunnels = new Tunnels(this.core, {
      ...this.limits,
      idleTimeoutMs: opts.tunnelIdleTimeoutMs ?? PROXY_DEFAULTS.tunnelIdleTimeoutMs,
      maxTunnels: opts.maxTunnels ?? PROXY_DEFAULTS.maxTunnels,
    });
    this.server = this.makePlain();
  }

  /**
   * A plain-HTTP listener: a net.Server whose connections start on the lean path, and the
   * http.Server (never listening itself) that takes a connection over when a request needs the
   * full path. The connection cap is the front's; the head and request timeouts are checked by
   * the http.Server's own interval, started here as listening would start it.
   */
  private makePlain(): PlainListener {
    const http = this.makeServer();
    http.emit('listening');
    const opts = this.opts;
    const host: LeanHost = {
      core: this.core,
      upstreams: this.core.upstreams,
      limits: this.limits,
      maxHeaderBytes: opts.maxHeaderBytes ?? PROXY_DEFAULTS.maxHeaderBytes,
      keepAliveMs: opts.clientKeepAliveMs ?? PROXY_DEFAULTS.clientKeepAliveMs,
      headersTimeoutMs: opts.clientHeadersTimeoutMs ?? PROXY_DEFAULTS.clientHeadersTimeoutMs,
      fullPathOnly: () => this.challenges.size > 0,
      handOff: (socket, pending) => {
        if (pending) socket.unshift(pending);
        http.emit('connection', socket);
        socket.resume();
      },
      requestStarted: () => {
        this.active++;
      },
      requestEnded: this.onResponseClose,
      connectionClosed: (conn) => {
        conns.delete(conn);
      },
    };
    const conns = new Set<LeanConnection>();
    const front = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
      conns.add(new LeanConnection(host, socket));
    });
    front.maxConnections = opts.maxConnections ?? PROXY_DEFAULTS.maxConnections;
    return { front, http, conns };
  }

  /**
   * An http.Server (or with `tls` an https.Server: SNI picks the certificate, HTTP/1.1 only) with
   * the proxy's handlers and client-side bounds (not listening yet).
   */
  private makeServer(tls = false): http.Server {
    const opts = this.opts;
    // Client-side bounds (see PROXY_DEFAULTS): what fails them never reaches onRequest; it is
    // answered 408 / 431 / 400 in onClientError and only that connection is closed.
    const httpOptions: http.ServerOptions = {
      noDelay: true,
      headersTimeout: opts.clientHeadersTimeoutMs ?? PROXY_DEFAULTS.clientHeadersTimeoutMs,
      requestTimeout: opts.clientRequestTimeoutMs ?? PROXY_DEFAULTS.clientRequestTimeoutMs,
      connectionsCheckingInterval: opts.timeoutCheckIntervalMs ?? PROXY_DEFAULTS.timeoutCheckIntervalMs,
      maxHeaderSize: opts.maxHeaderBytes ?? PROXY_DEFAULTS.maxHeaderBytes,
    };
    const server: http.Server = tls
      ? https.createServer(
          {
            ...httpOptions,
            // No default certificate: a client naming no host this proxy has a certificate for
            // (or none at all) fails its handshake; the connection alone is closed.
            SNICallback: (servername, cb) => {
              const ctx = pickCertificate(this.contexts, servername);
              if (ctx) cb(null, ctx);
              else cb(new Error(`no certificate for ${JSON.stringify(servername.slice(0, 253))}`));
            },
            ALPNProtocols: ['http/1.1'],
            handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
            minVersion: 'TLSv1.2',
          },
          this.onRequest,
        )
      : http.createServer(httpOptions, this.onRequest);
    if (tls) server.on('tlsClientError', (_err: Error, socket: Duplex) => socket.destroy());
    server.keepAliveTimeout = opts.clientKeepAliveMs ?? PROXY_DEFAULTS.clientKeepAliveMs;
    // One more than allowed, so that a request with too many is seen (Node drops the rest silently).
    server.maxHeadersCount = this.limits.maxHeaderCount + 1;
    server.maxConnections = opts.maxConnections ?? PROXY_DEFAULTS.maxConnections;
    server.on('clientError', this.onClientError);
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.tunnels.handle(req, socket, head));
    // CONNECT (forward-proxy tunnels) is not offered; without a listener Node would just drop the socket.
    server.on('connect', (_req: http.IncomingMessage, socket: Duplex) => {
      socket.on('error', () => undefined);
      socket.end('HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      socket.once('finish', () => socket.destroy());
      this.core.countRequest('-', 405);
    });
    return server;
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
    return listenOn(this.server.front, host, port);
  }

  /**
   * Serves TLS too (`--proxy-listen-tls`, SPEC §3.12): same table, handlers and bounds, the
   * certificate picked by the client's SNI name among those setEdge gave. Rejects when it cannot
   * listen. Once it listens, plain-HTTP requests to TLS routes are redirected to its port.
   */
  async listenTls(host: string, port: number): Promise<{ host: string; port: number }> {
    if (this.core.closing) throw new Error('the proxy is closing');
    if (this.tlsServer) throw new Error('the proxy already listens for TLS');
    const server = this.makeServer(true) as https.Server;
    const bound = await listenOn(server, host, port);
    this.tlsServer = server;
    this.core.tlsPort = bound.port;
    return bound;
  }

  /**
   * The certificates to serve and the ACME challenges to answer, whole (SPEC §3.12): from the next
   * handshake and request on. A certificate whose PEM does not load is left out and logged (the
   * others are served); an unchanged one keeps its context.
   */
  setEdge(edge: EdgeState): void {
    const contexts = new Map<string, SecureContext>();
    const text = new Map<string, string>();
    for (const c of edge.certs) {
      const host = c.host.toLowerCase();
      const pem = `${c.cert}\n${c.key}`;
      const same = this.edgeText.get(host) === pem ? this.contexts.get(host) : undefined;
      if (same) {
        contexts.set(host, same);
        text.set(host, pem);
        continue;
      }
      try {
        contexts.set(host, createSecureContext({ cert: c.cert, key: c.key, minVersion: 'TLSv1.2' }));
        text.set(host, pem);
      } catch (err) {
        this.core.log.warn({ host, error: (err as Error).message }, 'a certificate does not load; its host is not served over TLS');
      }
    }
    this.contexts = contexts;
    this.edgeText = text;
    this.challenges = new Map(edge.challenges.map((c) => [c.token, c.keyAuthorization]));
  }

  /** The hosts a certificate is served for now. */
  certificateHosts(): string[] {
    return [...this.contexts.keys()].sort();
  }

  /**
   * Listens on one more address too (the cluster network's gateway, for `orca.internal`): same
   * table, handlers and bounds (its own connection cap). Rejects when it cannot listen (nothing
   * is left open then). `close()` of the result stops that listener alone; Proxy.close() stops all.
   */
  async listenAlso(host: string, port: number): Promise<{ host: string; port: number; close(): Promise<void> }> {
    if (this.core.closing) throw new Error('the proxy is closing');
    const server = this.makePlain();
    const bound = await listenOn(server.front, host, port);
    this.extra.add(server);
    return {
      ...bound,
      close: async () => {
        if (!this.extra.delete(server)) return;
        const closed = closePlain(server);
        for (const conn of server.conns) conn.destroy();
        server.http.closeAllConnections();
        await closed;
      },
    };
  }

  /**
   * Stops listening, closes idle keep-alive connections and every tunnel, lets in-flight requests
   * finish for up to PROXY_DEFAULTS.closeGraceMs (then cuts them), and closes the backend pools.
   * Idempotent.
   */
  async close(): Promise<void> {
    this.core.closing = true;
    const plain = [this.server, ...this.extra];
    const servers: http.Server[] = [...plain.map((p) => p.http), ...(this.tlsServer ? [this.tlsServer] : [])];
    const tls = this.tlsServer;
    this.tlsServer = null;
    this.extra.clear();
    const closed = Promise.all([...plain.map(closePlain), ...(tls ? [new Promise<void>((resolve) => tls.close(() => resolve()))] : [])]);
    for (const server of servers) server.closeIdleConnections();
    for (const p of plain) for (const conn of p.conns) if (conn.idle) conn.destroy();
    this.tunnels.closeAll();
    for (const s of this.lingering) s.destroy();
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
    for (const server of servers) server.closeAllConnections();
    for (const p of plain) for (const conn of p.conns) conn.destroy();
    await closed;
    await this.core.closePools();
  }

  /**
   * The request's error boundary: what the client sent is checked into a result (4xx when bad);
   * anything that still throws is a bug in the proxy, answered 500 (or the connection cut if
   * the response had begun) and logged, for this request alone.
   */
  private readonly onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    this.active++;
    res.once('close', this.onResponseClose);
    try {
      this.handle(req, res);
    } catch (err) {
      this.core.log.error({ err, method: req.method, url: req.url?.slice(0, 200) }, 'proxy request failed');
      // Nothing here may throw again: no metrics, no helpers.
      try {
        if (res.headersSent) {
          res.destroy();
        } else {
          res.shouldKeepAlive = false;
          res.writeHead(500, { 'content-type': 'application/json', 'content-length': INTERNAL_ERROR.length });
          res.end(INTERNAL_ERROR);
        }
      } catch {
        res.destroy();
      }
    }
  };

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const t0 = performance.now();
    if (this.core.closing) res.shouldKeepAlive = false;
    const encrypted = (req.socket as TLSSocket).encrypted === true;
    const head = parseRequestHead(req.url ?? '/', req.rawHeaders, clientAddress(req.socket.remoteAddress), false, this.limits, encrypted ? 'https' : 'http');
    if (!head.ok) {
      // The client's body, if any, is not read: the connection closes after the answer.
      res.shouldKeepAlive = false;
      return this.reply(res, '-', head.status, { error: head.error });
    }
    const { path, fwd } = head;
    // ACME HTTP-01 (SPEC §3.12): a challenge the control plane is answering now, whatever the host
    // (the CA asks on the plain port, with the host being proven). Other tokens go to the routes.
    if (this.challenges.size > 0 && req.method === 'GET') {
      const token = acmeChallengeToken(path);
      const answer = token === null ? undefined : this.challenges.get(token);
      if (answer !== undefined) return this.replyText(res, 200, answer);
    }
    const m = this.core.table.match(fwd.host, path);
    if (m.kind !== 'route') return this.reply(res, '-', 404, { error: m.kind === 'no-host' ? 'unknown host' : 'no route for path' });
    const route = m.route;
    if (route.tls && !encrypted && acmeChallengeToken(path) === null) {
      // The request's body, if any, is not read: the connection closes after the answer.
      if (fwd.hasBody) res.shouldKeepAlive = false;
      res.writeHead(308, { location: httpsLocation(fwd.host ?? '', path, this.core.tlsPort), 'content-length': 0 });
      res.end();
      this.core.countRequest(route.service, 308);
      return;
    }
    const address = this.core.first(route);
    if (address === undefined) return this.reply(res, route.service, 503, { error: 'no ready instance', service: route.service });
    new Exchange(this.core, req, res, route, fwd, path, t0).start(address);
  }

  /**
   * A request Node's parser refused (bad syntax 400, head too large 431) is answered the way Node
   * would, then closed with a bounded lingering close — what the client still sends is read and
   * dropped for up to LINGER_MS (at most LINGER_MAX_BYTES) — so that the answer is not lost to the
   * TCP reset that closing on unread data causes (nginx's lingering_close). A head or request
   * timeout is 408 and the connection is closed at once, as Node does.
   */
  private readonly onClientError = (err: Error & { code?: string }, socket: Duplex): void => {
    socket.on('error', () => undefined);
    // Node's parser reports every further chunk of a failed connection again: one answer is enough.
    if (this.lingering.has(socket)) return;
    const s = socket as Duplex & { bytesWritten?: number };
    if (err.code === 'ECONNRESET' || !socket.writable || (s.bytesWritten ?? 0) > 0) {
      socket.destroy();
      return;
    }
    const status = CLIENT_ERROR_STATUS[err.code ?? ''] ?? 400;
    // A request timeout can hit a request already being proxied (its body too slow): that one is
    // counted when its exchange ends (499), not twice. (_httpMessage: the response Node has attached.)
    if (!(socket as Duplex & { _httpMessage?: unknown })._httpMessage) this.core.countRequest('-', status);
    const answer = `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`;
    if (status === 408) {
      // A slow client, maybe with a request in flight: no more time for it.
      socket.write(answer);
      socket.destroy();
      return;
    }
    this.lingering.add(socket);
    let bytes = 0;
    const timer = this.core.clock.setTimeout(() => socket.destroy(), LINGER_MS);
    socket.on('data', (c: Buffer) => {
      bytes += c.length;
      if (bytes > LINGER_MAX_BYTES) socket.destroy();
    });
    socket.once('close', () => {
      this.core.clock.clearTimeout(timer);
      this.lingering.delete(socket);
    });
    socket.end(answer);
    socket.resume();
  };

  private readonly onResponseClose = (): void => {
    this.active--;
    if (this.active === 0) this.onIdle?.();
  };

  /** A text answer of the proxy itself (an ACME challenge's key authorization). */
  private replyText(res: http.ServerResponse, status: number, text: string): void {
    res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text) });
    res.end(text);
    this.core.countRequest('-', status);
  }

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
