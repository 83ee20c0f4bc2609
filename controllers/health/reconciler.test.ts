import { describe, expect, it } from 'vitest';
import { ManualClock, flushMicrotasks } from '../../core/clock.js';
import { silentLogger } from '../../core/log.js';
import type { ProbeSpec } from '../../manifest/types.js';
import type { ObservedContainer } from '../../runtime/types.js';
import { aContainer } from '../../test/builders.js';
import { Controller } from '../controller.js';
import type { ProbeTarget } from './actions.js';
import type { CheckResult, ProbeChecks } from './checks.js';
import type { ProbeSpecs } from './planner.js';
import { HealthReconciler } from './reconciler.js';
import { ProbeRunners } from './runner.js';
function fakeChecks(clock: ManualClock) {
  const calls: Array<{ kind: string; at: number; port?: number; path?: string; timeoutMs: number }> = [];
  let answer: CheckResult = { ok: true, detail: 'ok' };
  const checks: ProbeChecks = {
    async http(_h, port, path, timeoutMs) {
      calls.push({ kind: 'http', at: clock.now(), port, path, timeoutMs });
      return answer;
    },
    async tcp(_h, port, timeoutMs) {
      calls.push({ kind: 'tcp', at: clock.now(), port, timeoutMs });
      return answer;
    },
    async exec(_id, _cmd, timeoutMs) {
      calls.push({ kind: 'exec', at: clock.now(), timeoutMs });
      return answer;
    },
  };
  return { checks, calls, set: (ok: boolean, detail = ok ? 'ok' : 'HTTP 503') => (answer = { ok, detail }) };
}

const probe = (over: Partial<ProbeSpec> = {}): ProbeSpec => ({
  check: { kind: 'http', path: '/ready' },
  intervalSecs: 1,
  timeoutSecs: 0.5,
  failureThreshold: 3,
  successThreshold: 1,
  initialDelaySecs: 2,
  ...over,
});

type Target = ProbeTarget & { readiness?: ProbeSpec; liveness?: ProbeSpec };

/**
 * The health reconciler as the agent runs it: a Controller over HealthReconciler and its probe
 * runners, on a manual clock. `syncService` makes the targets the service's running containers
 * (and their probes its desired ones) and triggers the service, as a container reconcile does.
 */
function setup() {
  const clock = new ManualClock();
  const f = fakeChecks(clock);
  const log: string[] = [];
  const desired = new Map<string, ProbeSpecs>();
  const observed = new Map<string, ObservedContainer[]>();
  let controller: Controller | undefined;
  const runners = new ProbeRunners(clock, f.checks, (s) => controller?.trigger(s), silentLogger());
  const reconciler = new HealthReconciler({
    clock,
    log: silentLogger(),
    node: 'n1',
    advertise: '127.0.0.1',
    desired: (s) => desired.get(s) ?? null,
    observed: (s) => observed.get(s) ?? [],
    condemned: () => new Set(),
    services: () => desired.keys(),
    runners,
    effects: { setReady: () => {}, livenessFailed: () => {} },
    record: (e) => {
      const what = e.action === 'instance.ready' ? 'ready' : e.action === 'instance.unready' ? 'unready' : 'dead';
      log.push(`${clock.now() - t0} ${e.instance} ${what} ${e.message}`);
    },
  });
  controller = new Controller({ reconciler, clock, log: silentLogger(), resyncMs: 0, retry: { initialMs: 100, maxMs: 1000 } });
  controller.start(new AbortController().signal);
  const t0 = clock.now();
  const target = (over: Partial<Target> = {}): Target => ({
    service: 'web',
    instance: 'a',
    containerId: 'c1',
    host: '127.0.0.1',
    ports: { '80': 49153, '9000': 49154 },
    startedAtMs: t0,
    servicePort: 80,
    ...over,
  });
  const h = {
    syncService(service: string, targets: Target[]): void {
      const t = targets[0];
      if (t) desired.set(service, { ...(t.readiness ? { readiness: t.readiness } : {}), ...(t.liveness ? { liveness: t.liveness } : {}), ...(t.servicePort !== undefined ? { servicePort: t.servicePort } : {}) });
      observed.set(
        service,
        targets.map((x) => ({ ...aContainer({ service, instance: x.instance, startedAt: new Date(x.startedAtMs).toISOString() }), id: x.containerId, hostIp: x.host, ports: x.ports })),
      );
      controller!.trigger(service);
    },
  };
  const tick = async (ms: number) => {
    for (let i = 0; i < ms / 50; i++) await clock.advanceAsync(50);
  };
  return { clock, f, h, log, target, tick, t0 };
}

