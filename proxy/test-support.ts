/**
 * Test support for the proxy suites: small real backends on 127.0.0.1 and a client that can set
 * any Host header. Nothing here is used outside tests.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Proxy } from './proxy.js';
import type { ProxyMetrics, ProxyOptions } from './types.js';
import type { Route } from './table.js';
import { sleep, systemClock } from '../core/clock.js';
import { silentLogger } from '../core/log.js';

export interface TestBackend {
  name: string;
  address: string;
  server: http.Server;
  /** Requests received. */
  hits: number;
  /** TCP connections accepted. */
  connections: number;
  close(): Promise<void>;
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, b: TestBackend) => void;

/** A backend that answers "<name> <method> <url>" unless given a handler. */
export async function startBackend(name: string, handler?: Handler): Promise<TestBackend> {
  const b: TestBackend = { name, address: '', server: undefined as unknown as http.Server, hits: 0, connections: 0, close: async () => undefined };
  const server = http.createServer((req, res) => {
    b.hits++;
    if (handler) return handler(req, res, b);
    req.resume();
    req.on('end', () => res.end(`${name} ${req.method} ${req.url}`));
  });
  server.on('connection', () => b.connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  b.server = server;
  b.address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  b.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return b;
}

/** An address nothing listens on (a port that was just bound and released). */
export async function refusedAddress(): Promise<string> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return `127.0.0.1:${port}`;
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface SendOptions {
  method?: string;
  host?: string;
  headers?: http.OutgoingHttpHeaders;
  body?: string | Buffer;
  agent?: http.Agent | false;
}

/** One request to 127.0.0.1:port, the whole response read. */
export function send(port: number, path: string, opts: SendOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { host: opts.host ?? 'app.test', ...opts.headers };
    // Node sends a GET/OPTIONS body without any length unless told: say it.
    if (opts.body !== undefined && headers['transfer-encoding'] === undefined) headers['content-length'] = Buffer.byteLength(opts.body);
    const req = http.request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers, agent: opts.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

export interface RecordedMetrics extends ProxyMetrics {
  requests: Array<{ route: string; status: number }>;
  upstream: Array<{ route: string; seconds: number }>;
}

export function recordMetrics(): RecordedMetrics {
  const m: RecordedMetrics = {
    requests: [],
    upstream: [],
    request: (route, status) => void m.requests.push({ route, status }),
    upstreamSeconds: (route, seconds) => void m.upstream.push({ route, seconds }),
  };
  return m;
}

/** A listening proxy with a silent logger and the system clock unless told otherwise. */
export async function startProxy(opts: Partial<ProxyOptions> = {}): Promise<{ proxy: Proxy; port: number }> {
  const proxy = new Proxy({ log: silentLogger(), clock: systemClock, ...opts });
  const { port } = await proxy.listen('127.0.0.1', 0);
  return { proxy, port };
}

/** Resolves when cond() holds, checking every 5 ms; rejects after maxMs. */
export async function until(cond: () => boolean, maxMs = 3_000): Promise<void> {
  for (let waited = 0; waited <= maxMs; waited += 5) {
    if (cond()) return;
    await sleep(systemClock, 5);
  }
  throw new Error('condition not met in time');
}

export interface RawReply {
  /** The status code of the first response, 0 when none came. */
  status: number;
  /** Everything received, as latin1. */
  text: string;
  /** Whether the proxy closed the connection (rather than the test giving up waiting). */
  closed: boolean;
}

/**
 * Writes bytes (one string, or a list written `gapMs` apart) to 127.0.0.1:port and reads until
 * the proxy closes the connection or `waitMs` passes. For requests no well-behaved client sends.
 */
export function rawRequest(port: number, data: string | Buffer | Array<string | Buffer>, opts: { waitMs?: number; gapMs?: number } = {}): Promise<RawReply> {
  const parts = Array.isArray(data) ? data : [data];
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      systemClock.clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : 0, text, closed });
    };
    const timer = systemClock.setTimeout(() => finish(false), opts.waitMs ?? 3_000);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
    socket.once('connect', async () => {
      for (const [i, p] of parts.entries()) {
        if (i > 0 && opts.gapMs) await sleep(systemClock, opts.gapMs);
        if (socket.destroyed) return;
        socket.write(p);
      }
    });
  });
}

/** The body of a raw response (after the blank line). */
export const rawBody = (r: RawReply): string => r.text.slice(r.text.indexOf('\r\n\r\n') + 4);

/**
 * Backends and proxies that end after each test, in reverse order: call once at a test file's top
 * level with vitest's afterEach (passed in, so this module does not load vitest).
 */
export function testScope(afterEach: (fn: () => Promise<void>) => void) {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  const defer = (c: () => Promise<void> | void) => void cleanups.push(c);
  return {
    defer,
    async backend(...args: Parameters<typeof startBackend>): Promise<TestBackend> {
      const b = await startBackend(...args);
      defer(() => b.close());
      return b;
    },
    async proxyWith(routes: Route[], opts: Parameters<typeof startProxy>[0] = {}): Promise<{ proxy: Proxy; port: number }> {
      const p = await startProxy(opts);
      p.proxy.setRoutes(routes);
      defer(() => p.proxy.close());
      return p;
    },
  };
}
