import type { ObservedContainer, ObservedNetwork } from '../../runtime/types.js';
import { parseInstanceLabels } from '../../runtime/labels.js';
import type { NetworkAction } from './actions.js';

export interface NetworkPlanInput {
  /** The network this node's instances belong on (see clusterNetwork). */
  desired: { name: string; labels: Record<string, string> };
  /** That network as the engine shows it now; undefined when there is none. */
  observed: ObservedNetwork | undefined;
  /** Containers of the cluster (any node, any state): only this node's running instances are attached. */
  containers: readonly ObservedContainer[];
  node: string;
}

/**
 * Pure. The cluster network is made when it is missing, and every running instance of this node
 * that is not on it is attached with the aliases `<service>` and `<instance-id>`. A network of
 * that name that is not a bridge gets a create (which fails with the engine's explanation, never
 * removing it) and no attachments. Containers not yet started are left alone: the engine attaches
 * them to the network they were created on when they start.
 */
export function planNetwork(input: NetworkPlanInput): NetworkAction[] {
  const { desired, observed } = input;
  const actions: NetworkAction[] = [];
  if (!observed || observed.driver !== 'bridge') {
    actions.push({ kind: 'network.create', key: `network:${desired.name}`, reason: observed ? 'not-a-bridge' : 'missing', network: desired.name, labels: { ...desired.labels } });
    if (observed) return actions;
  }
  const attached = new Set(observed?.containers ?? []);
  for (const c of input.containers) {
    const l = parseInstanceLabels(c.labels);
    if (!l || l.node !== input.node || c.status !== 'running' || attached.has(c.id)) continue;
    actions.push({
      kind: 'network.connect',
      key: `connect:${l.instance}`,
      reason: observed ? 'not-attached' : 'network-missing',
      service: l.service,
      instance: l.instance,
      containerId: c.id,
      network: desired.name,
      aliases: [l.service, l.instance],
    });
  }
  return actions;
}
