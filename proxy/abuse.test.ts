import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RouteTable } from './table.js';
import type { Route } from './table.js';
import { rawBody, rawRequest, recordMetrics, send, startBackend, startProxy, type TestBackend, until , testScope } from './test-support.js';

/**
 * Hostile and mistaken clients, over raw sockets: each gets its 4xx (or its connection closed)
 * and the proxy goes on answering everyone else.
 */

const { defer, backend, proxyWith } = testScope(afterEach);



const route = (b: TestBackend, host = 'app.test'): Route => ({ service: 'web', host, path: '/', backends: [{ instance: b.name, address: b.address }] });

const get = (target: string, headers = 'Host: app.test\r\n') => `GET ${target} HTTP/1.1\r\n${headers}\r\n`;

describe('malformed requests', () => {
  it('answers 400 for absolute-form targets with bad ports and routes good ones by their authority', async () => {
    const b = await backend('b');
    const metrics = recordMetrics();
    const { port } = await proxyWith([route(b), route(b, 'other.test')], { metrics });
    const bad = await rawRequest(port, get('http://a:99999/'));
    expect(bad.status).toBe(400);
    expect(JSON.parse(rawBody(bad))).toEqual({ error: 'bad host or port in request target' });
    expect(bad.closed).toBe(true);
    const good = await rawRequest(port, get('http://other.test:80/p?q=1', 'Host: app.test\r\nConnection: close\r\n'));
    expect(good.status).toBe(200);
    expect(rawBody(good)).toBe('b GET /p?q=1');
    expect(b.hits).toBe(1);
    expect(metrics.requests).toEqual([
      { route: '-', status: 400 },
      { route: 'web', status: 200 },
    ]);
  });

  it('answers 400 for bad percent-encoding, duplicate or bad Host, and never reaches the backend', async () => {
    const b = await backend('b');
    const { port } = await proxyWith([route(b)]);
    const cases: Array<[string, string]> = [
      [get('/%zz'), 'bad percent-encoding in request target'],
      [get('/a?x=%4'), 'bad percent-encoding in request target'],
      [get('/', 'Host: app.test\r\nHost: evil.test\r\n'), 'more than one Host header'],
      [get('/', 'Host: app.test:99999\r\n'), 'bad Host header'],
      [get('*'), 'bad request target'],
    ];
    for (const [req, error] of cases) {
      const r = await rawRequest(port, req);
      expect([r.status, JSON.parse(rawBody(r))], req).toEqual([400, { error }]);
    }
    expect(b.hits).toBe(0);
    expect((await send(port, '/fine')).body).toBe('b GET /fine');
  });

  it('answers 431 for 10,000 headers, for more fields than allowed, and for a huge value', async () => {
    const b = await backend('b');
    const metrics = recordMetrics();
    const { port } = await proxyWith([route(b)], { maxHeaderCount: 50, metrics });
    const many = await rawRequest(port, get('/', `Host: app.test\r\n${'a: b\r\n'.repeat(10_000)}`));
    expect(many.status).toBe(431);
    // Under the byte limit but over the count: Node would silently drop the extra ones.
    const over = await rawRequest(port, get('/', `Host: app.test\r\n${'a: b\r\n'.repeat(60)}`));
    expect([over.status, JSON.parse(rawBody(over))]).toEqual([431, { error: 'too many header fields' }]);
    const huge = await rawRequest(port, get('/', `Host: app.test\r\nX-Big: ${'v'.repeat(1024 * 1024)}\r\n`));
    expect(huge.status).toBe(431);
    expect(b.hits).toBe(0);
    expect(metrics.requests).toEqual([431, 431, 431].map((status) => ({ route: '-', status })));
    expect((await send(port, '/', { headers: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`x-${i}`, 'v'])) })).status).toBe(200);
  });

  it('answers 405 to CONNECT and 400 to garbage', async () => {
    const b = await backend('b');
    const { port } = await proxyWith([route(b)]);
    expect((await rawRequest(port, 'CONNECT app.test:443 HTTP/1.1\r\nHost: app.test:443\r\n\r\n')).status).toBe(405);
    expect((await rawRequest(port, '\x00\x01\x02 nonsense\r\n\r\n')).status).toBe(400);
    expect((await rawRequest(port, Buffer.from('GET /\xff HTTP/1.1\r\nHost: app.test\r\n\r\n', 'latin1'))).status).toBe(400);
    expect((await send(port, '/')).status).toBe(200);
  });
});

