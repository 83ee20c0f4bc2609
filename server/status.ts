import type { InstanceReport } from '../protocol/reports.js';
import type { EventRecord, ServiceRecord } from '../store/types.js';
import { instanceHash } from '../controllers/container/instance-hash.js';
import { oomHint } from '../controllers/container/planner.js';
import type { IsoTime } from '../core/time.js';

export type ServiceState = 'healthy' | 'degraded' | 'updating' | 'rollout-failed' | 'crashloop' | 'stopped';

export interface InstanceStatus {
  id: string | null;
  node: string;
  state: string;
  ready: boolean;
  restarts: number;
  lastExit: { code: number | null; reason: string; at: IsoTime } | null;
  containerId: string | null;
  address: string | null;
  /** When a crash-looping slot is next tried. */
  nextRetryAt: IsoTime | null;
  /** A terminal error that keeps this slot from its desired spec (image not found on node n1). */
  error: string | null;
  /** The last readiness check's answer ("HTTP 404", "nothing listens on port 8081 …"), when probed. */
  probe: string | null;
}

export interface ServiceStatus {
  name: string;
  revision: number;
  state: ServiceState;
  replicas: { desired: number; running: number; ready: number };
  instances: InstanceStatus[];
  /** Why the state is not healthy, when known. */
  reason?: string;
  /** Advice, when an instance's last exit calls for it (an OOM kill: raise resources.memory). */
  hint?: string;
  /** The service's latest reconciliation events, oldest first (`orca status SERVICE` only). */
  events?: EventRecord[];
}

/**
 * Service status from the desired record and the instances observed now. Pure.
 * Counts only instances of the current spec (by instance hash); an instance of an older spec still live
 * means a rollout is in progress. `unplaced` are the slots no node took (from the scheduler): each is
 * listed as an instance `waiting` (its volume's node is down: SPEC §3.8) or `pending`, with the reason.
 */
export function serviceStatus(svc: ServiceRecord, reports: InstanceReport[], unplaced: ReadonlyArray<{ slot: number; reason: string }> = []): ServiceStatus {
  const mine = reports.filter((r) => r.service === svc.name);
  const rolloutFailed = mine.find((r) => r.rolloutFailed)?.rolloutFailed ?? undefined;
  const hash = instanceHash(svc.spec, svc.secretVersions);
  const current = mine.filter((r) => r.specHash === hash);
  // The row counts what is listed under it: every live instance, of whichever revision (after a
  // failed rollout the old instances are the ones running and serving).
  const running = mine.filter((r) => r.state === 'running').length;
  const ready = mine.filter((r) => r.state === 'running' && r.ready).length;
  const currentRunning = current.filter((r) => r.state === 'running').length;
  const currentReady = current.filter((r) => r.state === 'running' && r.ready).length;
  const stale = mine.filter((r) => r.specHash !== hash && r.containerId !== null);
  const desired = svc.spec.replicas;
  let state: ServiceState;
  let reason: string | undefined;
  if (rolloutFailed) {
    state = 'rollout-failed';
    reason = `${rolloutFailed} (run "orca rollback ${svc.name}" to go back to the previous revision, or apply a fix)`;
  } else if (desired === 0 && mine.every((r) => r.containerId === null)) state = 'stopped';
  else if (current.some((r) => r.state === 'crashloop')) {
    state = 'crashloop';
    const r = current.find((x) => x.state === 'crashloop');
    reason = r?.lastExit ? `last exit ${r.lastExit.reason} (code ${r.lastExit.code ?? 'none'})` : undefined;
  } else if (stale.length > 0) state = 'updating';
  else if (currentReady >= desired && currentRunning === desired) state = 'healthy';
  else state = 'degraded';
  const terminal = mine.find((r) => r.error)?.error;
  if (terminal && state !== 'healthy' && state !== 'stopped') reason ??= terminal;
  // Slots no node took: a slot waiting for its volume's down node, or pending (host paths no node allows…).
  const waiting = unplaced.filter((u) => u.slot < desired && !mine.some((r) => r.slot === u.slot && r.containerId !== null));
  if (waiting.length > 0 && (state === 'healthy' || state === 'stopped')) state = 'degraded';
  if (waiting.length > 0 && state === 'degraded') reason ??= waiting[0]?.reason;
  return {
    name: svc.name,
    revision: svc.revision,
    state,
    replicas: { desired, running, ready },
    instances: mine.map((r): InstanceStatus => ({
      id: r.id,
      node: r.node,
      state: r.state,
      ready: r.ready,
      restarts: r.restarts,
      lastExit: exitBefore(r),
      containerId: r.containerId,
      address: r.address,
      nextRetryAt: r.nextRetryAt,
      error: r.error ?? null,
      probe: r.probe ?? null,
    })).concat(
      waiting.map((u): InstanceStatus => {
        const down = /^volume on down node (.+)$/.exec(u.reason);
        return { id: null, node: down?.[1] ?? '-', state: down ? 'waiting' : 'pending', ready: false, restarts: 0, lastExit: null, containerId: null, address: null, nextRetryAt: null, error: u.reason, probe: null };
      }),
    ),
    ...(reason ? { reason } : {}),
    ...(current.some((r) => r.lastExit?.reason === 'OOMKilled') ? { hint: oomHint(svc.spec.resources.memoryBytes) } : {}),
  };
}

/**
 * A live instance shows the last exit of its slot only when that exit came before it started (its
 * predecessor's): a newer failure — a rollout's new instance that never got ready and was
 * removed — is not this instance's past.
 */
function exitBefore(r: InstanceReport): InstanceReport['lastExit'] {
  if (!r.lastExit || !r.containerId || !r.startedAt) return r.lastExit;
  return Date.parse(r.lastExit.at) > Date.parse(r.startedAt) ? null : r.lastExit;
}
