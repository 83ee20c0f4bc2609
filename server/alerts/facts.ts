/**
 * The facts alerts are decided from, gathered from what the server already holds in memory: the
 * desired services, each node's state and last report (no round trip to any agent), and the
 * certificates' view. Pure functions of their inputs.
 */
import type { InstanceReport } from '../../protocol/reports.js';
import type { ServiceRecord } from '../../store/types.js';
import type { CertView } from '../certs.js';
import type { NodeState } from '../nodes.js';
import { serviceStatus } from '../status.js';
import type { CertFact, NodeFact, ServiceFact } from './detector.js';

/** What facts need of a node (a NodeLink). */
export interface NodeView {
  readonly name: string;
  state(): NodeState;
  lastHeartbeat(): string;
  lastReports(): InstanceReport[];
}

/**
 * Each live service's state from the nodes' last reports, as `orca status` computes it (a down
 * node's reports are history: left out; an unreachable node's instances are not ready).
 */
export function serviceFacts(services: readonly ServiceRecord[], nodes: readonly NodeView[]): ServiceFact[] {
  const reports = nodes.flatMap((n) => {
    const s = n.state();
    if (s === 'down') return [];
    return s === 'unreachable' ? n.lastReports().map((r) => ({ ...r, ready: false })) : n.lastReports();
  });
  const out: ServiceFact[] = [];
  for (const svc of services) {
    if (svc.deletedAt !== undefined) continue;
    try {
      const st = serviceStatus(svc, reports);
      const about = st.state === 'crashloop' ? st.instances.find((i) => i.state === 'crashloop') : st.instances.find((i) => i.error !== null || i.state !== 'running');
      out.push({
        name: st.name,
        state: st.state,
        revision: st.revision,
        reason: st.reason ?? null,
        instance: about?.id ?? null,
        node: about && about.node !== '-' ? about.node : null,
        restarts: st.instances.reduce((n, i) => n + i.restarts, 0),
        resetAfterMs: Math.round(svc.spec.restart.resetAfterSecs * 1000),
      });
    } catch {
      // A spec this version cannot read: nothing certain to alert about.
    }
  }
  return out;
}

export function nodeFacts(nodes: readonly NodeView[]): NodeFact[] {
  return nodes.map((n) => ({ name: n.name, state: n.state(), lastHeartbeat: n.lastHeartbeat() }));
}

/**
 * Certificates that fail: shown failed by `orca certs`, or valid with a failing renewal (it will
 * expire unless someone acts). The service is the one whose route asks for the host.
 */
export function certFacts(rows: readonly CertView[], services: readonly ServiceRecord[]): CertFact[] {
  const byHost = new Map<string, string>();
  for (const s of services) if (!s.deletedAt && s.spec.route) byHost.set(s.spec.route.host, s.name);
  return rows.map((r) => ({
    host: r.host,
    failed: r.status === 'failed' || (r.status === 'valid' && (r.reason ?? '').startsWith('renewal failed')),
    reason: r.reason,
    service: byHost.get(r.host) ?? null,
  }));
}
