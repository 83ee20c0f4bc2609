import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { flushMicrotasks } from '../../core/clock.js';
import type { EventRecord } from '../../store/types.js';
import { aNode, aRow, uiApi } from '../../test/ui-api.js';

const open: Array<() => void> = [];
afterEach(() => {
  for (const close of open.splice(0).reverse()) close();
});

async function api(o: Parameters<typeof uiApi>[0] = {}) {
  const a = await uiApi(o);
  open.push(a.close);
  return a;
}

interface Message {
  event: string;
  data: any;
}

/** Reads /ui/stream as a browser's EventSource would: the status, then each message parsed. */
function stream(port: number, cookie: string) {
  const messages: Message[] = [];
  const comments: string[] = [];
  const s = { status: 0, headers: {} as Record<string, unknown>, messages, comments, ended: false, text: '' };
  let buf = '';
  const req = request({ host: '127.0.0.1', port, path: '/ui/stream', headers: { cookie }, agent: false }, (res) => {
    s.status = res.statusCode ?? 0;
    s.headers = res.headers;
    res.on('data', (d: Buffer) => {
      buf += d.toString();
      s.text += d.toString();
      for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (block.startsWith(':')) {
          comments.push(block);
          continue;
        }
        const event = /^event: (.*)$/m.exec(block)?.[1] ?? '';
        const data = /^data: (.*)$/m.exec(block)?.[1] ?? 'null';
        messages.push({ event, data: JSON.parse(data) });
      }
    });
    res.on('end', () => (s.ended = true));
    res.on('close', () => (s.ended = true));
  });
  req.on('error', () => (s.ended = true));
  req.end();
  open.push(() => req.destroy());
  return Object.assign(s, { close: () => req.destroy() });
}

async function until(what: string, fn: () => boolean, turns = 400): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (fn()) return;
    await flushMicrotasks(2);
  }
  throw new Error(`not reached: ${what}`);
}

const anEvent = (i: number, reason = 'r'): EventRecord => ({
  time: new Date(Date.UTC(2026, 2, 1, 0, 0, 0, i % 1000)).toISOString(),
  reconciler: 'container',
  service: 'web',
  instance: `web-1-0-${i}`,
  node: 'n1',
  action: 'container.create',
  reason,
  outcome: 'ok',
  durationMs: i,
});

