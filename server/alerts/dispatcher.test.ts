import { afterEach, describe, expect, it, vi } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ManualClock, flushMicrotasks } from '../../core/clock.js';
import { createLogger } from '../../core/log.js';
import type { EventRecord } from '../../store/types.js';
import { ALERT_KINDS, type AlertWebhook } from './config.js';
import type { Alert } from './detector.js';
import { AlertDispatcher, type DispatchPolicy } from './dispatcher.js';
import { httpPoster } from './post.js';

type Behaviour = { status: number; location?: string } | 'hang' | { bigBody: number };

/** A real receiver on 127.0.0.1:0: answers each POST as told (the last behaviour repeats). */
class Receiver {
  readonly requests: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: string }> = [];
  readonly hanging: http.ServerResponse[] = [];
  bigBodyWritten = 0;
  bigBodyClosed = false;
  private readonly server: http.Server;
  constructor(private readonly plan: Behaviour[]) {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const n = this.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() });
        const b = this.plan[Math.min(n - 1, this.plan.length - 1)] ?? { status: 200 };
        if (b === 'hang') {
          this.hanging.push(res);
          return;
        }
        if ('bigBody' in b) return this.streamBig(res, b.bigBody);
        res.writeHead(b.status, b.location ? { location: b.location } : {});
        res.end('{"ok":true}');
      });
    });
  }
  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
  }
  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
  private streamBig(res: http.ServerResponse, total: number): void {
    res.writeHead(200, { 'content-length': String(total) });
    const chunk = Buffer.alloc(1024 * 1024, 0x61);
    res.on('close', () => (this.bigBodyClosed = true));
    const write = (): void => {
      while (this.bigBodyWritten < total && !res.destroyed) {
        this.bigBodyWritten += chunk.length;
        if (!res.write(chunk)) {
          res.once('drain', write);
          return;
        }
      }
      if (!res.destroyed) res.end();
    };
    write();
  }
}

const receivers: Receiver[] = [];
afterEach(async () => {
  for (const r of receivers.splice(0)) await r.close();
});

async function receiver(plan: Behaviour[]): Promise<{ r: Receiver; url: string }> {
  const r = new Receiver(plan);
  receivers.push(r);
  return { r, url: await r.listen() };
}

function setup(url: string, policy: Partial<DispatchPolicy> = {}, hook: Partial<AlertWebhook> = {}) {
  const clock = new ManualClock();
  const events: EventRecord[] = [];
  const d = new AlertDispatcher({
    clock,
    log: createLogger({ level: 'silent' }),
    webhooks: [{ name: 'alert[0]', url, kinds: [...ALERT_KINDS], headers: {}, ...hook }],
    post: httpPoster(clock, 5_000),
    record: (e) => events.push(e),
    policy,
  });
  return { clock, events, d };
}

const alert = (n = 0): Alert => ({ time: '2026-01-01T00:00:00.000Z', kind: 'crashloop', service: `web${n}`, instance: `web${n}-1-0-abcd`, node: 'n1', message: `service web${n} is crash-looping` });
const deliveries = (events: EventRecord[]) => events.filter((e) => e.action === 'alert.deliver');

