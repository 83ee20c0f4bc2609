import { describe, expect, it } from 'vitest';
import { ManualClock, flushMicrotasks } from '../core/clock.js';
import { silentLogger } from '../core/log.js';
import type { RuntimeEvent } from '../runtime/types.js';
import { followRuntimeEvents } from './runtime-events.js';

const ev = (containerId: string): RuntimeEvent => ({ kind: 'die', containerId, labels: {}, timeMs: 0, exitCode: 137 });

/** A runtime whose n-th stream yields script[n]'s events, then breaks (or, past the script, waits for the abort). */
function scripted(script: RuntimeEvent[][]) {
  let opened = 0;
  return {
    opened: () => opened,
    events(_labels: Record<string, string>, signal: AbortSignal): AsyncIterable<RuntimeEvent> {
      const n = opened++;
      return (async function* () {
        const batch = script[n];
        if (!batch) {
          await new Promise((r) => signal.addEventListener('abort', r, { once: true }));
          return;
        }
        yield* batch;
        throw new Error('stream broke');
      })();
    },
  };
}

describe('followRuntimeEvents', () => {
  it('passes events on, re-opens a broken stream with backoff and reports each re-open', async () => {
    const clock = new ManualClock();
    const rt = scripted([[ev('a')], []]);
    const seen: string[] = [];
    const abort = new AbortController();
    const done = followRuntimeEvents(
      { runtime: rt, labels: {}, clock, log: silentLogger(), reconnect: { initialMs: 100, maxMs: 1000 }, onEvent: (e) => seen.push(e.containerId), onReopen: () => seen.push('reopen') },
      abort.signal,
    );
    await flushMicrotasks(20);
    expect(seen).toEqual(['a']);
    expect(rt.opened()).toBe(1);
    await clock.advanceAsync(99);
    expect(rt.opened()).toBe(1);
    await clock.advanceAsync(1);
    await flushMicrotasks(20);
    // The second stream broke with no event: the next delay doubles.
    expect(seen).toEqual(['a', 'reopen']);
    await clock.advanceAsync(199);
    expect(rt.opened()).toBe(2);
    await clock.advanceAsync(1);
    await flushMicrotasks(20);
    expect(rt.opened()).toBe(3);
    expect(seen).toEqual(['a', 'reopen', 'reopen']);
    abort.abort();
    await done;
  });

  it('stops when the signal aborts while waiting to re-open', async () => {
    const clock = new ManualClock();
    const rt = scripted([[]]);
    const abort = new AbortController();
    const done = followRuntimeEvents({ runtime: rt, labels: {}, clock, log: silentLogger(), reconnect: { initialMs: 100, maxMs: 1000 }, onEvent: () => {}, onReopen: () => {} }, abort.signal);
    await flushMicrotasks(20);
    abort.abort();
    await done;
    await clock.advanceAsync(10_000);
    expect(rt.opened()).toBe(1);
  });
});
