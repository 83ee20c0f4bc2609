import { describe, expect, it } from 'vitest';
import type { EventRecord } from '../../store/types.js';
import { detectAlerts, OomAlerts, type ActiveProblems, type AlertFacts, type ServiceFact } from './detector.js';

const T0 = Date.UTC(2026, 0, 1);
const iso = (ms: number) => new Date(ms).toISOString();
const svc = (name: string, state: ServiceFact['state'], extra: Partial<ServiceFact> = {}): ServiceFact => ({
  name,
  state,
  revision: 1,
  reason: state === 'crashloop' ? 'last exit Error (code 1)' : null,
  instance: state === 'crashloop' ? `${name}-1-0-abcd` : null,
  node: state === 'crashloop' ? 'n1' : null,
  restarts: 0,
  resetAfterMs: 60_000,
  ...extra,
});
const facts = (f: Partial<AlertFacts>): AlertFacts => ({ services: [], nodes: [], certs: [], ...f });

/** Runs the detector over a sequence of fact sets; returns every alert's kind/subject per step. */
function run(steps: AlertFacts[], settlingSteps = 0, start: ActiveProblems = {}): { perStep: string[][]; active: ActiveProblems } {
  let active = start;
  const perStep: string[][] = [];
  steps.forEach((f, i) => {
    const r = detectAlerts(active, f, { time: iso(T0 + i * 1000), settling: i < settlingSteps });
    active = r.active;
    perStep.push(r.alerts.map((a) => `${a.kind}:${a.service ?? a.node}`));
  });
  return { perStep, active };
}

describe('detectAlerts', () => {
  it('alerts once when a service enters crashloop, not for the crashes that follow, again after it recovered and re-entered', () => {
    // One step a second.
    const steps = [
      facts({ services: [svc('web', 'healthy')] }),
      facts({ services: [svc('web', 'crashloop', { restarts: 1 })] }),
      // Twenty more crashes: between two the replacement runs for a moment (healthy, or degraded).
      ...Array.from({ length: 40 }, (_, i) => facts({ services: [svc('web', i % 2 ? 'crashloop' : i % 4 ? 'degraded' : 'healthy', { restarts: 2 + Math.floor(i / 2) })] })),
      // Healthy without a restart for reset_after_secs (60 s): the crash loop is over.
      ...Array.from({ length: 61 }, () => facts({ services: [svc('web', 'healthy', { restarts: 21 })] })),
      facts({ services: [svc('web', 'crashloop', { restarts: 22 })] }),
    ];
    const { perStep } = run(steps);
    expect(perStep.flat()).toEqual(['crashloop:web', 'crashloop:web']);
    expect(perStep[1]).toEqual(['crashloop:web']);
    expect(perStep[103]).toEqual(['crashloop:web']);
  });

  it('a crash loop is not over before reset_after_secs of health without a restart', () => {
    const steps = [
      facts({ services: [svc('web', 'crashloop', { restarts: 1 })] }),
      // Healthy 59 s, then one crash (no crashloop state seen, the restart count moved), healthy again.
      ...Array.from({ length: 59 }, () => facts({ services: [svc('web', 'healthy', { restarts: 1 })] })),
      facts({ services: [svc('web', 'healthy', { restarts: 2 })] }),
      ...Array.from({ length: 30 }, () => facts({ services: [svc('web', 'healthy', { restarts: 2 })] })),
      facts({ services: [svc('web', 'crashloop', { restarts: 3 })] }),
    ];
    const { perStep, active } = run(steps);
    expect(perStep.flat()).toEqual(['crashloop:web']);
    expect(Object.keys(active)).toEqual(['crashloop/web']);
  });

  it('carries the SPEC fields: time, kind, service, instance, node, message', () => {
    const r = detectAlerts({}, facts({ services: [svc('web', 'crashloop')] }), { time: iso(T0) });
    expect(r.alerts).toEqual([
      { time: iso(T0), kind: 'crashloop', service: 'web', instance: 'web-1-0-abcd', node: 'n1', message: 'service web is crash-looping: last exit Error (code 1) (instance web-1-0-abcd on node n1)' },
    ]);
  });

  it('one alert per kind and subject: two services, two nodes, a certificate', () => {
    const { perStep } = run([
      facts({
        services: [svc('web', 'crashloop'), svc('api', 'rollout-failed', { revision: 3, reason: 'not ready within 60 s' }), svc('db', 'crashloop')],
        nodes: [
          { name: 'n1', state: 'ready', lastHeartbeat: iso(T0) },
          { name: 'n2', state: 'unreachable', lastHeartbeat: iso(T0) },
          { name: 'n3', state: 'down', lastHeartbeat: iso(T0) },
        ],
        certs: [
          { host: 'a.example', failed: true, reason: 'the ACME directory cannot be reached', service: 'web' },
          { host: 'b.example', failed: false, reason: null, service: null },
        ],
      }),
    ]);
    expect(perStep[0]?.sort()).toEqual(['cert-failed:web', 'crashloop:db', 'crashloop:web', 'node-down:n3', 'node-unreachable:n2', 'node-unreachable:n3', 'rollout-failed:api'].sort());
  });

  it('a node: unreachable once, down once, back, and unreachable again', () => {
    const node = (state: 'ready' | 'unreachable' | 'down' | 'draining') => facts({ nodes: [{ name: 'n2', state, lastHeartbeat: iso(T0) }] });
    const { perStep } = run([node('ready'), node('unreachable'), node('unreachable'), node('down'), node('down'), node('ready'), node('draining'), node('unreachable')]);
    expect(perStep).toEqual([[], ['node-unreachable:n2'], [], ['node-down:n2'], [], [], [], ['node-unreachable:n2']]);
  });

  it('a rollout that fails again at a new revision alerts again; the same one does not', () => {
    const { perStep } = run([
      facts({ services: [svc('api', 'rollout-failed', { revision: 2 })] }),
      facts({ services: [svc('api', 'rollout-failed', { revision: 2 })] }),
      facts({ services: [svc('api', 'rollout-failed', { revision: 3 })] }),
      facts({ services: [svc('api', 'healthy', { revision: 4 })] }),
      facts({ services: [svc('api', 'rollout-failed', { revision: 5 })] }),
    ]);
    expect(perStep).toEqual([['rollout-failed:api'], [], ['rollout-failed:api'], [], ['rollout-failed:api']]);
  });

  it('a deleted service or removed node ends its problems', () => {
    const { perStep } = run([facts({ services: [svc('web', 'crashloop')] }), facts({ services: [] }), facts({ services: [svc('web', 'crashloop')] })]);
    expect(perStep).toEqual([['crashloop:web'], [], ['crashloop:web']]);
  });

  it('while settling (facts incomplete), problems begin but none ends: no second alert once the reports are back', () => {
    const alerted = run([facts({ services: [svc('web', 'crashloop')] })]).active;
    // A new leader: the agent has not reported yet (web looks degraded), then reports crashloop.
    const { perStep, active } = run([facts({ services: [svc('web', 'degraded')] }), facts({ services: [] }), facts({ services: [svc('web', 'crashloop')] })], 3, alerted);
    expect(perStep).toEqual([[], [], []]);
    expect(Object.keys(active)).toEqual(['crashloop/web']);
  });
});

