import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import type { ProxyCore } from './core.js';
import { clientAddress, upstreamRequestHeaders } from './headers.js';
import type { Route } from './table.js';
import { CLIENT_CLOSED } from './types.js';

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 404: 'Not Found', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout' };

/** TCP keep-alive probes on both legs of a tunnel, so a dead peer is noticed without an app-level ping. */
const TUNNEL_KEEPALIVE_MS = 30_000;

/**
 * Upgrade requests (WebSocket and any other `Upgrade`): routed like HTTP, then the request head
 * is written to a fresh TCP connection to the backend and bytes are piped both ways. A tunnel
 * counts as in flight to its backend until either side closes. A backend that refuses the
 * connection or times out connecting is replaced by the next one (nothing was sent); failures
 * are answered with a plain HTTP error on the raw socket.
 */
export class Tunnels {
  private readonly open = new Set<Duplex>();

  constructor(private readonly core: ProxyCore) {}

  /** Handles a server 'upgrade' event. */
  handle(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const t0 = performance.now();
    socket.on('error', () => undefined); // reported through 'close'
    this.open.add(socket);
    socket.once('close', () => this.open.delete(socket));
    const url = req.url ?? '/';
    const fwd = upstreamRequestHeaders(req.rawHeaders, clientAddress(req.socket.remoteAddress), true);
    if (!url.startsWith('/')) return this.reject(socket, '-', 400, { error: 'bad request target' });
    if (this.core.closing) return this.reject(socket, '-', 503, { error: 'proxy is shutting down' });
    const m = this.core.table.match(fwd.host, url);
    if (m.kind !== 'route') return this.reject(socket, '-', 404, { error: m.kind === 'no-host' ? 'unknown host' : 'no route for path' });
    const route = m.route;
    const first = this.core.first(route);
    if (first === undefined) return this.reject(socket, route.service, 503, { error: 'no ready instance', service: route.service }, 'Retry-After: 1\r\n');

    let headerBlock = `${req.method ?? 'GET'} ${url} HTTP/1.1\r\n`;
    for (let i = 0; i + 1 < fwd.headers.length; i += 2) headerBlock += `${fwd.headers[i]}: ${fwd.headers[i + 1]}\r\n`;
    headerBlock += '\r\n';

    const tried = new Set<string>();
    const attempt = (current: Route, address: string): void => {
      tried.add(address);
      this.core.acquire(address);
      const { host, port } = splitAddress(address);
      const upstream = net.connect({ host, port });
      this.open.add(upstream);
      let connected = false;
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        this.open.delete(upstream);
        this.core.release(address);
      };
      upstream.once('close', release); // also when close() destroys it while connecting
      upstream.setTimeout(this.core.connectTimeoutMs, () => upstream.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })));
      upstream.once('error', (err: Error & { code?: string }) => {
        if (connected) return; // a broken tunnel just closes; 'close' cleans up
        release();
        this.core.connectFailed(address);
        const next = this.core.next(fwd.host, url, tried, address);
        this.core.upstreamFailed({ service: current.service, address, err, phase: 'connect', retry: next !== undefined && !socket.destroyed });
        if (socket.destroyed) return this.core.countRequest(current.service, CLIENT_CLOSED);
        if (next) return attempt(next.route, next.address);
        const status = err.code === 'ETIMEDOUT' ? 504 : 502;
        this.reject(socket, current.service, status, { error: status === 504 ? 'upstream timed out' : 'upstream unavailable', service: current.service });
      });
      upstream.once('connect', () => {
        connected = true;
        upstream.setTimeout(0);
        upstream.setNoDelay(true);
        upstream.setKeepAlive(true, TUNNEL_KEEPALIVE_MS);
        if (socket instanceof net.Socket) {
          socket.setNoDelay(true);
          socket.setKeepAlive(true, TUNNEL_KEEPALIVE_MS);
        }
        if (socket.destroyed) {
          upstream.destroy();
          release();
          return this.core.countRequest(current.service, CLIENT_CLOSED);
        }
        upstream.on('error', () => undefined);
        upstream.once('data', (chunk: Buffer) => {
          // The backend's status line, for metrics only: "HTTP/1.1 101 …".
          const status = Number.parseInt(chunk.toString('latin1', 9, 12), 10);
          this.core.observeUpstream(current.service, (performance.now() - t0) / 1000);
          this.core.countRequest(current.service, Number.isFinite(status) ? status : 502);
        });
        const close = () => {
          upstream.destroy();
          socket.destroy();
          release();
        };
        upstream.once('close', close);
        socket.once('close', close);
        upstream.write(headerBlock);
        if (head.length > 0) upstream.write(head);
        upstream.pipe(socket);
        socket.pipe(upstream);
      });
    };
    attempt(route, first);
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
