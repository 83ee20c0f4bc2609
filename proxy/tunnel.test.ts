import type http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import type { Route } from './table.js';
import { recordMetrics, refusedAddress, startBackend, startProxy, type TestBackend, until } from './test-support.js';
import { splitAddress } from './tunnel.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A backend whose WebSocket server echoes every message and remembers the upgrade headers. */
async function wsBackend(name: string): Promise<TestBackend & { upgrades: http.IncomingHttpHeaders[] }> {
  const b = await startBackend(name);
  const upgrades: http.IncomingHttpHeaders[] = [];
  const wss = new WebSocketServer({ server: b.server });
  wss.on('connection', (ws, req) => {
    upgrades.push(req.headers);
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  cleanups.push(async () => {
    for (const c of wss.clients) c.terminate();
    await new Promise<void>((r) => wss.close(() => r()));
    await b.close();
  });
  return Object.assign(b, { upgrades });
}

async function proxyWith(routes: Route[], opts: Parameters<typeof startProxy>[0] = {}) {
  const p = await startProxy(opts);
  p.proxy.setRoutes(routes);
  cleanups.push(() => p.proxy.close());
  return p;
}

// The ws client sends "Host: 127.0.0.1:<port>", so routes use that host.
const route = (addresses: string[], path = '/'): Route => ({
  service: 'chat',
  host: '127.0.0.1',
  path,
  backends: addresses.map((address, i) => ({ instance: `i${i}`, address })),
});

function connect(port: number, path = '/ws'): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
    cleanups.push(() => ws.terminate());
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`status ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

const roundTrip = (ws: WebSocket, data: string | Buffer) =>
  new Promise<Buffer>((resolve) => {
    ws.once('message', (d) => resolve(d as Buffer));
    ws.send(data);
  });

describe('upgrade tunnels', () => {
  it('passes a WebSocket through, with X-Forwarded-*, and counts it in flight until it closes', async () => {
    const b = await wsBackend('b');
    const metrics = recordMetrics();
    const { proxy, port } = await proxyWith([route([b.address])], { metrics });
    const ws = await connect(port);
    expect((await roundTrip(ws, 'hello')).toString()).toBe('hello');
    const big = Buffer.alloc(1024 * 1024, 7);
    expect((await roundTrip(ws, big)).equals(big)).toBe(true);
    expect(proxy.inflight(b.address)).toBe(1);
    expect(b.upgrades[0]).toMatchObject({ 'x-forwarded-for': '127.0.0.1', 'x-forwarded-proto': 'http', 'x-forwarded-host': `127.0.0.1:${port}` });
    expect(metrics.requests).toEqual([{ route: 'chat', status: 101 }]);
    ws.close();
    await until(() => proxy.inflight(b.address) === 0);
  });

  it('retries a tunnel whose backend refuses the connection', async () => {
    const b = await wsBackend('b');
    const dead = await refusedAddress();
    const { port } = await proxyWith([route([dead, b.address])]);
    const ws = await connect(port);
    expect((await roundTrip(ws, 'again')).toString()).toBe('again');
  });

  it('answers 404, 503 and 502 on the raw socket', async () => {
    const dead = await refusedAddress();
    const { proxy, port } = await proxyWith([route([], '/none'), route([dead], '/dead')]);
    await expect(connect(port, '/other')).rejects.toThrow('status 404');
    await expect(connect(port, '/none')).rejects.toThrow('status 503');
    await expect(connect(port, '/dead')).rejects.toThrow('status 502');
    expect(proxy.inflight(dead)).toBe(0);
  });

  it('close() ends open tunnels', async () => {
    const b = await wsBackend('b');
    const { proxy, port } = await startProxy();
    proxy.setRoutes([route([b.address])]);
    const ws = await connect(port);
    const closed = new Promise<void>((r) => ws.once('close', () => r()));
    await proxy.close();
    await closed;
    expect(proxy.inflight(b.address)).toBe(0);
  });
});

describe('splitAddress', () => {
  it('splits IPv4 and bracketed IPv6 addresses', () => {
    expect(splitAddress('127.0.0.1:8080')).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(splitAddress('[::1]:80')).toEqual({ host: '::1', port: 80 });
  });
});
