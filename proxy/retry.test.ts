import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { Route } from './table.js';
import { recordMetrics, refusedAddress, send, startBackend, startProxy, type TestBackend, until , testScope } from './test-support.js';

const { defer, backend, proxyWith } = testScope(afterEach);



const route = (addresses: string[]): Route => ({
  service: 'web',
  host: 'app.test',
  path: '/',
  backends: addresses.map((address, i) => ({ instance: `i${i}`, address })),
});

/** A backend that reads the whole request body, then resets the connection without answering. */
const resetAfterBody = (name: string) =>
  backend(name, (req) => {
    req.resume();
    req.on('end', () => req.socket.destroy());
  });

/** Echoes method and body. */
const echo = (name: string) =>
  backend(name, (req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => res.end(`${name} ${req.method} ${Buffer.concat(parts).toString()}`));
  });

describe('retries', () => {
  it('loses no GET when one backend refuses connections (200 sequential requests)', async () => {
    const [a, b] = await Promise.all([backend('a'), backend('b')]);
    const dead = await refusedAddress();
    const metrics = recordMetrics();
    const { proxy, port } = await proxyWith([route([a.address, dead, b.address])], { metrics });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    defer(() => agent.destroy());
    const statuses = new Map<number, number>();
    for (let i = 0; i < 200; i++) {
      const r = await send(port, `/${i}`, { agent });
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    }
    expect(Object.fromEntries(statuses)).toEqual({ 200: 200 });
    expect(a.hits + b.hits).toBe(200);
    expect(metrics.requests.every((m) => m.status === 200)).toBe(true);
    expect(proxy.inflight(dead)).toBe(0);
  });

  it('retries a POST whose backend refused the connection: its body was not read yet', async () => {
    const good = await echo('good');
    const dead = await refusedAddress();
    const { port } = await proxyWith([route([dead, good.address])]);
    const r = await send(port, '/', { method: 'POST', body: 'payload-1', headers: { 'content-type': 'text/plain' } });
    expect(r.status).toBe(200);
    expect(r.body).toBe('good POST payload-1');
  });

  it('retries a chunked POST whose backend refused the connection', async () => {
    const good = await echo('good');
    const dead = await refusedAddress();
    const { port } = await proxyWith([route([dead, good.address])]);
    const body = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers: { host: 'app.test', 'transfer-encoding': 'chunked' }, agent: false }, (res) => {
        let t = '';
        res.on('data', (c: Buffer) => (t += c.toString()));
        res.on('end', () => resolve(t));
      });
      req.on('error', reject);
      req.write('part-a.');
      req.end('part-b');
    });
    expect(body).toBe('good POST part-a.part-b');
  });

  it('does not retry a POST once the backend got its body and reset', async () => {
    const a = await resetAfterBody('a');
    const b = await echo('b');
    const metrics = recordMetrics();
    const { proxy, port } = await proxyWith([route([a.address, b.address])], { metrics });
    const r = await send(port, '/', { method: 'POST', body: 'once-only' });
    expect(r.status).toBe(502);
    expect(a.hits).toBe(1);
    expect(b.connections).toBe(0); // not even tried
    expect(metrics.requests).toEqual([{ route: 'web', status: 502 }]);
    expect(proxy.inflight(a.address)).toBe(0);
  });

  it('retries a GET whose backend reset before answering', async () => {
    const a = await backend('a', (req) => req.socket.destroy());
    const b = await echo('b');
    const { port } = await proxyWith([route([a.address, b.address])]);
    const r = await send(port, '/');
    expect(r.status).toBe(200);
    expect(r.body).toBe('b GET ');
    expect([a.hits, b.hits]).toEqual([1, 1]);
  });

  it('replays the body of an idempotent request that was reset after reading it', async () => {
    const a = await resetAfterBody('a');
    const b = await echo('b');
    const { port } = await proxyWith([route([a.address, b.address])]);
    const r = await send(port, '/', { method: 'OPTIONS', body: 'replay-me' });
    expect(r.status).toBe(200);
    expect(r.body).toBe('b OPTIONS replay-me');
  });

  it('does not retry a POST without a body once a backend may have seen it', async () => {
    const a = await backend('a', (req) => req.socket.destroy());
    const b = await echo('b');
    const metrics = recordMetrics();
    const { proxy, port } = await proxyWith([route([a.address, b.address])], { metrics });
    const r = await send(port, '/', { method: 'POST' });
    expect(r.status).toBe(502);
    expect(a.hits).toBe(1);
    expect(b.connections).toBe(0);
    expect(metrics.requests).toEqual([{ route: 'web', status: 502 }]);
    expect(proxy.inflight(a.address)).toBe(0);
  });

  it('does not retry a PATCH once the backend got its body and reset', async () => {
    const a = await resetAfterBody('a');
    const b = await echo('b');
    const { port } = await proxyWith([route([a.address, b.address])]);
    expect((await send(port, '/', { method: 'PATCH', body: 'once' })).status).toBe(502);
    expect(b.connections).toBe(0);
  });

  it('retries PUT (replaying its body), DELETE and TRACE: they are idempotent', async () => {
    const a = await resetAfterBody('a');
    const b = await echo('b');
    const { port } = await proxyWith([route([a.address, b.address])]);
    // Round-robin: each request starts on the next backend, so every other one starts on a.
    const seen: string[] = [];
    for (const method of ['PUT', 'PUT', 'DELETE', 'DELETE', 'TRACE', 'TRACE']) {
      const r = await send(port, '/', method === 'PUT' ? { method, body: 'put-body' } : { method });
      expect(r.status, method).toBe(200);
      seen.push(r.body);
    }
    expect(seen).toEqual(['b PUT put-body', 'b PUT put-body', 'b DELETE ', 'b DELETE ', 'b TRACE ', 'b TRACE ']);
    expect(a.hits).toBe(3);
  });

  it('tries each backend at most once, then answers 502', async () => {
    const a = await backend('a', (req) => req.socket.destroy());
    const dead = await refusedAddress();
    const { proxy, port } = await proxyWith([route([a.address, dead])]);
    const r = await send(port, '/');
    expect(r.status).toBe(502);
    expect(JSON.parse(r.body)).toEqual({ error: 'upstream unavailable', service: 'web' });
    expect(a.hits).toBe(1);
    expect(proxy.inflight(a.address) + proxy.inflight(dead)).toBe(0);
  });

  it('does not retry on a backend removed from the table meanwhile', async () => {
    let release: (() => void) | undefined;
    // The first backend holds the request, is removed from the table, then resets it.
    const a = await backend('a', (req) => (release = () => req.socket.destroy()));
    const b = await echo('b');
    const c = await echo('c');
    const { proxy, port } = await proxyWith([route([a.address, b.address, c.address])]);
    const pending = send(port, '/');
    await until(() => release !== undefined);
    // The next backend after a was b; b leaves the table before the retry happens.
    proxy.setRoutes([route([a.address, c.address])]);
    release?.();
    const r = await pending;
    expect(r.body).toBe('c GET ');
    expect(b.hits).toBe(0);
  });
});

