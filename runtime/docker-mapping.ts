/**
 * Pure translations between Docker Engine API JSON (API 1.41) and the Runtime port's types:
 * container inspect → ObservedContainer, event → RuntimeEvent, HTTP/socket error → OrcaError.
 * Only the fields Orca reads are typed here; dockerode stays confined to docker-runtime.ts.
 */
import { OrcaError, errorMessage, type ErrorCode } from '../core/errors.js';
import { LABEL } from './labels.js';
import type { ContainerStatus, ObservedContainer, RuntimeEvent, RuntimeEventKind } from './types.js';

/** The subset of GET /containers/{id}/json that Orca reads. */
export interface DockerInspect {
  Id: string;
  Name: string;
  Created: string;
  Config: { Image: string; Labels?: Record<string, string> | null };
  State: {
    Status: string;
    /** Host pid of the main process; 0 when not running. */
    Pid?: number;
    ExitCode: number;
    OOMKilled: boolean;
    Error?: string;
    StartedAt: string;
    FinishedAt: string;
    Health?: { Status: string } | null;
  };
  HostConfig?: { PortBindings?: Record<string, Array<{ HostIp?: string; HostPort?: string }> | null> | null };
  NetworkSettings?: { Ports?: Record<string, Array<{ HostIp: string; HostPort: string }> | null> | null };
}

/** One line of GET /events. */
export interface DockerEvent {
  Type?: string;
  Action?: string;
  status?: string;
  id?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
  timeNano?: number;
}

const STATUSES: readonly ContainerStatus[] = ['created', 'running', 'paused', 'restarting', 'removing', 'exited', 'dead'];
const EVENT_KINDS: readonly RuntimeEventKind[] = ['create', 'start', 'die', 'oom', 'kill', 'stop', 'destroy', 'health_status'];
/** Event attributes that Docker adds next to the container's labels. */
const NON_LABEL_ATTRIBUTES = ['name', 'image', 'exitCode'];

/** ObservedContainer from an inspect result. Exit code only once exited; ports only while published. */
export function observedFromInspect(c: DockerInspect): ObservedContainer {
  const status = (STATUSES as readonly string[]).includes(c.State.Status) ? (c.State.Status as ContainerStatus) : 'dead';
  const published = primaryPort(c);
  const health = c.State.Health?.Status;
  const exited = status === 'exited' || status === 'dead';
  return {
    id: c.Id,
    name: c.Name.replace(/^\//, ''),
    image: c.Config.Image,
    labels: { ...(c.Config.Labels ?? {}) },
    status,
    exitCode: exited ? c.State.ExitCode : null,
    // Docker keeps OOMKilled from an earlier run after a restart; report it for the last run only.
    oomKilled: exited && c.State.OOMKilled,
    startedAt: dockerTime(c.State.StartedAt),
    finishedAt: dockerTime(c.State.FinishedAt),
    createdAt: dockerTime(c.Created) ?? new Date(0).toISOString(),
    hostIp: published?.hostIp ?? null,
    hostPort: published?.hostPort ?? null,
    ports: publishedPorts(c),
    health: health === 'starting' || health === 'healthy' || health === 'unhealthy' ? health : null,
    error: c.State.Error ? c.State.Error : null,
  };
}

type Bindings = Array<{ HostIp?: string; HostPort?: string }> | null | undefined;

/** The first binding with a real host port. */
function hostBinding(bindings: Bindings): { hostIp: string; hostPort: number } | undefined {
  for (const b of bindings ?? []) {
    const port = Number(b.HostPort);
    if (b.HostPort && Number.isInteger(port) && port > 0) return { hostIp: b.HostIp ?? '', hostPort: port };
  }
  return undefined;
}

/** Every published TCP container port ("80") → host port, from NetworkSettings.Ports (empty unless running). */
function publishedPorts(c: DockerInspect): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, bindings] of Object.entries(c.NetworkSettings?.Ports ?? {})) {
    const m = /^(\d+)\/tcp$/.exec(key);
    const b = hostBinding(bindings);
    if (m?.[1] !== undefined && b) out[m[1]] = b.hostPort;
  }
  return out;
}

/**
 * The published address of ContainerSpec.port: the port recorded in the orca.port label (none
 * when it is ''). Containers created before that label: the first PortBindings key, falling back
 * to any published port. Reads NetworkSettings.Ports only, never container IPs.
 */
