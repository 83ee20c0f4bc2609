import http from 'node:http';
import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import type { ProxyCore } from './core.js';
import { parseRequestHead, type HeadLimits } from './head.js';
import { httpsLocation } from './tls.js';
import type { TLSSocket } from 'node:tls';
import { clientAddress, downstreamResponseHeaders } from './headers.js';
import type { Route } from './table.js';
import { CLIENT_CLOSED } from './types.js';

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  308: 'Permanent Redirect',
  404: 'Not Found',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** TCP keep-alive probes on both legs of a tunnel, so a dead peer is noticed without an app-level ping. */
const TUNNEL_KEEPALIVE_MS = 30_000;

export interface TunnelLimits extends HeadLimits {
  /** A tunnel with no byte either way for this long is closed. */
  idleTimeoutMs: number;
  /** Tunnels open or being set up at once; more get 503. */
  maxTunnels: number;
}

type Failure = Error & { code?: string };

/**
 * WebSocket upgrades. Node hands the proxy the raw socket of every request with an `Upgrade`
 * header; only `GET` with `Upgrade: websocket` is tunnelled. Any other upgrade (h2c, TLS, …) is
 * answered 400 and the connection closed: Node has already detached the socket from its HTTP
 * parser, so it cannot go on as plain HTTP, and a clear refusal beats a half-relayed exchange.
 *
 * A WebSocket upgrade is routed like HTTP and sent to the backend with Node's HTTP client, so
 * the backend's answer is parsed, not guessed at:
 *  - `101 Switching Protocols`: the 101 head is relayed and bytes are piped both ways (with
 *    backpressure) until either side closes or nothing moves for `idleTimeoutMs`;
 *  - any other answer (400, 404, 200 …) is relayed as a plain HTTP response, hop-by-hop headers
 *    dropped, with `Connection: close`, and the connection is closed after it. Nothing is tunnelled.
 * A backend that refuses the connection or times out connecting is replaced by the next one
 * (nothing was sent); one that accepted but fails before answering is 502 (504 on its headers
 * timeout). At most `maxTunnels` tunnels are open or being set up at once: 503 beyond.
 * A tunnel counts as in flight to its backend until either side closes.
 */
export class Tunnels {
  /** Every socket of a tunnel, client and upstream, for closeAll(). */
  private readonly open = new Set<Duplex>();
  /** Tunnels open or being set up. */
  private count = 0;

  constructor(
    private readonly core: ProxyCore,
    private readonly limits: TunnelLimits,
  ) {}

  /** Tunnels open or being set up now. */
  get size(): number {
    return this.count;
  }