describe('the error boundary', () => {
  it('answers 500 for a request the proxy fails on, and goes on with the next', async () => {
    const b = await backend('b');
    const { port } = await proxyWith([route(b)]);
    const spy = vi.spyOn(RouteTable.prototype, 'match').mockImplementationOnce(() => {
      throw new Error('a bug in routing');
    });
    defer(() => spy.mockRestore());
    const r = await send(port, '/');
    expect([r.status, JSON.parse(r.body)]).toEqual([500, { error: 'internal proxy error' }]);
    expect((await send(port, '/')).status).toBe(200);
  });

  it('keeps a failure after the answer (a broken metrics adapter) inside the request', async () => {
    const b = await backend('b');
    const metrics = {
      request: () => {
        throw new Error('metrics adapter broke');
      },
      upstreamSeconds: () => undefined,
    };
    const { port } = await proxyWith([route(b)], { metrics });
    expect((await send(port, '/', { host: 'unknown.test' })).status).toBe(404);
    expect((await send(port, '/')).status).toBe(200);
  });
});

describe('slow and idle clients', () => {
  it('closes a connection whose head trickles in past the headers timeout with 408', async () => {
    const b = await backend('b');
    const metrics = recordMetrics();
    const { port } = await proxyWith([route(b)], { clientHeadersTimeoutMs: 300, clientRequestTimeoutMs: 600, timeoutCheckIntervalMs: 50, metrics });
    const parts = ['GET / HTTP/1.1\r\n', ...Array.from({ length: 40 }, (_, i) => `x-${i}: v\r\n`)];
    const started = performance.now();
    const r = await rawRequest(port, parts, { gapMs: 50, waitMs: 3_000 });
    expect(r.status).toBe(408);
    expect(r.closed).toBe(true);
    expect(performance.now() - started).toBeLessThan(1_500);
    expect(b.hits).toBe(0);
    expect(metrics.requests).toEqual([{ route: '-', status: 408 }]);
  });

  it('closes a connection that never sends a byte', async () => {
    const b = await backend('b');
    const { port } = await proxyWith([route(b)], { clientHeadersTimeoutMs: 300, clientRequestTimeoutMs: 600, timeoutCheckIntervalMs: 50 });
    const started = performance.now();
    const r = await rawRequest(port, [], { waitMs: 3_000 });
    expect(r.closed).toBe(true);
    expect(performance.now() - started).toBeLessThan(1_500);
  });

  it('closes an idle keep-alive connection after the keep-alive timeout', async () => {
    const b = await backend('b');
    const { port } = await proxyWith([route(b)], { clientKeepAliveMs: 200 });
    const r = await rawRequest(port, get('/'), { waitMs: 3_000 });
    expect(r.status).toBe(200);
    expect(r.closed).toBe(true);
  });

  it('cuts a body that trickles past the request timeout, and the backend connection is freed', async () => {
    const b = await backend('b', (req, res) => {
      req.resume();
      req.on('end', () => res.end('got it'));
    });
    const metrics = recordMetrics();
    const { proxy, port } = await proxyWith([route(b)], { clientHeadersTimeoutMs: 200, clientRequestTimeoutMs: 400, timeoutCheckIntervalMs: 50, metrics });
    const head = 'POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1000\r\n\r\n';
    const r = await rawRequest(port, [head, ...Array.from({ length: 40 }, () => 'x')], { gapMs: 50, waitMs: 3_000 });
    expect(r.closed).toBe(true);
    expect(r.status).toBe(408);
    await until(() => proxy.inflight(b.address) === 0);
    await until(() => metrics.requests.length === 1);
    expect(metrics.requests[0]?.status).toBe(499);
    expect((await send(port, '/')).body).toBe('got it');
  });

  it('closes connections beyond the connection cap at once, and takes new ones when below it', async () => {
    const b = await backend('b');
    const { port } = await proxyWith([route(b)], { maxConnections: 3 });
    const held: net.Socket[] = [];
    for (let i = 0; i < 3; i++) {
      const s = net.connect(port, '127.0.0.1');
      await new Promise<void>((r) => s.once('connect', () => r()));
      held.push(s);
    }
    defer(() => held.forEach((s) => s.destroy()));
    const refused = await rawRequest(port, get('/'), { waitMs: 2_000 });
    expect(refused).toMatchObject({ status: 0, closed: true });
    held.pop()?.destroy();
    let ok = 0;
    for (let i = 0; i < 20 && ok === 0; i++) {
      const r = await rawRequest(port, get('/', 'Host: app.test\r\nConnection: close\r\n'), { waitMs: 1_000 });
      if (r.status === 200) ok++;
    }
    expect(ok).toBe(1);
  });
});