function primaryPort(c: DockerInspect): { hostIp: string; hostPort: number } | undefined {
  const ports = c.NetworkSettings?.Ports ?? {};
  const recorded = c.Config.Labels?.[LABEL.port];
  if (recorded !== undefined) return recorded === '' ? undefined : hostBinding(ports[`${recorded}/tcp`]);
  const wanted = Object.keys(c.HostConfig?.PortBindings ?? {});
  for (const key of [...wanted, ...Object.keys(ports)]) {
    const b = hostBinding(ports[key]);
    if (b) return b;
  }
  return undefined;
}

/** Docker timestamps (RFC 3339 with nanoseconds) as ISO-8601 with ms; the zero time as null. */
export function dockerTime(s: string | undefined): string | null {
  if (!s || s.startsWith('0001-01-01')) return null;
  const ms = Date.parse(s);
  return Number.isNaN(ms) ? null : new Date(ms).toISOString();
}

/** RuntimeEvent for a container event of a kind Orca cares about; undefined for the rest. */
export function runtimeEventFromDocker(e: DockerEvent): RuntimeEvent | undefined {
  if (e.Type !== undefined && e.Type !== 'container') return undefined;
  const action = e.Action ?? e.status ?? '';
  const [verb = '', arg] = action.split(':').map((s) => s.trim());
  if (!(EVENT_KINDS as readonly string[]).includes(verb)) return undefined;
  const kind = verb as RuntimeEventKind;
  const attrs = e.Actor?.Attributes ?? {};
  const containerId = e.Actor?.ID ?? e.id;
  if (!containerId) return undefined;
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(attrs)) {
    // kill events add the signal as an attribute; it is not a label.
    if (!NON_LABEL_ATTRIBUTES.includes(k) && !(kind === 'kill' && k === 'signal')) labels[k] = v;
  }
  const timeMs = e.timeNano !== undefined ? Math.floor(e.timeNano / 1e6) : (e.time ?? 0) * 1000;
  const ev: RuntimeEvent = { kind, containerId, labels, timeMs };
  if (kind === 'die' && attrs.exitCode !== undefined && Number.isInteger(Number(attrs.exitCode))) {
    ev.exitCode = Number(attrs.exitCode);
  }
  if (kind === 'health_status') {
    if (arg !== 'healthy' && arg !== 'unhealthy' && arg !== 'starting') return undefined;
    ev.health = arg;
  }
  return ev;
}

const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EACCES', 'ESOCKETTIMEDOUT']);

/** The HTTP status of a docker-modem error, if it has one. */
export function httpStatus(e: unknown): number | undefined {
  const s = (e as { statusCode?: unknown } | null)?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

/** Docker's own message for an API error ({"message": ...}), else the error's message. */
export function dockerMessage(e: unknown): string {
  const json = (e as { json?: unknown } | null)?.json;
  if (json && typeof json === 'object' && typeof (json as { message?: unknown }).message === 'string') {
    return (json as { message: string }).message;
  }
  return errorMessage(e).trim();
}

/**
 * OrcaError for a failed Docker call. Socket errors: ORCA_RUNTIME_UNAVAILABLE (transient).
 * 404: ORCA_RUNTIME_NOT_FOUND; 409: ORCA_RUNTIME_CONFLICT; 5xx: ORCA_RUNTIME_FAILED (transient,
 * the engine may recover); other statuses: ORCA_RUNTIME_FAILED (terminal).
 */
export function toOrcaError(e: unknown, what: string): OrcaError {
  if (e instanceof OrcaError) return e;
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && UNAVAILABLE_CODES.has(code)) {
    return new OrcaError('ORCA_RUNTIME_UNAVAILABLE', `${what}: Docker is unreachable (${code}): ${errorMessage(e)}`, {
      transient: true,
      cause: e,
    });
  }
  const status = httpStatus(e);
  let orcaCode: ErrorCode = 'ORCA_RUNTIME_FAILED';
  if (status === 404) orcaCode = 'ORCA_RUNTIME_NOT_FOUND';
  else if (status === 409) orcaCode = 'ORCA_RUNTIME_CONFLICT';
  const transient = status === undefined || status >= 500;
  return new OrcaError(orcaCode, `${what}: ${dockerMessage(e)}`, { transient, cause: e, details: { status } });
}