  /** Handles a server 'upgrade' event: the error boundary of one upgrade request. */
  handle(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined); // reported through 'close'
    this.open.add(socket);
    socket.once('close', () => this.open.delete(socket));
    try {
      this.start(req, socket, head);
    } catch (err) {
      this.core.log.error({ err, url: req.url?.slice(0, 200) }, 'proxy upgrade failed');
      this.reject(socket, '-', 500, { error: 'internal proxy error' });
    }
  }

  private start(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const t0 = performance.now();
    const encrypted = (req.socket as TLSSocket).encrypted === true;
    const parsed = parseRequestHead(req.url ?? '/', req.rawHeaders, clientAddress(req.socket.remoteAddress), true, this.limits, encrypted ? 'https' : 'http');
    if (!parsed.ok) return this.reject(socket, '-', parsed.status, { error: parsed.error });
    if (req.method !== 'GET' || (req.headers.upgrade ?? '').trim().toLowerCase() !== 'websocket') {
      return this.reject(socket, '-', 400, { error: 'only WebSocket upgrades (GET with Upgrade: websocket) are proxied' });
    }
    const { path, fwd } = parsed;
    if (fwd.hasBody) return this.reject(socket, '-', 400, { error: 'an upgrade request cannot carry a body' });
    if (this.core.closing) return this.reject(socket, '-', 503, { error: 'proxy is shutting down' });
    const m = this.core.table.match(fwd.host, path);
    if (m.kind !== 'route') return this.reject(socket, '-', 404, { error: m.kind === 'no-host' ? 'unknown host' : 'no route for path' });
    const route = m.route;
    if (route.tls && !encrypted) {
      return this.reject(socket, route.service, 308, { error: 'this route is served over https' }, `Location: ${httpsLocation(fwd.host ?? '', path, this.core.tlsPort)}\r\n`);
    }
    const retryAfter = 'Retry-After: 1\r\n';
    if (this.count >= this.limits.maxTunnels) return this.reject(socket, route.service, 503, { error: 'too many open tunnels', service: route.service }, retryAfter);
    const first = this.core.first(route);
    if (first === undefined) return this.reject(socket, route.service, 503, { error: 'no ready instance', service: route.service }, retryAfter);
    this.count++;
    socket.once('close', () => this.count--);

    const tried = new Set<string>();
    const attempt = (current: Route, address: string): void => {
      tried.add(address);
      this.core.acquire(address);
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        this.core.release(address);
      };
      let connected = false;
      let settled = false;
      const { host, port } = splitAddress(address);
      // Until connected: the connect timeout (the `timeout` option covers connecting, setTimeout()
      // would not); then the backend has headersTimeoutMs of silence to answer.
      const up = http.request({ host, port, method: 'GET', path, headers: fwd.headers, setHost: false, agent: false, timeout: this.core.connectTimeoutMs });
      up.on('timeout', () => up.destroy(Object.assign(new Error(connected ? 'upstream headers timeout' : 'connect timeout'), { code: 'ETIMEDOUT' })));
      up.on('socket', (s: net.Socket) => {
        this.open.add(s);
        s.once('close', () => {
          this.open.delete(s);
          release();
        });
        s.once('connect', () => {
          connected = true;
          up.setTimeout(this.core.headersTimeoutMs);
        });
      });
      const onClientGone = () => up.destroy();
      socket.once('close', onClientGone);

      up.on('error', (err: Failure) => {
        if (settled) return;
        settled = true;
        socket.off('close', onClientGone);
        release();
        if (socket.destroyed) return this.core.countRequest(current.service, CLIENT_CLOSED);
        const next = connected ? undefined : this.core.next(fwd.host, path, tried, address);
        if (!connected) this.core.connectFailed(address);
        this.core.upstreamFailed({ service: current.service, address, err, phase: connected ? 'request' : 'connect', retry: next !== undefined });
        if (next) return attempt(next.route, next.address);
        const status = err.code === 'ETIMEDOUT' ? 504 : 502;
        this.reject(socket, current.service, status, { error: status === 504 ? 'upstream timed out' : 'upstream unavailable', service: current.service });
      });

      up.on('upgrade', (res: IncomingMessage, upstream: net.Socket, upHead: Buffer) => {
        settled = true;
        socket.off('close', onClientGone);
        this.core.observeUpstream(current.service, (performance.now() - t0) / 1000);
        this.splice(current.service, socket, head, res, upstream, upHead);
      });

      up.on('response', (res: IncomingMessage) => {
        settled = true;
        socket.off('close', onClientGone);
        this.core.observeUpstream(current.service, (performance.now() - t0) / 1000);
        this.relayRefusal(current.service, socket, res, up);
      });
      up.end();
    };
    attempt(route, first);
  }

  /** The backend switched protocols: relay its 101 and pipe both ways. */
  private splice(service: string, socket: Duplex, head: Buffer, res: IncomingMessage, upstream: net.Socket, upHead: Buffer): void {
    upstream.on('error', () => undefined); // reported through 'close'
    upstream.setTimeout(0);
    if (socket.destroyed) {
      upstream.destroy();
      return this.core.countRequest(service, CLIENT_CLOSED);
    }
    this.core.countRequest(service, 101);
    const close = () => {
      upstream.destroy();
      socket.destroy();
    };
    upstream.once('close', close);
    socket.once('close', close);
    // The 101 is relayed whole: its Upgrade and Connection headers are the point of it.
    let block = `HTTP/1.1 101 ${res.statusMessage || 'Switching Protocols'}\r\n`;
    for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) block += `${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}\r\n`;
    socket.write(`${block}\r\n`);
    if (upHead.length > 0) socket.write(upHead);
    if (head.length > 0) upstream.write(head);
    upstream.setNoDelay(true);
    upstream.setKeepAlive(true, TUNNEL_KEEPALIVE_MS);
    upstream.setTimeout(this.limits.idleTimeoutMs, close);
    if (socket instanceof net.Socket) {
      socket.setNoDelay(true);
      socket.setKeepAlive(true, TUNNEL_KEEPALIVE_MS);
      socket.setTimeout(this.limits.idleTimeoutMs, close);
    }
    upstream.pipe(socket);
    socket.pipe(upstream);
    upstream.resume();
  }

  /**
   * The backend answered the upgrade with something other than 101: relay that as a plain HTTP
   * response (hop-by-hop headers dropped; its body streamed with backpressure, delimited by
   * closing the connection), then close.
   */
  private relayRefusal(service: string, socket: Duplex, res: IncomingMessage, up: http.ClientRequest): void {
    const status = res.statusCode ?? 502;
    this.core.countRequest(service, socket.destroyed ? CLIENT_CLOSED : status);
    if (socket.destroyed) return void up.destroy();
    socket.once('close', () => up.destroy());
    res.on('error', () => undefined); // seen as an incomplete close below
    // A backend that dies mid-body: the client sees a cut connection, not a short body as whole.
    res.once('close', () => {
      if (!res.complete) socket.destroy();
    });
    const headers = downstreamResponseHeaders(res.rawHeaders);
    let block = `HTTP/1.1 ${status} ${res.statusMessage || STATUS_TEXT[status] || ''}\r\n`;
    for (let i = 0; i + 1 < headers.length; i += 2) block += `${headers[i]}: ${headers[i + 1]}\r\n`;
    socket.write(`${block}Connection: close\r\n\r\n`);
    res.pipe(socket);
    socket.once('finish', () => socket.destroy());
  }

  /** Ends every open tunnel. */
  closeAll(): void {
    for (const s of this.open) s.destroy();
    this.open.clear();
  }

  private reject(socket: Duplex, service: string, status: number, body: object, extra = ''): void {
    this.core.countRequest(service, status);
    if (socket.destroyed) return;
    const payload = JSON.stringify(body);
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n${extra}Connection: close\r\n\r\n${payload}`,
    );
    socket.once('finish', () => socket.destroy());
  }
}

/** "127.0.0.1:8080" → host and port; "[::1]:8080" → "::1" and 8080. */
export function splitAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  let host = colon === -1 ? address : address.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host, port: Number(address.slice(colon + 1)) };
}
