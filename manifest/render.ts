/**
 * ServiceSpec → the manifest's own shape (snake_case keys, SPEC §2 field order, memory as "64m"),
 * and from there → TOML text. Used by `orca diff` (field paths), `orca history` and rollback
 * displays. Rendering is explicit: every defaulted field is written out, except empty `env`,
 * `labels` and `resources`, which mean the same as absent ones.
 *
 * Round trip: parseManifestText(toManifestToml(spec)) yields a spec deep-equal to `spec`.
 */
import TOML from '@iarna/toml';
import type { ProbeSpec, ServiceSpec } from './types.js';
import { formatMemory } from './units.js';

export type ManifestValue = string | number | boolean | string[] | ManifestTable | ManifestTable[];
export interface ManifestTable {
  [key: string]: ManifestValue;
}

/** Tables rendered as `[service.x]` sections; all other tables are inline. */
const SECTIONS = new Set(['route', 'resources', 'readiness', 'liveness', 'restart', 'deploy']);

/** The spec as a manifest table, keys in SPEC §2 order, absent optional fields left out. */
export function toManifestTable(spec: ServiceSpec): ManifestTable {
  const t: ManifestTable = { name: spec.name, image: spec.image };
  if (spec.command) t.command = [...spec.command];
  if (spec.entrypoint) t.entrypoint = [...spec.entrypoint];
  if (Object.keys(spec.env).length > 0) t.env = { ...spec.env };
  t.replicas = spec.replicas;
  if (spec.port !== undefined) t.port = spec.port;
  t.stop_grace_secs = spec.stopGraceSecs;
  t.init = spec.init;
  if (Object.keys(spec.labels).length > 0) t.labels = { ...spec.labels };
  if (spec.placement) {
    const p: ManifestTable = {};
    if (spec.placement.node !== undefined) p.node = spec.placement.node;
    if (spec.placement.labels) p.labels = { ...spec.placement.labels };
    t.placement = p;
  }
  if (spec.volumes) t.volumes = { ...spec.volumes };
  if (spec.mounts) t.mounts = spec.mounts.map((m) => ({ host: m.host, path: m.path, read_only: m.readOnly }));
  if (spec.secrets) t.secrets = [...spec.secrets];
  if (spec.secretEnv) t.secret_env = { ...spec.secretEnv };
  if (spec.route) t.route = { host: spec.route.host, path: spec.route.path, ...(spec.route.tls ? { tls: spec.route.tls } : {}) };
  const r: ManifestTable = {};
  if (spec.resources.memoryBytes !== undefined) r.memory = formatMemory(spec.resources.memoryBytes);
  if (spec.resources.cpus !== undefined) r.cpus = spec.resources.cpus;
  if (Object.keys(r).length > 0) t.resources = r;
  if (spec.readiness) t.readiness = probeTable(spec.readiness);
  if (spec.liveness) t.liveness = probeTable(spec.liveness);
  t.restart = {
    policy: spec.restart.policy,
    backoff_initial_secs: spec.restart.backoffInitialSecs,
    backoff_max_secs: spec.restart.backoffMaxSecs,
    reset_after_secs: spec.restart.resetAfterSecs,
  };
  t.deploy = { strategy: spec.deploy.strategy, ready_timeout_secs: spec.deploy.readyTimeoutSecs };
  return t;
}

function probeTable(p: ProbeSpec): ManifestTable {
  const t: ManifestTable = {};
  const c = p.check;
  if (c.kind === 'http') t.path = c.path;
  else if (c.kind === 'tcp') t.tcp = true;
  else t.exec = [...c.command];
  if (c.kind !== 'exec' && c.port !== undefined) t.port = c.port;
  t.interval_secs = p.intervalSecs;
  t.timeout_secs = p.timeoutSecs;
  t.failure_threshold = p.failureThreshold;
  t.success_threshold = p.successThreshold;
  t.initial_delay_secs = p.initialDelaySecs;
  return t;
}

/** One `[[service]]` table as TOML text, ending with a newline. Pure. */
export function toManifestToml(spec: ServiceSpec): string {
  const table = toManifestTable(spec);
  const head: string[] = ['[[service]]'];
  const sections: string[] = [];
  for (const [key, value] of Object.entries(table)) {
    if (SECTIONS.has(key) && isTable(value)) {
      const lines = Object.entries(value).map(([k, v]) => `${tomlKey(k)} = ${tomlValue(v)}`);
      sections.push(['', `[service.${key}]`, ...lines].join('\n'));
    } else {
      head.push(`${tomlKey(key)} = ${tomlValue(value)}`);
    }
  }
  return `${[head.join('\n'), ...sections].join('\n')}\n`;
}

/** A bare key when TOML allows one, else a quoted key. */
export function tomlKey(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : tomlString(key);
}

const ESCAPES: Record<string, string> = { '\b': '\\b', '\t': '\\t', '\n': '\\n', '\f': '\\f', '\r': '\\r', '"': '\\"', '\\': '\\\\' };

/**
 * A TOML basic string. Every control character is escaped (@iarna/toml's stringify leaves
 * U+0000 raw, which its own parser then rejects).
 */
export function tomlString(s: string): string {
  const body = s.replace(/[\u0000-\u001f\u007f"\\]/g, (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return `"${body}"`;
}

function tomlValue(v: ManifestValue): string {
  if (isTable(v)) {
    const entries = Object.entries(v).map(([k, x]) => `${tomlKey(k)} = ${tomlValue(x)}`);
    return entries.length === 0 ? '{}' : `{ ${entries.join(', ')} }`;
  }
  if (Array.isArray(v)) return `[${v.map((x: string | ManifestTable) => (typeof x === 'string' ? tomlString(x) : tomlValue(x))).join(', ')}]`;
  if (typeof v === 'string') return tomlString(v);
  return TOML.stringify.value(v);
}

function isTable(v: ManifestValue): v is ManifestTable {
  return typeof v === 'object' && !Array.isArray(v);
}
