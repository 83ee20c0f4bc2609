import { describe, expect, it } from 'vitest';
import { ManualClock, flushMicrotasks } from '../core/clock.js';
import { silentLogger } from '../core/log.js';
import { OrcaError } from '../core/errors.js';
import { WorkQueue, type HandlerResult } from './work-queue.js';

function setup(handler: (key: string) => Promise<HandlerResult>, concurrency = 4) {
  const clock = new ManualClock();
  const q = new WorkQueue({ clock, handler, log: silentLogger(), concurrency, retry: { initialMs: 100, maxMs: 1000 }, terminalRetryMs: 30_000 });
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

  /** Runs a key that throws `errors` in turn (then succeeds) for `forMs`; the times it ran, from its first run. */
  async function retryTimes(errors: unknown[], forMs: number): Promise<number[]> {
    const times: number[] = [];
    const { q, clock } = setup(async () => {
      times.push(clock.now());
      const e = errors.shift();
      if (e !== undefined) throw e;
      return { kind: 'done' };
    });
    q.add('a');
    await flushMicrotasks();
    for (let t = 0; t < forMs; t += 50) await clock.advanceAsync(50);
    return times.map((t) => t - (times[0] ?? 0));
  }

  it('retries a terminal (non-transient) OrcaError slowly, after terminalRetryMs', async () => {
    const missing = () => new OrcaError('ORCA_IMAGE_MISSING', 'image x not found');
    expect(await retryTimes([missing(), missing()], 70_000)).toEqual([0, 30_000, 60_000]);
  });

  it('keeps the fast backoff for a transient OrcaError and for plain errors', async () => {
    const down = () => new OrcaError('ORCA_RUNTIME_UNAVAILABLE', 'Docker is unreachable', { transient: true });
    expect(await retryTimes([down(), down(), new Error('bug')], 2_000)).toEqual([0, 100, 300, 700]);
  });

  it('a stale observation (the container went away or changed) is retried fast, though not transient', async () => {
    const gone = new OrcaError('ORCA_RUNTIME_NOT_FOUND', 'No such container');
    const conflict = new OrcaError('ORCA_RUNTIME_CONFLICT', 'You cannot remove a running container');
    expect(await retryTimes([gone, conflict], 1_000)).toEqual([0, 100, 300]);
  });

  it('an explicit add brings a key waiting on a terminal retry back at once', async () => {
    let calls = 0;
    const { q, clock } = setup(async () => {
      if (++calls === 1) throw new OrcaError('ORCA_IMAGE_MISSING', 'image x not found');
      return { kind: 'done' };
    });
    q.add('a');
    await flushMicrotasks();
    await clock.advanceAsync(1_000);
    expect(calls).toBe(1);
    q.add('a'); // the image was built: an event says so
    await flushMicrotasks();
    expect(calls).toBe(2);
  });
});
