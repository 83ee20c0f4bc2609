/**
 * What deserves an alert (SPEC §6), decided from facts: pure functions, no I/O, no clock.
 *
 * Level-triggered like the reconcilers: `detectAlerts(active, facts)` compares what is true now
 * with the problems already alerted (`active`, kept in the store by the caller) and returns the
 * alerts for problems that began, and the new active set. One alert per state change per
 * (kind, service), (kind, node) or (kind, host): a service that stays crash-looping through 20
 * more crashes alerts nothing more; once it is over and it begins again, it alerts again.
 *
 * OOM kills are events, not states: `OomAlerts` turns each `oom-killed` failure the agents report
 * into an alert, at most one per service per window.
 */
import type { EventRecord } from '../../store/types.js';
import type { ServiceState } from '../status.js';
import type { NodeState } from '../nodes.js';
import type { AlertKind } from './config.js';

/** One alert: the JSON body POSTed to each webhook (SPEC §6). */
export interface Alert {
  /** ISO-8601: when the problem was seen. */
  time: string;
  kind: AlertKind;
  service: string | null;
  instance: string | null;
  node: string | null;
  message: string;
}

export interface ServiceFact {
  name: string;
  state: ServiceState;
  revision: number;
  /** Why the state is not healthy (the status' reason). */
  reason: string | null;
  /** The instance (and its node) the state is about: the crash-looping one, when known. */
  instance: string | null;
  node: string | null;
  /** Restarts of its instances, summed: a change between two looks means it failed meanwhile. */
  restarts: number;
  /** The service's `restart.reset_after_secs`, in ms: healthy this long, a crash loop is over. */
  resetAfterMs: number;
}

export interface NodeFact {
  name: string;
  state: NodeState;
  /** ISO-8601. */
  lastHeartbeat: string;
}

export interface CertFact {
  host: string;
  /** Shown failed, or a renewal of a still valid certificate failed. */
  failed: boolean;
  reason: string | null;
  /** The service whose route asks for the host, when one does. */
  service: string | null;
}

/** What is true now, as far as alerts go. */
export interface AlertFacts {
  services: readonly ServiceFact[];
  nodes: readonly NodeFact[];
  certs: readonly CertFact[];
}

/** A problem that was alerted and has not ended: key `kind/subject`. */
export interface ActiveProblem {
  /** ISO-8601: when it began (was first alerted). */
  since: string;
  /** rollout-failed: the revision whose rollout failed (another failed revision alerts again). */
  revision?: number;
  /**
   * crashloop: since when (ISO-8601) the service has been healthy or stopped without a restart,
   * and the restarts seen at the last look. Hints only: not compared by sameProblems, so not
   * written to the store for themselves.
   */
  okSince?: string;
  restarts?: number;
}
export type ActiveProblems = Record<string, ActiveProblem>;

export interface DetectOptions {
  /** ISO-8601 now. */
  time: string;
  /**
   * The facts may be incomplete (a new leader, or a server just started, before every agent
   * reported again): problems may begin, none ends — so a problem that is only not yet reported
   * again is not alerted twice.
   */
  settling?: boolean;
}

/**
 * Compares what is true now with the problems already alerted. Returns the alerts for problems
 * that began and the active set to keep. Pure.
 *
 * When problems end: crashloop once the service has been healthy (or stopped) without a restart
 * for its `restart.reset_after_secs` — what ends the crash-loop backoff too: between two crashes
 * a crash-looping service runs (healthy or degraded) for a moment, which does not end it;
 * rollout-failed when the service no longer shows it; node-unreachable when the node is ready or
 * draining again (down does not end it); node-down when the node is no longer down;
 * cert-failed when the certificate is no longer failing. A subject that is gone ends its problems.
 */
