import type { ContainerSpec } from '../../runtime/types.js';
import { clusterNetwork, instanceLabels, LABEL } from '../../runtime/labels.js';
import type { SlotAssignment } from './types.js';
import { probePorts } from '../../manifest/probes.js';

export interface NodeIdentity {
  cluster: string;
  node: string;
  /** Address published ports bind to. */
  advertise: string;
}

/** The host name every container resolves to its node (its /etc/hosts), where the node's proxy listens. */
export const NODE_HOST_NAME = 'orca.internal';

/**
 * The container for one instance of a slot: on the cluster network with the DNS aliases
 * `<service>` and `<instance-id>`, and `orca.internal` in its hosts file. Pure.
 */
export function toContainerSpec(a: SlotAssignment, instance: string, id: NodeIdentity): ContainerSpec {
  const s = a.spec;
  return {
    name: instance,
    image: s.image,
    command: s.command,
    entrypoint: s.entrypoint,
    env: { ...s.env },
    labels: {
      ...instanceLabels(
        { cluster: id.cluster, service: a.service, instance, slot: a.slot, revision: a.revision, specHash: a.specHash, node: id.node },
        s.labels,
      ),
      [LABEL.stopGrace]: String(s.stopGraceSecs),
    },
    port: s.port,
    extraPorts: probePorts(s),
    hostIp: id.advertise,
    memoryBytes: s.resources.memoryBytes,
    cpus: s.resources.cpus,
    init: s.init,
    stopGraceSecs: s.stopGraceSecs,
    network: { name: clusterNetwork(id.cluster).name, aliases: [a.service, instance] },
    gatewayHosts: [NODE_HOST_NAME],
  };
}
