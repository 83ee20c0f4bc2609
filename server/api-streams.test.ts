import { afterEach, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import type { Server } from 'node:http';
import { flushMicrotasks, ManualClock } from '../core/clock.js';
import { silentLogger } from '../core/log.js';
import { memoryStore } from '../store/index.js';
import type { EventRecord } from '../store/types.js';
import { createApi } from './api.js';
import type { ControlPlane } from './control-plane.js';
import { EventLog } from './event-log.js';
import type { NodeRegistry } from './node-registry.js';

const open: Array<{ close: () => void }> = [];
afterEach(() => {
  for (const o of open.splice(0)) o.close();
});

async function api(followQueue: number) {
  const store = memoryStore();
  await store.open();
  const events = new EventLog(store, silentLogger());
  const server: Server = createApi({
    token: 't0k3n',
    log: silentLogger(),
    control: {} as ControlPlane,
    store,
    events,
    nodes: {} as NodeRegistry,
    isReady: () => true,
    clock: new ManualClock(),
    limits: { followQueue },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  open.push({ close: () => server.close() }, { close: () => server.closeAllConnections() });
  const port = (server.address() as { port: number }).port;
  return { events, port };
}

const event = (i: number): EventRecord => ({
  time: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, i % 1000)).toISOString(),
  reconciler: 'container',
  service: 'web',
  instance: `web-1-0-${i}`,
  node: 'n1',
  action: 'container.create',
  reason: 'r'.repeat(1000),
  outcome: 'ok',
  durationMs: i,
});

describe('events -f to a reader that cannot keep up', () => {
  it('holds a bounded queue, drops the oldest and says how many', async () => {
    const { events, port } = await api(100);
    const sock: Socket = connect(port, '127.0.0.1');
    open.push({ close: () => sock.destroy() });
    let text = '';
    sock.on('data', (d) => (text += d.toString()));
    sock.write('GET /v1/events?follow=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t0k3n\r\n\r\n');
    for (let i = 0; i < 200 && !text.includes('\r\n\r\n'); i++) await flushMicrotasks();
    expect(text).toMatch(/^HTTP\/1\.1 200/);
    // The reader stops reading; 20,000 records of 1 KB (20 MB) are recorded.
    sock.pause();
    for (let i = 0; i < 20_000; i++) {
      events.record(event(i));
      if (i % 500 === 0) await flushMicrotasks(2);
    }
    await flushMicrotasks(20);
    // It reads again: what arrives is the socket's backlog, a note of what was dropped, and the newest.
    sock.resume();
    for (let i = 0; i < 2000 && !text.includes('"instance":"web-1-0-19999"'); i++) await flushMicrotasks(2);
    const lines = text.split('\r\n\r\n')[1]!.split('\n').filter((l) => l.startsWith('{'));
    const records = lines.map((l) => JSON.parse(l) as EventRecord);
    const dropped = records.filter((r) => r.action === 'events.dropped');
    expect(dropped.length).toBeGreaterThanOrEqual(1);
    const droppedCount = dropped.reduce((n, r) => n + Number(/^(\d+) events dropped/.exec(r.message ?? '')?.[1] ?? 0), 0);
    const delivered = records.filter((r) => r.action === 'container.create').length;
    // Every record is either delivered or counted as dropped; far from all 20,000 were held.
    expect(delivered + droppedCount).toBe(20_000);
    expect(droppedCount).toBeGreaterThan(5_000);
    expect(records.at(-1)?.instance).toBe('web-1-0-19999');
  });
});
