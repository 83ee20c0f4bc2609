/**
 * Raw validated TOML (snake_case, optional fields) → ServiceSpec with every default filled in
 * from core/defaults.ts. Pure. Two manifests that mean the same thing normalise to deep-equal
 * specs: defaults written explicitly equal omitted ones, a probe port equal to the service port
 * equals an omitted one, host names are lower-cased, and empty maps equal missing ones. Optional
 * fields that are absent are left out entirely (never set to `undefined`).
 */
import { DEFAULTS } from '../core/defaults.js';
import type { ProbeCheck, ProbeSpec, ServiceSpec } from './types.js';
import type { RawProbe, RawService } from './schema.js';
import { parseMemory } from './units.js';

type ProbeDefaults = (typeof DEFAULTS.probe)[keyof typeof DEFAULTS.probe];

/** Expects input that passed `serviceSchema`; anything else is a bug. */
export function normaliseService(raw: RawService): ServiceSpec {
  const spec: ServiceSpec = {
    name: raw.name,
    image: raw.image,
    env: { ...raw.env },
    replicas: raw.replicas ?? DEFAULTS.replicas,
    stopGraceSecs: raw.stop_grace_secs ?? DEFAULTS.stopGraceSecs,
    init: raw.init ?? DEFAULTS.init,
    labels: { ...raw.labels },
    resources: {},
    restart: {
      policy: raw.restart?.policy ?? DEFAULTS.restart.policy,
      backoffInitialSecs: raw.restart?.backoff_initial_secs ?? DEFAULTS.restart.backoffInitialSecs,
      backoffMaxSecs: raw.restart?.backoff_max_secs ?? DEFAULTS.restart.backoffMaxSecs,
      resetAfterSecs: raw.restart?.reset_after_secs ?? DEFAULTS.restart.resetAfterSecs,
    },
    deploy: {
      // Two containers must not write one volume: a stateful service stops first unless told otherwise.
      strategy: raw.deploy?.strategy ?? (hasEntries(raw.volumes) ? DEFAULTS.deploy.strategyWithVolumes : DEFAULTS.deploy.strategy),
      readyTimeoutSecs: raw.deploy?.ready_timeout_secs ?? DEFAULTS.deploy.readyTimeoutSecs,
    },
  };
  if (raw.command) spec.command = [...raw.command];
  if (raw.entrypoint) spec.entrypoint = [...raw.entrypoint];
  if (raw.port !== undefined) spec.port = raw.port;
  if (raw.placement) {
    const placement: NonNullable<ServiceSpec['placement']> = {};
    if (raw.placement.node !== undefined) placement.node = raw.placement.node;
    if (raw.placement.labels && Object.keys(raw.placement.labels).length > 0) placement.labels = { ...raw.placement.labels };
    spec.placement = placement;
  }
  if (hasEntries(raw.volumes)) spec.volumes = { ...raw.volumes };
  if (raw.mounts && raw.mounts.length > 0) spec.mounts = raw.mounts.map((m) => ({ host: m.host, path: m.path, readOnly: m.read_only ?? DEFAULTS.mountReadOnly }));
  if (raw.secrets && raw.secrets.length > 0) spec.secrets = [...raw.secrets].sort();
  if (hasEntries(raw.secret_env)) spec.secretEnv = { ...raw.secret_env };
  if (raw.route) {
    spec.route = { host: raw.route.host.toLowerCase(), path: raw.route.path ?? DEFAULTS.routePath };
    if (raw.route.tls !== undefined && raw.route.tls !== 'off') spec.route.tls = raw.route.tls;
  }
  if (raw.resources?.memory !== undefined) {
    const mem = parseMemory(raw.resources.memory);
    if ('error' in mem) throw new Error(`bug: unvalidated memory reached normalise: ${mem.error}`);
    spec.resources.memoryBytes = mem.bytes;
  }
  if (raw.resources?.cpus !== undefined) spec.resources.cpus = raw.resources.cpus;
  if (raw.readiness) spec.readiness = normaliseProbe(raw.readiness, raw.port, DEFAULTS.probe.readiness);
  if (raw.liveness) spec.liveness = normaliseProbe(raw.liveness, raw.port, DEFAULTS.probe.liveness);
  return spec;
}

function hasEntries(m: Record<string, string> | undefined): m is Record<string, string> {
  return m !== undefined && Object.keys(m).length > 0;
}

function normaliseProbe(raw: RawProbe, servicePort: number | undefined, d: ProbeDefaults): ProbeSpec {
  return {
    check: normaliseCheck(raw, servicePort),
    intervalSecs: raw.interval_secs ?? d.intervalSecs,
    timeoutSecs: raw.timeout_secs ?? d.timeoutSecs,
    failureThreshold: raw.failure_threshold ?? d.failureThreshold,
    successThreshold: raw.success_threshold ?? d.successThreshold,
    initialDelaySecs: raw.initial_delay_secs ?? d.initialDelaySecs,
  };
}

function normaliseCheck(raw: RawProbe, servicePort: number | undefined): ProbeCheck {
  if (raw.exec) return { kind: 'exec', command: [...raw.exec] };
  const port = raw.port ?? servicePort;
  if (port === undefined) throw new Error('bug: probe without a port passed validation');
  if (raw.tcp) return { kind: 'tcp', port };
  if (raw.path === undefined) throw new Error('bug: probe without a check passed validation');
  return { kind: 'http', path: raw.path, port };
}
