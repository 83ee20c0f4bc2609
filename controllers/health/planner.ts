import type { ProbeSpec, ServiceSpec } from '../../manifest/types.js';
import { effectiveReadiness } from '../../manifest/probes.js';
import type { ObservedContainer } from '../../runtime/types.js';
import { parseInstanceLabels } from '../../runtime/labels.js';
import type { HealthAction, ProbeTarget } from './actions.js';
import type { ProbeCounters, ProbeKind } from './probe-state.js';

/** The probes a service's desired spec asks for. */
export interface ProbeSpecs {
  /** The effective readiness probe (the manifest's, or the implicit TCP check of the port). */
  readiness?: ProbeSpec;
  liveness?: ProbeSpec;
  servicePort?: number;
}

/** The probes a service's desired spec asks for (readiness as effectiveReadiness gives it), or null when it is not assigned here. */
export function probeSpecsOf(spec: ServiceSpec | undefined): ProbeSpecs | null {
  if (!spec) return null;
  const readiness = effectiveReadiness(spec);
  return { ...(readiness ? { readiness } : {}), ...(spec.liveness ? { liveness: spec.liveness } : {}), ...(spec.port !== undefined ? { servicePort: spec.port } : {}) };
}

/** One probe being run, as the runner shows it now (the health reconciler's observed state). */
export interface ProbeView {
  instance: string;
  containerId: string;
  kind: ProbeKind;
  spec: ProbeSpec;
  servicePort?: number;
  /** The published ports the runner checks (its container's when it started). */
  ports: Record<string, number>;
  counters: ProbeCounters;
  /** The last check's answer, if any. */
  lastDetail?: string;
  /** The verdict last acted on (the lifecycle was told), starting as the counters' initial status. */
  reported: ProbeCounters['status'];
}

export interface HealthInput {
  service: string;
  /** Null when the service is not assigned here (nothing is probed). */
  desired: ProbeSpecs | null;
  /** The service's containers on this node as Docker shows them. */
  observed: readonly ObservedContainer[];
  /** Instances the lifecycle has given up on (being replaced): no longer probed. */
  condemned: ReadonlySet<string>;
  /** Where the node publishes ports when a container does not say. */
  advertise: string;
  probes: readonly ProbeView[];
  now: number;
}

const targetKey = (instance: string, containerId: string) => `${instance}/${containerId}`;

/**
 * The health reconciler's pure planner: every running, non-condemned container of the service
 * has one runner per probe its desired spec asks for (`probe.start`, first check at the
 * container's start plus initial_delay_secs), runners of containers that left that set stop
 * (`probe.stop`) — and so do those whose container publishes on other host ports now (it was
 * re-attached to its network), to start again on the new ones — and a probe whose verdict differs from the one last acted on becomes
 * `instance.ready` / `instance.unready` (readiness) or `instance.liveness-failed` (liveness).
 * Applying the actions and planning again gives none.
 */
export function planHealth(input: HealthInput): HealthAction[] {
  const { service, desired, now } = input;
  const running = new Map<string, ProbeTarget>();
  if (desired) {
    for (const c of input.observed) {
      const l = parseInstanceLabels(c.labels);
      if (!l || l.service !== service || c.status !== 'running' || input.condemned.has(l.instance)) continue;
      running.set(targetKey(l.instance, c.id), {
        service,
        instance: l.instance,
        containerId: c.id,
        host: c.hostIp ?? input.advertise,
        ports: c.ports,
        startedAtMs: Date.parse(c.startedAt ?? '') || now,
        ...(desired.servicePort !== undefined ? { servicePort: desired.servicePort } : {}),
      });
    }
  }
  const actions: HealthAction[] = [];
  const stopped = new Set<string>();
  const have = new Set<string>();
  for (const p of input.probes) {
    const key = targetKey(p.instance, p.containerId);
    have.add(`${key}/${p.kind}`);
    const target = running.get(key);
    if (!target || !samePorts(target.ports, p.ports)) {
      const reason = target ? 'ports-changed' : 'instance-not-running';
      if (!stopped.has(key)) actions.push({ kind: 'probe.stop', key: `probe.stop:${key}`, reason, service, instance: p.instance, containerId: p.containerId });
      stopped.add(key);
      have.delete(`${key}/${p.kind}`);
      continue;
    }
    const verdict = verdictOf(service, p);
    if (verdict) actions.push(verdict);
  }
  for (const [key, target] of running) {
    for (const kind of ['readiness', 'liveness'] as const) {
      const spec = desired?.[kind];
      if (!spec || have.has(`${key}/${kind}`)) continue;
      const firstAt = target.startedAtMs + spec.initialDelaySecs * 1000;
      actions.push({ kind: 'probe.start', key: `probe.start:${key}/${kind}`, reason: 'instance-running', service, instance: target.instance, probe: kind, spec, target, firstInMs: Math.max(0, firstAt - now) });
    }
  }
  return actions;
}

function samePorts(a: Record<string, number>, b: Record<string, number>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

function verdictOf(service: string, p: ProbeView): HealthAction | null {
  const { status } = p.counters;
  if (status === p.reported || status === 'unknown') return null;
  const base = { service, instance: p.instance, containerId: p.containerId };
  const detail = p.lastDetail ?? '';
  if (p.kind === 'readiness') {
    return status === 'passing'
      ? { ...base, kind: 'instance.ready', key: `instance.ready:${p.instance}/${p.containerId}`, reason: 'readiness-passed', message: detail }
      : { ...base, kind: 'instance.unready', key: `instance.unready:${p.instance}/${p.containerId}`, reason: 'readiness-failed', message: detail };
  }
  if (status !== 'failing') return null;
  return {
    ...base,
    kind: 'instance.liveness-failed',
    key: `instance.liveness-failed:${p.instance}/${p.containerId}`,
    reason: 'liveness',
    message: `${describeProbe(p.spec, p.servicePort)} failed ${p.counters.failures} times: ${detail}`,
  };
}

/** A probe in a few words, for messages ("GET :80/ready", "TCP :80", "exec cat /tmp/ok"). */
export function describeProbe(spec: ProbeSpec, servicePort: number | undefined): string {
  const c = spec.check;
  if (c.kind === 'exec') return `exec ${c.command.join(' ')}`;
  const port = c.port ?? servicePort;
  return c.kind === 'http' ? `GET :${port}${c.path}` : `TCP :${port}`;
}
