import { describe, expect, it } from 'vitest';
import { ManualClock, flushMicrotasks } from '../core/clock.js';
import { silentLogger } from '../core/log.js';
import { Controller, type Reconciler } from './controller.js';

function recorder(keys: string[], fail = new Set<string>()) {
  const seen: Array<{ key: string; at: number }> = [];
  let clock!: ManualClock;
  const r: Reconciler = {
    name: 'route',
    keys: () => keys,
    async reconcile(key) {
      seen.push({ key, at: clock.now() });
      if (fail.has(key)) {
        fail.delete(key);
        throw new Error('transient');
      }
      return { kind: 'done' };
    },
  };
  return { r, seen, setClock: (c: ManualClock) => (clock = c) };
}

describe('Controller', () => {
  it('reconciles triggered keys once each, resyncs every key on its period, and retries a failure with backoff', async () => {
    const clock = new ManualClock();
    const { r, seen, setClock } = recorder(['a', 'b'], new Set(['b']));
    setClock(clock);
    const c = new Controller({ reconciler: r, clock, log: silentLogger(), resyncMs: 10_000, retry: { initialMs: 100, maxMs: 1000 } });
    const ac = new AbortController();
    c.start(ac.signal);
    c.trigger('a');
    c.trigger('a');
    c.trigger('a');
    await c.idle();
    // Triggers fold: one run, plus at most one more for triggers that came while it ran.
    expect(seen.every((s) => s.key === 'a')).toBe(true);
    expect(seen.length).toBeLessThanOrEqual(2);
    seen.length = 0;
    await clock.advanceAsync(10_000, 10);
    await flushMicrotasks(20);
    await c.idle();
    // The resync looked at a and b; b failed and came back after its retry backoff.
    expect(seen.filter((s) => s.key === 'b')).toHaveLength(1);
    await clock.advanceAsync(100, 10);
    await c.idle();
    expect(seen.filter((s) => s.key === 'b')).toHaveLength(2);
    const before = seen.length;
    ac.abort();
    await clock.advanceAsync(20_000, 10);
    await flushMicrotasks(20);
    // Stopped: no more resyncs.
    expect(seen.length).toBe(before);
  });
});
