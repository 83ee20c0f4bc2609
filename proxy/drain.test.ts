import type http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { flushMicrotasks, ManualClock } from '../core/clock.js';
import type { Route } from './table.js';
import { send, startBackend, startProxy, type TestBackend, until } from './test-support.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A backend that holds every response until release() is called. */
async function holdingBackend(): Promise<TestBackend & { held: http.ServerResponse[]; release(): void }> {
  const held: http.ServerResponse[] = [];
  const b = await startBackend('slow', (req, res) => {
    req.resume();
    held.push(res);
  });
  cleanups.push(() => b.close());
  return Object.assign(b, { held, release: () => held.splice(0).forEach((r) => r.end('done')) });
}

const route = (backends: TestBackend[]): Route => ({
  service: 'web',
  host: 'app.test',
  path: '/',
  backends: backends.map((b) => ({ instance: b.name, address: b.address })),
});

function settled(p: Promise<unknown>): () => boolean {
  let done = false;
  void p.then(() => (done = true));
  return () => done;
}

describe('drain', () => {
  it('resolves at once, without waiting on the clock, when nothing is in flight to that backend', async () => {
    const busy = await holdingBackend();
    const idle = await holdingBackend();
    const clock = new ManualClock();
    const { proxy, port } = await startProxy({ clock });
    cleanups.push(() => proxy.close());
    proxy.setRoutes([route([busy])]);
    const response = send(port, '/').catch(() => undefined);
    await until(() => busy.held.length === 1);
    const timersBefore = clock.pending();

    // Another backend's request in flight does not hold this one's drain.
    const drained = settled(proxy.drain(idle.address, 60_000));
    await flushMicrotasks();
    expect(drained()).toBe(true);
    expect(proxy.inflight(idle.address)).toBe(0);
    expect(clock.pending()).toBe(timersBefore); // no 60 s timer left behind

    // The busy backend's drain does wait: the contrast that makes the above mean something.
    const busyDrained = settled(proxy.drain(busy.address, 60_000));
    await flushMicrotasks();
    expect(busyDrained()).toBe(false);
    busy.release();
    await response;
    await until(busyDrained);
  });

  it('waits for a slow in-flight request on a removed backend, which still completes', async () => {
    const b = await holdingBackend();
    const { proxy, port } = await startProxy();
    cleanups.push(() => proxy.close());
    proxy.setRoutes([route([b])]);
    const response = send(port, '/');
    await until(() => b.held.length === 1);
    expect(proxy.inflight(b.address)).toBe(1);

    proxy.setRoutes([route([])]); // out of the table first: no new work
    const drained = settled(proxy.drain(b.address, 60_000));
    expect((await send(port, '/')).status).toBe(503);
    await flushMicrotasks();
    expect(drained()).toBe(false);

    b.release();
    expect(await response).toMatchObject({ status: 200, body: 'done' });
    await until(drained);
    expect(proxy.inflight(b.address)).toBe(0);
  });

  it('gives up after maxMs on the clock when the request does not end', async () => {
    const b = await holdingBackend();
    const clock = new ManualClock();
    const { proxy, port } = await startProxy({ clock });
    cleanups.push(() => proxy.close());
    proxy.setRoutes([route([b])]);
    const response = send(port, '/').catch(() => undefined);
    await until(() => b.held.length === 1);

    proxy.setRoutes([]);
    const drained = settled(proxy.drain(b.address, 1_000));
    await clock.advanceAsync(999);
    expect(drained()).toBe(false);
    await clock.advanceAsync(1);
    expect(drained()).toBe(true);
    expect(proxy.inflight(b.address)).toBe(1);

    b.release();
    await response;
    await until(() => proxy.inflight(b.address) === 0);
  });
});