describe('losing a backend under load', () => {
  it('loses no GET when one of two backends dies mid-load', async () => {
    const slowish = (name: string) =>
      backend(name, (req, res) => {
        req.resume();
        setImmediate(() => res.end(name));
      });
    const [a, b] = await Promise.all([slowish('a'), slowish('b')]);
    const { port } = await proxyWith([route([a.address, b.address])]);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
    defer(() => agent.destroy());
    let done = 0;
    const failures: string[] = [];
    let killed: Promise<void> | undefined;
    const worker = async () => {
      for (let i = 0; i < 40; i++) {
        const r = await send(port, '/', { agent }).catch((err: Error) => ({ status: 0, body: err.message }));
        if (r.status !== 200) failures.push(`${r.status} ${r.body}`);
        if (++done === 100) killed = a.close(); // sockets reset, port refuses from now on
      }
    };
    await Promise.all(Array.from({ length: 10 }, worker));
    await killed;
    expect(failures).toEqual([]);
    expect(done).toBe(400);
    expect(a.hits).toBeGreaterThan(0);
  });
});

describe('after a failure', () => {
  it('keeps the client connection usable when the unsent body was never read', async () => {
    const dead = await refusedAddress();
    const good = await echo('good');
    const { proxy, port } = await proxyWith([route([dead])]);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    defer(() => agent.destroy());
    const big = 'y'.repeat(256 * 1024); // more than the socket buffers hold
    expect((await send(port, '/', { method: 'POST', body: big, agent })).status).toBe(502);
    proxy.setRoutes([route([good.address])]);
    const r = await send(port, '/', { method: 'POST', body: 'next', agent });
    expect(r.body).toBe('good POST next');
  });
});