describe('AlertDispatcher against a real receiver', () => {
  it('POSTs the SPEC JSON with the configured headers; 500 then 200: delivered after one retry, exactly once', async () => {
    const { r, url } = await receiver([{ status: 500 }, { status: 200 }]);
    const { clock, events, d } = setup(url, {}, { headers: { Authorization: 'Bearer t0k' } });
    d.send(alert());
    await vi.waitFor(() => expect(deliveries(events)).toHaveLength(1));
    expect(deliveries(events)[0]).toMatchObject({ reconciler: 'alert', action: 'alert.deliver', outcome: 'failed', reason: 'HTTP 500', service: 'web0', message: 'crashloop alert to alert[0]: attempt 1 of 6 failed; next in 1 s' });
    // Nothing before the backoff is over.
    clock.advance(999);
    await flushMicrotasks();
    expect(r.requests).toHaveLength(1);
    clock.advance(1);
    await vi.waitFor(() => expect(deliveries(events)).toHaveLength(2));
    expect(deliveries(events)[1]).toMatchObject({ outcome: 'ok', reason: 'HTTP 200' });
    clock.advance(120_000);
    await flushMicrotasks();
    expect(r.requests).toHaveLength(2);
    for (const q of r.requests) {
      expect(q.method).toBe('POST');
      expect(q.url).toBe('/hook');
      expect(q.headers['content-type']).toBe('application/json');
      expect(q.headers.authorization).toBe('Bearer t0k');
      expect(JSON.parse(q.body)).toEqual({ time: '2026-01-01T00:00:00.000Z', kind: 'crashloop', service: 'web0', instance: 'web0-1-0-abcd', node: 'n1', message: 'service web0 is crash-looping' });
    }
    expect(d.stats()).toEqual([{ webhook: 'alert[0]', queued: 0, delivered: 1, failed: 0, dropped: 0 }]);
  });

  it('receiver down: retries after 1, 2, 4, 8, 16 s, then gives up with an event; never throws', async () => {
    const { r, url } = await receiver([{ status: 200 }]);
    await r.close();
    receivers.splice(receivers.indexOf(r), 1);
    const { clock, events, d } = setup(url);
    const start = clock.now();
    d.send(alert());
    const delays = [1_000, 2_000, 4_000, 8_000, 16_000];
    for (const [i, delay] of delays.entries()) {
      await vi.waitFor(() => expect(deliveries(events)).toHaveLength(i + 1));
      clock.advance(delay);
    }
    await vi.waitFor(() => expect(deliveries(events)).toHaveLength(6));
    const ds = deliveries(events);
    expect(ds.every((e) => e.outcome === 'failed' && e.reason.includes('ECONNREFUSED'))).toBe(true);
    expect(ds.map((e) => Date.parse(e.time) - start)).toEqual([0, 1_000, 3_000, 7_000, 15_000, 31_000]);
    expect(ds[5]?.message).toBe('crashloop alert to alert[0]: attempt 6 of 6 failed; given up');
    clock.advance(600_000);
    await flushMicrotasks();
    expect(deliveries(events)).toHaveLength(6);
    expect(d.stats()[0]).toMatchObject({ queued: 0, delivered: 0, failed: 1 });
  });

  it('a receiver that never answers: the attempt ends at its 5 s deadline', async () => {
    const { r, url } = await receiver(['hang', { status: 204 }]);
    const { clock, events, d } = setup(url);
    d.send(alert());
    await vi.waitFor(() => expect(r.requests).toHaveLength(1));
    clock.advance(4_999);
    await flushMicrotasks();
    expect(deliveries(events)).toHaveLength(0);
    clock.advance(1);
    await vi.waitFor(() => expect(deliveries(events)).toHaveLength(1));
    expect(deliveries(events)[0]).toMatchObject({ outcome: 'failed', reason: 'no answer within 5 s', durationMs: 5_000 });
    clock.advance(1_000);
    await vi.waitFor(() => expect(deliveries(events).at(-1)).toMatchObject({ outcome: 'ok', reason: 'HTTP 204' }));
  });

  it('a receiver that answers 200 with a 1 GB body: delivered without reading the body', async () => {
    const { r, url } = await receiver([{ bigBody: 1024 ** 3 }]);
    const { events, d } = setup(url);
    d.send(alert());
    await vi.waitFor(() => expect(deliveries(events)).toHaveLength(1));
    expect(deliveries(events)[0]).toMatchObject({ outcome: 'ok', reason: 'HTTP 200' });
    await vi.waitFor(() => expect(r.bigBodyClosed).toBe(true));
    // What the kernel's buffers took before the connection was closed, far from 1 GB.
    expect(r.bigBodyWritten).toBeLessThan(64 * 1024 * 1024);
  });

  it('a redirect is not followed: a failed attempt saying so', async () => {
    const { r, url } = await receiver([{ status: 302, location: '/elsewhere' }]);
    const { events, d } = setup(url, { maxAttempts: 1 });
    d.send(alert());
    await vi.waitFor(() => expect(deliveries(events)).toHaveLength(1));
    expect(deliveries(events)[0]).toMatchObject({ outcome: 'failed', reason: 'HTTP 302 (a redirect to /elsewhere: redirects are not followed; configure the final URL)' });
    expect(r.requests.map((q) => q.url)).toEqual(['/hook']);
  });

  it('a webhook gets only the kinds it asked for', async () => {
    const { r, url } = await receiver([{ status: 200 }]);
    const { events, d } = setup(url, {}, { kinds: ['node-down'] });
    d.send(alert());
    d.send({ ...alert(), kind: 'node-down', service: null, instance: null, node: 'n2', message: 'node n2 is down' });
    await vi.waitFor(() => expect(deliveries(events)).toHaveLength(1));
    expect(r.requests.map((q) => JSON.parse(q.body).kind)).toEqual(['node-down']);
  });

  it('the queue is bounded: beyond it the oldest waiting alerts are dropped, with one event saying how many', async () => {
    const { r, url } = await receiver(['hang', { status: 200 }]);
    const { clock, events, d } = setup(url, { queueMax: 3, maxAttempts: 1 });
    for (let i = 0; i < 10; i++) d.send(alert(i));
    await vi.waitFor(() => expect(r.requests).toHaveLength(1));
    clock.advance(0);
    const drops = events.filter((e) => e.action === 'alert.drop');
    expect(drops).toHaveLength(1);
    expect(drops[0]).toMatchObject({ reconciler: 'alert', outcome: 'failed', reason: 'queue full', message: '7 alerts for alert[0] dropped: more than 3 waiting (the receiver is down or slow)' });
    expect(d.stats()[0]).toMatchObject({ queued: 3, dropped: 7 });
    // The one in flight times out and is given up; the two newest are delivered.
    clock.advance(5_000);
    await vi.waitFor(() => expect(deliveries(events).filter((e) => e.outcome === 'ok')).toHaveLength(2));
    expect(r.requests.map((q) => JSON.parse(q.body).service)).toEqual(['web0', 'web8', 'web9']);
  });
});
