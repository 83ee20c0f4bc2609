import { createHash } from 'node:crypto';
import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { Proxy } from './proxy.js';
import type { Route } from './table.js';
import { sleep, systemClock } from '../core/clock.js';
import { recordMetrics, send, startBackend, startProxy, type TestBackend, until , testScope } from './test-support.js';

const { defer, backend, proxyWith } = testScope(afterEach);



const route = (service: string, backends: TestBackend[], host = 'app.test', path = '/'): Route => ({
  service,
  host,
  path,
  backends: backends.map((b) => ({ instance: b.name, address: b.address })),
});

describe('routing', () => {
  it('round-robins over the backends of a route', async () => {
    const [a, b, c] = await Promise.all([backend('a'), backend('b'), backend('c')]);
    const { port } = await proxyWith([route('web', [a!, b!, c!])]);
    const names: string[] = [];
    for (let i = 0; i < 6; i++) names.push((await send(port, '/')).body.split(' ')[0] ?? '');
    expect(names).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
  });

  it('routes by host and longest path prefix, and passes the request target through', async () => {
    const [web, api] = await Promise.all([backend('web'), backend('api')]);
    const { port } = await proxyWith([route('web', [web]), route('api', [api], 'app.test', '/api')]);
    expect((await send(port, '/api/users?x=1', { host: 'APP.test:8080' })).body).toBe('api GET /api/users?x=1');
    expect((await send(port, '/apix')).body).toBe('web GET /apix');
  });

  it('answers 404 for an unknown host or an unrouted path, 503 when a route has no backend', async () => {
    const metrics = recordMetrics();
    const { port } = await proxyWith([route('empty', []), { ...route('api', [], 'api.test', '/v1') }], { metrics });
    const unknown = await send(port, '/', { host: 'nope.test' });
    expect(unknown.status).toBe(404);
    expect((await send(port, '/v2', { host: 'api.test' })).status).toBe(404);
    const none = await send(port, '/');
    expect(none.status).toBe(503);
    expect(none.headers['retry-after']).toBe('1');
    expect(JSON.parse(none.body)).toEqual({ error: 'no ready instance', service: 'empty' });
    expect(metrics.requests).toEqual([
      { route: '-', status: 404 },
      { route: '-', status: 404 },
      { route: 'empty', status: 503 },
    ]);
  });

  it('setRoutes swaps at once: a removed backend gets no new request', async () => {
    const [a, b] = await Promise.all([backend('a'), backend('b')]);
    const { proxy, port } = await proxyWith([route('web', [a!, b!])]);
    for (let i = 0; i < 4; i++) await send(port, '/');
    expect([a!.hits, b!.hits]).toEqual([2, 2]);
    proxy.setRoutes([route('web', [b!])]);
    for (let i = 0; i < 10; i++) expect((await send(port, '/')).body).toMatch(/^b /);
    expect([a!.hits, b!.hits]).toEqual([2, 12]);
    expect(proxy.routes().map((r) => r.backends.length)).toEqual([1]);
  });
});

