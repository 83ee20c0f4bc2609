import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import type { Route } from './table.js';
import { rawBody, rawRequest, recordMetrics, refusedAddress, startBackend, startProxy, type TestBackend, until , testScope } from './test-support.js';
import { splitAddress } from './tunnel.js';

const { defer, proxyWith } = testScope(afterEach);

/** A backend whose WebSocket server echoes every message and remembers the upgrade headers. */
async function wsBackend(name: string): Promise<TestBackend & { upgrades: http.IncomingHttpHeaders[] }> {
  const b = await startBackend(name);
  const upgrades: http.IncomingHttpHeaders[] = [];
  const wss = new WebSocketServer({ server: b.server });
  wss.on('connection', (ws, req) => {
    upgrades.push(req.headers);
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  defer(async () => {
    for (const c of wss.clients) c.terminate();
    await new Promise<void>((r) => wss.close(() => r()));
    await b.close();
  });
  return Object.assign(b, { upgrades });
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
    defer(() => ws.terminate());
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

/** A raw WebSocket upgrade request for path on host 127.0.0.1 (the routes' host). */
const upgradeRequest = (path = '/ws', upgrade = 'websocket', method = 'GET') =>
  `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: ${upgrade}\r\n` +
  'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';

describe('upgrades the backend does not accept', () => {
  it('relays a 400 answer as a plain response and closes; nothing is tunnelled', async () => {
    const b = await startBackend('b');
    defer(() => b.close());
    b.server.on('upgrade', (_req, socket) => {
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: keep-alive\r\n\r\nno upgrade!');
    });
    const metrics = recordMetrics();
    const { proxy, port } = await proxyWith([route([b.address])], { metrics });
    const r = await rawRequest(port, upgradeRequest());
    expect(r.status).toBe(400);
    expect(rawBody(r)).toBe('no upgrade!');
    expect(r.text).toMatch(/\r\nConnection: close\r\n/);
    expect(r.text).not.toMatch(/keep-alive/i);
    expect(r.closed).toBe(true);
    expect(metrics.requests).toEqual([{ route: 'chat', status: 400 }]);
    await until(() => proxy.inflight(b.address) === 0);
  });

  it('relays a 200 from a backend that ignores the upgrade, with its body, then closes', async () => {
    const b = await startBackend('b'); // no upgrade listener: Node answers it as plain HTTP
    defer(() => b.close());
    const { port } = await proxyWith([route([b.address])]);
    const r = await rawRequest(port, upgradeRequest('/ws?x=1'));
    expect(r.status).toBe(200);
    expect(rawBody(r)).toBe('b GET /ws?x=1');
    expect(r.closed).toBe(true);
    await expect(connect(port)).rejects.toThrow('status 200');
  });

  it('answers 400 to upgrades other than WebSocket, and to a malformed target', async () => {
    const b = await wsBackend('b');
    const { port } = await proxyWith([route([b.address])]);
    const h2c = await rawRequest(port, upgradeRequest('/ws', 'h2c'));
    expect([h2c.status, JSON.parse(rawBody(h2c))]).toEqual([400, { error: 'only WebSocket upgrades (GET with Upgrade: websocket) are proxied' }]);
    expect((await rawRequest(port, upgradeRequest('/ws', 'websocket', 'POST'))).status).toBe(400);
    expect((await rawRequest(port, upgradeRequest('/%zz'))).status).toBe(400);
    expect((await rawRequest(port, upgradeRequest('http://127.0.0.1:70000/ws'))).status).toBe(400);
    expect(b.hits + b.upgrades.length).toBe(0);
  });

  it('answers 504 when the backend accepts but never answers the upgrade, 502 when it hangs up', async () => {
    const silent = await startBackend('silent');
    const held: Duplex[] = [];
    defer(() => silent.close());
    defer(() => held.forEach((s) => s.destroy())); // upgraded sockets are not the server's to close
    silent.server.on('upgrade', (_req, socket: Duplex) => void held.push(socket));
    const rude = await startBackend('rude');
    defer(() => rude.close());
    rude.server.on('upgrade', (_req, socket) => socket.destroy());
    const { proxy, port } = await proxyWith([route([silent.address], '/silent'), route([rude.address], '/rude')], { headersTimeoutMs: 200 });
    expect((await rawRequest(port, upgradeRequest('/silent'))).status).toBe(504);
    expect((await rawRequest(port, upgradeRequest('/rude'))).status).toBe(502);
    await until(() => proxy.inflight(silent.address) + proxy.inflight(rude.address) === 0);
  });
});

describe('tunnel bounds', () => {
  it('closes a tunnel idle for longer than the idle timeout', async () => {
    const b = await wsBackend('b');
    const { proxy, port } = await proxyWith([route([b.address])], { tunnelIdleTimeoutMs: 200 });
    const ws = await connect(port);
    expect((await roundTrip(ws, 'alive')).toString()).toBe('alive');
    const started = performance.now();
    await new Promise<void>((r) => ws.once('close', () => r()));
    expect(performance.now() - started).toBeGreaterThanOrEqual(150);
    await until(() => proxy.inflight(b.address) === 0);
  });

  it('answers 503 beyond the tunnel cap, and takes new tunnels once one closed', async () => {
    const b = await wsBackend('b');
    const { port } = await proxyWith([route([b.address])], { maxTunnels: 2 });
    const [one] = await Promise.all([connect(port), connect(port)]);
    await expect(connect(port)).rejects.toThrow('status 503');
    one?.close();
    await until(() => b.upgrades.length === 2);
    let ws: WebSocket | undefined;
    for (let i = 0; i < 50 && !ws; i++) ws = await connect(port).catch(() => undefined);
    expect(ws).toBeDefined();
    expect((await roundTrip(ws!, 'third')).toString()).toBe('third');
  });
});

describe('splitAddress', () => {
  it('splits IPv4 and bracketed IPv6 addresses', () => {
    expect(splitAddress('127.0.0.1:8080')).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(splitAddress('[::1]:80')).toEqual({ host: '::1', port: 80 });
  });
});