describe('OomAlerts', () => {
  const oomEvent = (service: string, instance: string): EventRecord => ({
    time: iso(T0),
    reconciler: 'container',
    service,
    instance,
    node: 'n1',
    action: 'slot.update',
    reason: 'oom-killed; restart after 1 s (1 consecutive failure)',
    outcome: 'ok',
    durationMs: 0,
    message: 'raise resources.memory (64 MiB now)',
  });

  it('one alert per kill, at most one per service per window; kills in between are counted in the next', () => {
    const oom = new OomAlerts(60_000);
    expect(oom.see(oomEvent('web', 'w1'), T0)).toMatchObject({ kind: 'oom', service: 'web', instance: 'w1', node: 'n1' });
    expect(oom.see(oomEvent('web', 'w2'), T0 + 10_000)).toBeNull();
    expect(oom.see(oomEvent('web', 'w3'), T0 + 20_000)).toBeNull();
    // Another service is not held back by web's window.
    expect(oom.see(oomEvent('api', 'a1'), T0 + 20_000)?.service).toBe('api');
    const next = oom.see(oomEvent('web', 'w4'), T0 + 60_000);
    expect(next?.instance).toBe('w4');
    expect(next?.message).toContain('(2 more OOM kills of this service since the last alert)');
    expect(next?.message).toContain('raise resources.memory');
  });

  it('ignores other failures and other actions', () => {
    const oom = new OomAlerts(60_000);
    expect(oom.see({ ...oomEvent('web', 'w1'), reason: 'exited; restart now' }, T0)).toBeNull();
    expect(oom.see({ ...oomEvent('web', 'w1'), action: 'container.create', reason: 'replace-after-oom-killed' }, T0)).toBeNull();
  });
});