describe('headers', () => {
  it('adds X-Forwarded-*, appends to X-Forwarded-For and drops hop-by-hop headers', async () => {
    const echo = await backend('echo', (req, res) => {
      res.setHeader('content-type', 'application/json');
      res.setHeader('keep-alive', 'timeout=99');
      res.end(JSON.stringify(req.headers));
    });
    const { port } = await proxyWith([route('echo', [echo])]);
    const r = await send(port, '/', {
      host: 'App.test:8080',
      headers: { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https', connection: 'keep-alive, x-drop', 'x-drop': '1', te: 'trailers', 'x-keep': 'yes' },
    });
    const seen = JSON.parse(r.body) as Record<string, string>;
    expect(seen['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen['x-forwarded-host']).toBe('App.test:8080');
    expect(seen.host).toBe('App.test:8080');
    expect(seen['x-keep']).toBe('yes');
    expect(seen['x-drop']).toBeUndefined();
    expect(seen.te).toBeUndefined();
    expect(r.headers['keep-alive']).not.toBe('timeout=99');
    expect(r.headers['content-type']).toBe('application/json');
  });
});

describe('streaming', () => {
  it('echoes a 20 MB streamed upload', async () => {
    const echo = await backend('echo', (req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      req.pipe(res);
    });
    const { port } = await proxyWith([route('echo', [echo])]);
    const chunk = Buffer.alloc(64 * 1024);
    for (let i = 0; i < chunk.length; i++) chunk[i] = i % 251;
    const chunks = 320; // 20 MiB
    const sent = createHash('sha256');
    const got = createHash('sha256');
    let received = 0;
    await new Promise<void>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/upload', headers: { host: 'app.test' }, agent: false }, (res) => {
        res.on('data', (c: Buffer) => {
          received += c.length;
          got.update(c);
        });
        res.on('end', resolve);
        res.on('error', reject);
      });
      req.on('error', reject);
      let i = 0;
      const pump = () => {
        while (i < chunks) {
          i++;
          sent.update(chunk);
          if (!req.write(chunk)) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
    });
    expect(received).toBe(chunks * chunk.length);
    expect(got.digest('hex')).toBe(sent.digest('hex'));
  });

  it('streams the request body before the client has finished sending it', async () => {
    const b = await backend('b', (req, res) => {
      req.once('data', () => {
        res.writeHead(200);
        res.write('got-first');
        req.on('end', () => res.end('|done'));
        req.resume();
      });
    });
    const { port } = await proxyWith([route('web', [b])]);
    const body = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers: { host: 'app.test', 'transfer-encoding': 'chunked' }, agent: false }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => {
          text += c.toString();
          if (text === 'got-first') req.end('second'); // only now does the client finish
        });
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      req.write('first');
    });
    expect(body).toBe('got-first|done');
  });

  it('streams the response before the backend has finished it', async () => {
    let finish: (() => void) | undefined;
    const b = await backend('b', (_req, res) => {
      res.writeHead(200);
      res.write('part1');
      finish = () => res.end('part2');
    });
    const { port } = await proxyWith([route('web', [b])]);
    const text = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { host: 'app.test' }, agent: false }, (res) => {
        let t = '';
        res.on('data', (c: Buffer) => {
          t += c.toString();
          if (t === 'part1') finish?.();
        });
        res.on('end', () => resolve(t));
      });
      req.on('error', reject);
      req.end();
    });
    expect(text).toBe('part1part2');
  });
});