describe('GET /ui/stream', () => {
  it('needs the session', async () => {
    const a = await api();
    const s = stream(a.port, 'orca_session=v1.nope');
    await until('an answer', () => s.ended && s.status !== 0);
    expect(s.status).toBe(401);
  });

  it('starts with a snapshot of services, nodes, servers, the latest events and recoveries', async () => {
    const a = await api();
    a.events.record(anEvent(1));
    await a.events.drain();
    a.recoveries.publish({ time: '2026-03-01T00:00:00.000Z', service: 'web', instance: 'web-1-0-b', node: 'n1', ms: 640, reason: 'exited' });
    const s = stream(a.port, await a.login());
    await until('the snapshot', () => s.messages.length >= 1);
    expect(s.status).toBe(200);
    expect(s.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(s.headers['cache-control']).toBe('no-store');
    expect(s.headers['x-accel-buffering']).toBe('no');
    const snap = s.messages[0]!;
    expect(snap.event).toBe('snapshot');
    expect(snap.data.now).toBe(a.clock.now());
    expect(snap.data.services).toEqual([aRow('web'), aRow('api')]);
    expect(snap.data.nodes).toEqual([{ name: 'n1', state: 'ready', address: '127.0.0.1', lastHeartbeat: '2026-01-01T00:00:00.000Z', protocol: 2, instances: 0 }]);
    expect(snap.data.servers).toEqual([{ name: 'n1', address: 'http://127.0.0.1:6880', role: 'leader', since: '2026-01-01T00:00:00.000Z' }]);
    expect(snap.data.events).toEqual([anEvent(1)]);
    expect(snap.data.recoveries).toEqual([{ time: '2026-03-01T00:00:00.000Z', service: 'web', instance: 'web-1-0-b', node: 'n1', ms: 640, reason: 'exited' }]);
  });

  it('then sends only what changed, at most one services message a tick, with only the changed rows', async () => {
    const a = await api();
    const s = stream(a.port, await a.login());
    await until('the snapshot', () => s.messages.length === 1);
    // Nothing changed: a tick sends nothing.
    a.clock.advance(250);
    await flushMicrotasks(20);
    expect(s.messages.length).toBe(1);
    // A crash storm within one tick: three changes of web, api untouched.
    a.state.rows = [aRow('web', { state: 'degraded' }), aRow('api')];
    a.state.rows = [aRow('web', { state: 'crashloop', replicas: { desired: 1, running: 0, ready: 0 } }), aRow('api')];
    a.clock.advance(100);
    await flushMicrotasks(20);
    expect(s.messages.length).toBe(1);
    a.state.rows = [aRow('web', { state: 'crashloop', replicas: { desired: 1, running: 1, ready: 0 } }), aRow('api')];
    a.clock.advance(150);
    await until('a delta', () => s.messages.length === 2);
    expect(s.messages[1]).toEqual({ event: 'services', data: { changed: [aRow('web', { state: 'crashloop', replicas: { desired: 1, running: 1, ready: 0 } })], removed: [] } });
    // A service deleted, a node gone unreachable, a new leader: each said once.
    a.state.rows = [aRow('web', { state: 'crashloop', replicas: { desired: 1, running: 1, ready: 0 } })];
    a.state.nodes = [aNode('n1', 'unreachable')];
    a.clock.advance(250);
    await until('two more', () => s.messages.length === 4);
    expect(s.messages[2]).toEqual({ event: 'services', data: { changed: [], removed: ['api'] } });
    expect(s.messages[3]!.event).toBe('nodes');
    expect(s.messages[3]!.data.nodes[0].state).toBe('unreachable');
    a.clock.advance(250);
    await flushMicrotasks(20);
    expect(s.messages.length).toBe(4);
  });

  it('sends reconciliation events and recoveries as they come, in batches past 50 a tick, and a ping every 15 s', async () => {
    const a = await api();
    const s = stream(a.port, await a.login());
    await until('the snapshot', () => s.messages.length === 1);
    a.events.record(anEvent(2));
    a.recoveries.publish({ time: '2026-03-01T00:00:01.000Z', service: 'web', instance: 'web-1-0-c', node: 'n1', ms: 420, reason: 'oom-killed' });
    a.clock.advance(250);
    await until('event and recovery', () => s.messages.length === 3);
    expect(s.messages[1]).toEqual({ event: 'event', data: anEvent(2) });
    expect(s.messages[2]).toEqual({ event: 'recovery', data: { time: '2026-03-01T00:00:01.000Z', service: 'web', instance: 'web-1-0-c', node: 'n1', ms: 420, reason: 'oom-killed' } });
    for (let i = 0; i < 60; i++) a.events.record(anEvent(100 + i));
    a.clock.advance(250);
    await until('a batch', () => s.messages.length === 4);
    expect(s.messages[3]!.event).toBe('events');
    expect(s.messages[3]!.data.events.map((e: EventRecord) => e.durationMs)).toEqual(Array.from({ length: 60 }, (_, i) => 100 + i));
    expect(s.comments).toEqual([]);
    a.clock.advance(15_000);
    await until('a ping', () => s.comments.length === 1);
    expect(s.comments[0]).toBe(': ping');
  });

  it('computes the view once per tick for all streams', async () => {
    const a = await api();
    let computed = 0;
    const rows = a.state.rows;
    Object.defineProperty(a.state, 'rows', {
      get: () => {
        computed++;
        return rows;
      },
    });
    const cookie = await a.login();
    const streams = Array.from({ length: 5 }, () => stream(a.port, cookie));
    await until('five snapshots', () => streams.every((s) => s.messages.length === 1));
    const before = computed;
    a.clock.advance(250 * 4);
    await flushMicrotasks(40);
    expect(computed - before).toBeLessThanOrEqual(4);
    expect(computed - before).toBeGreaterThanOrEqual(1);
  });

  it('holds at most 32 streams: the 33rd is 503, and a closed one frees its place', async () => {
    const a = await api();
    const cookie = await a.login();
    const streams = Array.from({ length: 32 }, () => stream(a.port, cookie));
    await until('32 snapshots', () => streams.every((s) => s.messages.length === 1));
    const extra = stream(a.port, cookie);
    await until('an answer', () => extra.status !== 0 && extra.ended);
    expect(extra.status).toBe(503);
    expect(extra.text).toMatch(/too many dashboard streams/);
    // The server still answers everything else.
    expect((await a.call('GET', '/ui', { cookie })).status).toBe(200);
    streams[0]!.close();
    await flushMicrotasks(20);
    const next = stream(a.port, cookie);
    await until('a snapshot for the next', () => next.messages.length === 1);
    expect(next.status).toBe(200);
  });

  it('ends a reader that takes nothing, and every stream when the server closes', async () => {
    const a = await api({ limits: { stallMs: 30_000 } });
    const cookie = await a.login();
    // A reader that stops reading at once.
    const sock: Socket = connect(a.port, '127.0.0.1');
    open.push(() => sock.destroy());
    let closed = false;
    sock.on('close', () => (closed = true));
    sock.on('error', () => undefined);
    let head = '';
    sock.on('data', (d) => (head += d.toString()));
    sock.write(`GET /ui/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: ${cookie}\r\n\r\n`);
    await until('its snapshot', () => head.includes('event: snapshot'));
    sock.pause();
    // A few ticks of large changes (every row new, 1 MB a tick): more than the socket's buffers hold.
    const big = (n: number) => Array.from({ length: 50 }, (_, i) => aRow(`svc-${i}`, { reason: `${n}`.repeat(20_000) }));
    for (let n = 0; n < 30; n++) {
      a.state.rows = big(n);
      a.clock.advance(250);
      await flushMicrotasks(5);
    }
    expect(a.logs()).not.toMatch(/dashboard stream ended/);
    a.clock.advance(30_000);
    await until('the stalled stream ended', () => /dashboard stream ended: its reader took nothing/.test(a.logs()));
    // What the kernel held arrives, then the end.
    sock.resume();
    await until('the socket closed', () => closed, 4000);
    // Another stream; the server closes: it ends.
    const s = stream(a.port, cookie);
    await until('its snapshot', () => s.messages.length === 1);
    a.server.close();
    await until('ended', () => s.ended);
  });
});
