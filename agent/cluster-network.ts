import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { ObservedContainer, Runtime } from '../runtime/types.js';
import { clusterNetwork } from '../runtime/labels.js';
import type { EventRecord } from '../store/types.js';
import type { NodeIdentity } from '../controllers/container/container-spec.js';
import { planNetwork } from '../controllers/network/planner.js';
import { applyNetworkActions } from '../controllers/network/executor.js';

export interface ClusterNetworkDeps {
  runtime: Runtime;
  clock: Clock;
  log: Logger;
  identity: NodeIdentity;
  record: (e: EventRecord) => void;
}

/**
 * One level-triggered pass of the network reconciler: makes the node's cluster network again if
 * it is missing and attaches every running instance of this node that is not on it (someone
 * removed the network, or disconnected a container). `containers` are the cluster's containers
 * as just listed. Resolves with the services that had an instance attached (their published host
 * ports are new: the caller reconciles them and pushes endpoints). Never throws: a failure is
 * logged and recorded, and the next pass tries again. The network is never removed here.
 */
export async function healClusterNetwork(deps: ClusterNetworkDeps, containers: readonly ObservedContainer[]): Promise<Set<string>> {
  const desired = clusterNetwork(deps.identity.cluster);
  const log = deps.log.child({ reconciler: 'network' });
  try {
    const observed = await deps.runtime.inspectNetwork(desired.name);
    const actions = planNetwork({ desired, observed, containers, node: deps.identity.node });
    if (actions.length === 0) return new Set();
    return (await applyNetworkActions({ runtime: deps.runtime, clock: deps.clock, log, node: deps.identity.node, record: deps.record }, actions)).attached;
  } catch (err) {
    log.warn({ err, network: desired.name }, 'network pass failed; the next pass tries again');
    return new Set();
  }
}
