import { describe, expect, it } from 'vitest';
import { ManualClock, flushMicrotasks } from '../core/clock.js';
import { silentLogger } from '../core/log.js';
import { WorkQueue, type HandlerResult } from './work-queue.js';

function setup(handler: (key: string) => Promise<HandlerResult>, concurrency = 4) {
  const clock = new ManualClock();
  const q = new WorkQueue({ clock, handler, log: silentLogger(), concurrency, retry: { initialMs: 100, maxMs: 1000 } });
  const abort = new AbortController();
  q.start(abort.signal);
  return { clock, q, abort };
}

describe('WorkQueue', () => {
  it('deduplicates a key added many times before it runs', async () => {
    const seen: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { q } = setup(async (k) => {
      if (k === 'x') await gate;
      seen.push(k);
      return { kind: 'done' };
    }, 1);
    q.add('x'); // occupies the only worker
    q.add('a');
    q.add('b');
    q.add('a');
    q.add('b');
    release();
    await flushMicrotasks();
    await q.idle();
    expect(seen).toEqual(['x', 'a', 'b']);
  });

  it('never runs the same key twice at once, and reruns a key added while it ran', async () => {
    let running = 0;
    let maxRunning = 0;
    let runs = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { q } = setup(async () => {
      running++;
      runs++;
      maxRunning = Math.max(maxRunning, running);
      if (runs === 1) await gate;
      running--;
      return { kind: 'done' };
    });
    q.add('a');
    await flushMicrotasks();
    q.add('a');
    q.add('a');
    release();
    await flushMicrotasks();
    await q.idle();
    expect(maxRunning).toBe(1);
    expect(runs).toBe(2);
  });

  it('retries a failing key with exponential backoff, reset by success', async () => {
    const times: number[] = [];
    let fail = 3;
    const { q, clock } = setup(async () => {
      times.push(clock.now());
      if (fail-- > 0) throw new Error('boom');
      return { kind: 'done' };
    });
    const t0 = clock.now();
    q.add('a');
    await flushMicrotasks();
    for (let i = 0; i < 20; i++) await clock.advanceAsync(50);
    expect(times.map((t) => t - t0)).toEqual([0, 100, 300, 700]);
  });

  it('honours "after": the key comes back when its delay ends', async () => {
    let calls = 0;
    const { q, clock } = setup(async () => (++calls === 1 ? { kind: 'after', ms: 500 } : { kind: 'done' }));
    q.add('a');
    await flushMicrotasks();
    await clock.advanceAsync(499);
    expect(calls).toBe(1);
    await clock.advanceAsync(1);
    expect(calls).toBe(2);
  });

  it('an explicit add beats a pending delay', async () => {
    let calls = 0;
    const { q, clock } = setup(async () => (++calls === 1 ? { kind: 'after', ms: 10_000 } : { kind: 'done' }));
    q.add('a');
    await flushMicrotasks();
    q.add('a');
    await flushMicrotasks();
    expect(calls).toBe(2);
    expect(clock.pending()).toBe(0);
  });
});
