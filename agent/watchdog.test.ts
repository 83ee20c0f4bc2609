import { describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { startWatchdog } from './watchdog.js';

describe('startWatchdog', () => {
  it('runs a pass every interval from the end of the previous one, and stops on abort', async () => {
    const clock = new ManualClock();
    const t0 = clock.now();
    const passes: number[] = [];
    const abort = new AbortController();
    startWatchdog(clock, 1000, abort.signal, async () => {
      passes.push(clock.now() - t0);
      await new Promise<void>((r) => clock.setTimeout(r, 500)); // a pass that takes 500 ms
    });
    await clock.advanceAsync(999, 50);
    expect(passes).toEqual([]);
    await clock.advanceAsync(3101, 50);
    expect(passes).toHaveLength(3);
    expect(passes[0]).toBe(1000);
    // Each pass takes 500 ms; the next one comes an interval after it ended (within a clock step).
    for (let i = 1; i < passes.length; i++) {
      expect(passes[i]! - passes[i - 1]!).toBeGreaterThanOrEqual(1500);
      expect(passes[i]! - passes[i - 1]!).toBeLessThan(1500 + 100);
    }
    abort.abort();
    await clock.advanceAsync(10_000, 50);
    expect(passes).toHaveLength(3);
  });
});