export function detectAlerts(active: Readonly<ActiveProblems>, facts: AlertFacts, o: DetectOptions): { alerts: Alert[]; active: ActiveProblems } {
  const next: ActiveProblems = {};
  const alerts: Alert[] = [];
  const raise = (key: string, problem: ActiveProblem, alert: Omit<Alert, 'time'>): void => {
    next[key] = problem;
    alerts.push({ time: o.time, ...alert });
  };
  const keep = (key: string): void => {
    const p = active[key];
    if (p) next[key] = p;
  };

  const nowMs = Date.parse(o.time);
  for (const s of facts.services) {
    const crash = `crashloop/${s.name}`;
    const was = active[crash];
    if (s.state === 'crashloop') {
      if (was) next[crash] = { since: was.since, restarts: s.restarts };
      else {
        raise(crash, { since: o.time, restarts: s.restarts }, {
          kind: 'crashloop',
          service: s.name,
          instance: s.instance,
          node: s.node,
          message: `service ${s.name} is crash-looping${s.reason ? `: ${s.reason}` : ''}${s.instance ? ` (instance ${s.instance}${s.node ? ` on node ${s.node}` : ''})` : ''}`,
        });
      }
    } else if (was) {
      const quiet = (s.state === 'healthy' || s.state === 'stopped') && was.restarts === s.restarts;
      const okSince = quiet ? (was.okSince ?? o.time) : undefined;
      // Over once quiet for reset_after_secs; until then kept (not yet written for the hint's sake).
      if (okSince === undefined || nowMs - Date.parse(okSince) < s.resetAfterMs) next[crash] = { since: was.since, restarts: s.restarts, ...(okSince ? { okSince } : {}) };
    }

    const rollout = `rollout-failed/${s.name}`;
    if (s.state === 'rollout-failed') {
      const was = active[rollout];
      if (was && was.revision === s.revision) keep(rollout);
      else {
        raise(rollout, { since: o.time, revision: s.revision }, {
          kind: 'rollout-failed',
          service: s.name,
          instance: s.instance,
          node: s.node,
          message: `rollout of service ${s.name} revision ${s.revision} failed${s.reason ? `: ${s.reason}` : ''}`,
        });
      }
    }
  }

  for (const n of facts.nodes) {
    const unreachable = `node-unreachable/${n.name}`;
    if (n.state === 'unreachable' || n.state === 'down') {
      if (active[unreachable]) keep(unreachable);
      else {
        raise(unreachable, { since: o.time }, {
          kind: 'node-unreachable',
          service: null,
          instance: null,
          node: n.name,
          message: `node ${n.name} is unreachable: no heartbeat since ${n.lastHeartbeat}; its instances are taken out of the routes`,
        });
      }
    }
    const down = `node-down/${n.name}`;
    if (n.state === 'down') {
      if (active[down]) keep(down);
      else {
        raise(down, { since: o.time }, {
          kind: 'node-down',
          service: null,
          instance: null,
          node: n.name,
          message: `node ${n.name} is down: no heartbeat since ${n.lastHeartbeat}; its instances are rescheduled on ready nodes`,
        });
      }
    }
  }

  for (const c of facts.certs) {
    const key = `cert-failed/${c.host}`;
    if (!c.failed) continue;
    if (active[key]) keep(key);
    else {
      raise(key, { since: o.time }, {
        kind: 'cert-failed',
        service: c.service,
        instance: null,
        node: null,
        message: `certificate for ${c.host} failed${c.reason ? `: ${c.reason}` : ''}`,
      });
    }
  }

  // Incomplete facts end nothing.
  if (o.settling) for (const key of Object.keys(active)) if (!next[key]) keep(key);
  return { alerts, active: next };
}

/** Whether two active sets hold the same problems (the caller writes the store only on a change). */
export function sameProblems(a: Readonly<ActiveProblems>, b: Readonly<ActiveProblems>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => b[k] !== undefined && b[k]?.since === a[k]?.since && b[k]?.revision === a[k]?.revision);
}

/**
 * OOM kills from the reconciliation log: the agent's `slot.update` for a failed instance whose
 * reason begins `oom-killed`. At most one alert per service per `windowMs`; kills in between are
 * counted and named in the service's next alert. Memory is bounded (entries older than the window
 * are forgotten).
 */
export class OomAlerts {
  private readonly last = new Map<string, { atMs: number; suppressed: number }>();

  constructor(private readonly windowMs: number) {}

  /** Sees one record; returns the alert it calls for, or null. */
  see(e: EventRecord, nowMs: number): Alert | null {
    if (e.action !== 'slot.update' || !e.reason.startsWith('oom-killed') || !e.service) return null;
    this.forgetOld(nowMs);
    const prev = this.last.get(e.service);
    if (prev && nowMs - prev.atMs < this.windowMs) {
      prev.suppressed++;
      return null;
    }
    const more = prev?.suppressed ?? 0;
    this.last.set(e.service, { atMs: nowMs, suppressed: 0 });
    const hint = e.message ? `; ${e.message}` : '';
    return {
      time: new Date(nowMs).toISOString(),
      kind: 'oom',
      service: e.service,
      instance: e.instance,
      node: e.node,
      message: `instance ${e.instance ?? '?'} of service ${e.service}${e.node ? ` on node ${e.node}` : ''} was killed by the kernel's OOM killer${hint}${more > 0 ? ` (${more} more OOM kill${more === 1 ? '' : 's'} of this service since the last alert)` : ''}`,
    };
  }

  private forgetOld(nowMs: number): void {
    if (this.last.size < 256) return;
    // A count of held-back kills is kept for a while (it goes into the service's next alert).
    for (const [k, v] of this.last) {
      const age = nowMs - v.atMs;
      if (age >= this.windowMs && (v.suppressed === 0 || age >= 10 * this.windowMs)) this.last.delete(k);
    }
  }
}
