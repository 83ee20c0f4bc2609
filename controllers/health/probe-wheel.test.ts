import { describe, expect, it } from 'vitest';
import { ManualClock, seededRng, type Clock } from '../../core/clock.js';
import { silentLogger } from '../../core/log.js';
import type { ProbeSpec } from '../../manifest/types.js';
import type { ProbeTarget } from './actions.js';
import type { CheckResult, ProbeChecks } from './checks.js';
import { ProbeWheel } from './probe-wheel.js';
import { ProbeRunners } from './runner.js';

/** Checks answering at once, recording when each target was checked (by host port). */
function recordingChecks(clock: ManualClock, ok: () => boolean = () => true) {
  const at = new Map<number, number[]>();
  const answer = (port: number): Promise<CheckResult> => {
    at.set(port, [...(at.get(port) ?? []), clock.now()]);
    return Promise.resolve(ok() ? { ok: true, detail: 'ok' } : { ok: false, detail: 'HTTP 503' });
  };
  const checks: ProbeChecks = {
    http: (_h, port) => answer(port),
    tcp: (_h, port) => answer(port),
    exec: () => Promise.resolve({ ok: true, detail: 'exit 0' }),
  };
  return { checks, at };
}

const spec = (intervalSecs: number, over: Partial<ProbeSpec> = {}): ProbeSpec => ({
  check: { kind: 'http', path: '/ready' },
  intervalSecs,
  timeoutSecs: 0.5,
  failureThreshold: 3,
  successThreshold: 1,
  initialDelaySecs: 0,
  ...over,
});

const target = (i: number): ProbeTarget => ({ startedAtMs: 0, service: `s${i}`, instance: `i${i}`, containerId: `c${i}`, host: '127.0.0.1', ports: { '80': 40_000 + i }, servicePort: 80 });

/** Steps the clock in small steps, letting the checks' promises settle in between. */
async function tick(clock: ManualClock, ms: number, step = 10): Promise<void> {
  for (let t = 0; t < ms; t += step) await clock.advanceAsync(step);
}

describe('ProbeWheel', () => {
  it('puts a due time on the nearest phase of its interval, never before now', () => {
    const clock = new ManualClock(1_000_000);
    const wheel = new ProbeWheel(clock, 4);
    expect(wheel.slotFor(1_000_100, 1000)).toBe(1_000_000);
    expect(wheel.slotFor(1_000_130, 1000)).toBe(1_000_250);
    expect(wheel.slotFor(1_002_370, 2000)).toBe(1_002_500);
    clock.advance(10);
    expect(wheel.slotFor(1_000_000, 1000)).toBe(1_000_250);
  });

  it('fires everything due in one phase from one timer, and a cancelled entry not at all', () => {
    const clock = new ManualClock(1_000_000);
    const wheel = new ProbeWheel(clock, 4);
    const fired: string[] = [];
    wheel.schedule(() => fired.push('a'), 1_000_240, 1000);
    wheel.schedule(() => fired.push('b'), 1_000_260, 1000);
    const c = wheel.schedule(() => fired.push('c'), 1_000_250, 2000);
    wheel.schedule(() => fired.push('d'), 1_000_500, 1000);
    expect(clock.pending()).toBe(2);
    wheel.cancel(c);
    clock.advance(250);
    expect(fired).toEqual(['a', 'b']);
    expect(wheel.timers()).toBe(1);
    clock.advance(250);
    expect(fired).toEqual(['a', 'b', 'd']);
    expect(clock.pending()).toBe(0);
  });
});

describe('ProbeRunners on the shared wheel', () => {
  it('100 probes started at scattered times hold at most 4 timers per interval, and each runs every interval', async () => {
    const clock = new ManualClock();
    const t0 = clock.now();
    const { checks, at } = recordingChecks(clock);
    const runners = new ProbeRunners(clock, checks, () => {}, silentLogger());
    const rng = seededRng(17);
    const firstDue = new Map<number, number>();
    for (let i = 0; i < 100; i++) {
      const first = Math.floor(rng.next() * 1000);
      firstDue.set(40_000 + i, t0 + first);
      runners.start(target(i), 'readiness', spec(1), first);
    }
    expect(clock.pending()).toBeLessThanOrEqual(5);
    await tick(clock, 10_500);
    for (const [port, times] of at) {
      const due = firstDue.get(port) as number;
      expect(Math.abs((times[0] as number) - due)).toBeLessThanOrEqual(125);
      expect(times.length).toBeGreaterThanOrEqual(10);
      for (let k = 1; k < times.length; k++) expect((times[k] as number) - (times[k - 1] as number)).toBe(1000);
    }
    expect(at.size).toBe(100);
    // Timers of 1 s probes on a 250 ms grid: never more than the 4 phases (plus the next one).
    expect(clock.pending()).toBeLessThanOrEqual(5);
    runners.stopAll();
    expect(clock.pending()).toBe(0);
  });

  it('a timer that fires late (a busy machine) does not push the probe off its grid', async () => {
    const clock = new ManualClock();
    const t0 = clock.now();
    // Every timer fires 130 ms after it was due: more than half a phase (125 ms) of a 1 s probe.
    const late: Clock = { now: () => clock.now(), setTimeout: (fn, ms) => clock.setTimeout(fn, ms + 130), clearTimeout: (h) => clock.clearTimeout(h) };
    const { checks, at } = recordingChecks(clock);
    const runners = new ProbeRunners(late, checks, () => {}, silentLogger());
    runners.start(target(1), 'readiness', spec(1), 0);
    await tick(clock, 5_000);
    expect(at.get(40_001)?.map((t) => t - t0)).toEqual([130, 1130, 2130, 3130, 4130]);
  });

  it('a 1 s and a 2 s probe share the grid', async () => {
    const clock = new ManualClock();
    const { checks, at } = recordingChecks(clock);
    const runners = new ProbeRunners(clock, checks, () => {}, silentLogger());
    runners.start(target(1), 'readiness', spec(1), 480);
    runners.start(target(2), 'liveness', spec(2), 510);
    expect(clock.pending()).toBe(1);
    await tick(clock, 4600);
    expect(at.get(40_001)?.map((t) => t - clock.now() + 4600)).toEqual([500, 1500, 2500, 3500, 4500]);
    expect(at.get(40_002)?.map((t) => t - clock.now() + 4600)).toEqual([500, 2500, 4500]);
  });

  it('a failing probe still counts each failure toward its threshold, one interval apart', async () => {
    const clock = new ManualClock();
    const t0 = clock.now();
    const { checks, at } = recordingChecks(clock, () => false);
    const changed: Array<{ service: string; at: number }> = [];
    const runners = new ProbeRunners(clock, checks, (service) => changed.push({ service, at: clock.now() - t0 }), silentLogger());
    runners.start(target(1), 'liveness', spec(1, { failureThreshold: 3 }), 333);
    await tick(clock, 5000);
    // Checked at 250 (333 on the 250 ms grid), 1250, 2250: the third failure is the verdict, then no more checks.
    expect(at.get(40_001)?.map((t) => t - t0)).toEqual([250, 1250, 2250]);
    expect(changed).toEqual([{ service: 's1', at: 2250 }]);
    const view = runners.views('s1')[0];
    expect(view?.counters).toMatchObject({ status: 'failing', failures: 3 });
  });
});