describe('connections', () => {
  it('keeps connections to a backend alive', async () => {
    const b = await backend('b');
    const { port } = await proxyWith([route('web', [b])]);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    defer(() => agent.destroy());
    for (let i = 0; i < 50; i++) expect((await send(port, '/', { agent })).status).toBe(200);
    expect(b.hits).toBe(50);
    expect(b.connections).toBe(1);
  });

  it('aborts the upstream request when the client goes away', async () => {
    let upstreamClosed = false;
    const b = await backend('b', (_req, res) => {
      res.on('close', () => (upstreamClosed = true));
    });
    const metrics = recordMetrics();
    const { proxy, port } = await proxyWith([route('web', [b])], { metrics });
    const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { host: 'app.test' }, agent: false });
    req.on('error', () => undefined);
    req.end();
    await until(() => b.hits === 1);
    expect(proxy.inflight(b.address)).toBe(1);
    req.destroy();
    await until(() => upstreamClosed && proxy.inflight(b.address) === 0);
    await until(() => metrics.requests.length === 1);
    expect(metrics.requests).toEqual([{ route: 'web', status: 499 }]);
  });

  it('cuts the client response when the upstream dies mid-body', async () => {
    const b = await backend('b', (req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial');
      setImmediate(() => req.socket.destroy());
    });
    const { port } = await proxyWith([route('web', [b])]);
    await expect(send(port, '/')).rejects.toThrow();
  });

  it('answers 504 when the upstream does not send headers in time', async () => {
    const b = await backend('slow', () => undefined);
    const { port, proxy } = await proxyWith([route('web', [b])], { headersTimeoutMs: 100 });
    const r = await send(port, '/');
    expect(r.status).toBe(504);
    expect(JSON.parse(r.body)).toMatchObject({ service: 'web' });
    expect(proxy.inflight(b.address)).toBe(0);
  });

  it('reports each request and the time to upstream headers', async () => {
    const b = await backend('b');
    const metrics = recordMetrics();
    const { port } = await proxyWith([route('web', [b])], { metrics });
    await send(port, '/');
    await send(port, '/x');
    expect(metrics.requests).toEqual([
      { route: 'web', status: 200 },
      { route: 'web', status: 200 },
    ]);
    expect(metrics.upstream).toHaveLength(2);
    expect(metrics.upstream.every((u) => u.route === 'web' && u.seconds > 0 && u.seconds < 5)).toBe(true);
  });

  it('close() ends keep-alive client connections and stops listening', async () => {
    const b = await backend('b');
    const { proxy, port } = await startProxy();
    proxy.setRoutes([route('web', [b])]);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    defer(() => agent.destroy());
    await send(port, '/', { agent });
    const sockets = Object.values(agent.freeSockets).flat();
    expect(sockets).toHaveLength(1);
    let clientClosed = false;
    sockets[0]?.once('close', () => (clientClosed = true));
    await proxy.close();
    await until(() => clientClosed);
    await expect(send(port, '/')).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('no queue behind slow requests', () => {
  /**
   * A backend that holds every request to /slow until released and answers /fast at once; `held`
   * counts the /slow requests it has received and not answered yet.
   */
  async function slowBackend() {
    const waiting: Array<() => void> = [];
    let released = false;
    const b = await backend('slow', (req, res) => {
      req.resume();
      if (req.url === '/slow' && !released) waiting.push(() => res.end('slow'));
      else res.end(req.url === '/slow' ? 'slow' : 'fast');
    });
    const release = () => {
      released = true;
      for (const w of waiting.splice(0)) w();
    };
    defer(release);
    return { b, held: () => waiting.length, release };
  }

  /** Fires `n` slow requests on connections of their own, then times one fast one to the same backend. */
  async function fastBehindSlow(n: number, opts: Parameters<typeof proxyWith>[1] = {}) {
    const { b, held, release } = await slowBackend();
    const { port } = await proxyWith([route('web', [b])], { ...opts, headersTimeoutMs: 30_000 });
    const slow = Array.from({ length: n }, () => send(port, '/slow'));
    // Every slow request is in flight at the backend (a connection cap would hold some back in the proxy).
    await until(() => held() >= n, 5_000).catch(() => undefined);
    const reachedBackend = held();
    const t0 = performance.now();
    const fast = await Promise.race([send(port, '/fast'), sleep(systemClock, 2_000).then(() => null)]);
    const ms = performance.now() - t0;
    const heldWhileFast = held();
    release();
    const replies = await Promise.all(slow);
    return { reachedBackend, fast, ms, heldWhileFast, replies };
  }

  it('the 41st request to a backend holding 40 slow ones in flight comes back at once', async () => {
    const r = await fastBehindSlow(40);
    expect(r.reachedBackend).toBe(40);
    expect(r.fast?.status).toBe(200);
    expect(r.fast?.body).toBe('fast');
    expect(r.ms).toBeLessThan(1_000);
    // It was answered while the 40 were still held, not after them.
    expect(r.heldWhileFast).toBe(40);
    expect(r.replies.map((x) => x.body)).toEqual(Array(40).fill('slow'));
  });

  it('has no per-backend connection cap by default: 300 slow requests in flight, the 301st comes back at once', async () => {
    const r = await fastBehindSlow(300);
    expect(r.reachedBackend).toBe(300);
    expect(r.fast?.body).toBe('fast');
    expect(r.ms).toBeLessThan(1_000);
    expect(r.replies.every((x) => x.status === 200 && x.body === 'slow')).toBe(true);
  });
});