describe('HealthReconciler', () => {
  it('with a start interval (the implicit readiness check), looks often until the first pass; in-between failures count for nothing, passes at once', async () => {
    const { f, h, log, target, tick, t0 } = setup();
    f.set(false, 'refused');
    h.syncService('web', [target({ readiness: probe({ check: { kind: 'tcp' }, initialDelaySecs: 0, startIntervalSecs: 0.25 }) })]);
    await tick(2100);
    // Failures keep the interval's cadence: the third counted failure is at 2000, as without quick looks.
    expect(f.calls.map((c) => c.at - t0)).toEqual([0, 250, 500, 750, 1000, 1250, 1500, 1750, 2000]);
    expect(log).toEqual(['2000 a unready refused']);
    f.set(true);
    await tick(300);
    expect(log).toEqual(['2000 a unready refused', '2250 a ready ok']);
    // Passed once: the interval from then on, even when it fails again.
    const after = f.calls.length;
    f.set(false, 'refused');
    await tick(2000);
    expect(f.calls.slice(after).map((c) => c.at - t0)).toEqual([3250, 4250]);
  });

  it('honours initial delay, interval, timeout and the probe port', async () => {
    const { f, h, target, tick, t0 } = setup();
    h.syncService('web', [target({ readiness: probe({ check: { kind: 'http', path: '/ready', port: 9000 } }) })]);
    await tick(4500);
    expect(f.calls.map((c) => c.at - t0)).toEqual([2000, 3000, 4000]);
    expect(f.calls[0]).toMatchObject({ kind: 'http', port: 49154, path: '/ready', timeoutMs: 500 });
  });

  it('readiness: ready after success_threshold passes, unready after failure_threshold failures', async () => {
    const { f, h, log, target, tick } = setup();
    h.syncService('web', [target({ readiness: probe({ successThreshold: 2, failureThreshold: 2, initialDelaySecs: 0 }) })]);
    await tick(1500);
    expect(log).toEqual(['1000 a ready ok']);
    f.set(false);
    await tick(2000);
    expect(log).toEqual(['1000 a ready ok', '3000 a unready HTTP 503']);
    f.set(true);
    await tick(2000);
    expect(log.at(-1)).toBe('5000 a ready ok');
  });

  it('liveness: reports once after failure_threshold consecutive failures and stops probing', async () => {
    const { f, h, log, target, tick } = setup();
    f.set(false, 'connection refused');
    h.syncService('web', [target({ liveness: probe({ check: { kind: 'tcp' }, initialDelaySecs: 0 }) })]);
    await tick(5000);
    expect(log).toEqual(['2000 a dead TCP :80 failed 3 times: connection refused']);
    expect(f.calls).toHaveLength(3);
  });

  it('exec probes run in the container', async () => {
    const { f, h, target, tick } = setup();
    h.syncService('web', [target({ readiness: probe({ check: { kind: 'exec', command: ['cat', '/tmp/ok'] }, initialDelaySecs: 0 }) })]);
    await tick(100);
    expect(f.calls[0]).toMatchObject({ kind: 'exec', timeoutMs: 500 });
  });

  it('a port that is not published fails the probe with a reason', async () => {
    const { h, log, target, tick } = setup();
    h.syncService('web', [target({ ports: {}, readiness: probe({ failureThreshold: 1, initialDelaySecs: 0 }) })]);
    await tick(100);
    expect(log).toEqual([expect.stringMatching(/^\d+ a unready port 80 is not published$/)]);
  });

  it('stops probing instances that leave the set, and is idempotent for the same set', async () => {
    const { f, h, target, tick } = setup();
    const t = target({ readiness: probe({ initialDelaySecs: 0 }) });
    h.syncService('web', [t]);
    h.syncService('web', [t]);
    await tick(1500);
    expect(f.calls).toHaveLength(2);
    h.syncService('web', []);
    await tick(3000);
    expect(f.calls).toHaveLength(2);
  });

  it('counts initial delay from the container start, not from when probing began', async () => {
    const { f, h, target, tick, clock, t0 } = setup();
    clock.advance(10_000);
    h.syncService('web', [target({ startedAtMs: t0, readiness: probe({ initialDelaySecs: 2 }) })]);
    await flushMicrotasks();
    await tick(100);
    expect(f.calls.map((c) => c.at - t0)).toEqual([10_000]);
  });
});
