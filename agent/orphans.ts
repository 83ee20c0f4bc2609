import type { ObservedContainer } from '../runtime/types.js';
import { LABEL, parseInstanceLabels } from '../runtime/labels.js';
import type { Action } from '../controllers/actions.js';

/** What a full resync looks at, from every container labelled with this node's cluster. */
export interface ResyncPlan {
  /** Services with an instance on this node (reconciled besides the assigned ones). */
  services: Set<string>;
  /** Forced removals of this node's orphans: the cluster's label without valid instance labels. */
  orphans: Array<Extract<Action, { kind: 'container.remove' }>>;
}

/**
 * Pure. A container of the cluster whose instance labels are missing or malformed is an orphan
 * of this node unless its node label names another node (a shared Docker host); containers
 * without the cluster's label are never passed here and never touched.
 */
export function planResync(containers: readonly ObservedContainer[], node: string): ResyncPlan {
  const services = new Set<string>();
  const orphans: ResyncPlan['orphans'] = [];
  for (const c of containers) {
    const l = parseInstanceLabels(c.labels);
    if (l) {
      if (l.node === node) services.add(l.service);
      continue;
    }
    const nodeLabel = c.labels[LABEL.node];
    if (nodeLabel !== undefined && nodeLabel !== node) continue;
    orphans.push({
      kind: 'container.remove',
      key: `remove:${c.id}`,
      reason: 'orphan-without-instance-labels',
      service: c.labels[LABEL.service] ?? null,
      instance: null,
      containerId: c.id,
      force: true,
    });
  }
  return { services, orphans };
}
