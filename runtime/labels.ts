/** The labels every container Orca creates carries (DESIGN principle 4). */
export const LABEL = {
  cluster: 'orca.cluster',
  service: 'orca.service',
  instance: 'orca.instance',
  slot: 'orca.slot',
  revision: 'orca.revision',
  /** The instance hash (controllers/container/instance-hash.ts): what the container was made from. */
  instanceHash: 'orca.instance-hash',
  /**
   * The instance hash's old name. Never written; read when `instanceHash` is absent, so that
   * containers made by earlier versions are adopted, not taken for orphans.
   */
  specHash: 'orca.spec-hash',
  node: 'orca.node',
  /** On a named volume: the manifest's volume name (with orca.cluster, orca.service, orca.slot, orca.node). */
  volume: 'orca.volume',
  /** stop_grace_secs at creation, so a deleted service's containers still stop gracefully. */
  stopGrace: 'orca.stop-grace',
  /**
   * Set by the runtime, not by callers: ContainerSpec.port ('' when only extra ports are
   * published), because Docker reports published ports as an unordered map.
   */
  port: 'orca.port',
} as const;

export const RESERVED_LABEL_PREFIX = 'orca.';

/** The node-local bridge network every instance of a cluster is attached to, and its labels. */
export function clusterNetwork(cluster: string): { name: string; labels: Record<string, string> } {
  return { name: `orca-${cluster}`, labels: { [LABEL.cluster]: cluster } };
}

/**
 * The Docker volume of one named volume of one replica slot (SPEC §3.8), and its labels. Every
 * instance of the slot, on whichever revision, mounts this same volume.
 */
export function slotVolume(v: { cluster: string; service: string; volume: string; slot: number; node: string }): { name: string; labels: Record<string, string> } {
  return {
    name: `orca-${v.cluster}-${v.service}-${v.volume}-${v.slot}`,
    labels: { [LABEL.cluster]: v.cluster, [LABEL.service]: v.service, [LABEL.volume]: v.volume, [LABEL.slot]: String(v.slot), [LABEL.node]: v.node },
  };
}

export interface InstanceLabels {
  cluster: string;
  service: string;
  instance: string;
  slot: number;
  revision: number;
  specHash: string;
  node: string;
}

export function instanceLabels(l: InstanceLabels, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...extra,
    [LABEL.cluster]: l.cluster,
    [LABEL.service]: l.service,
    [LABEL.instance]: l.instance,
    [LABEL.slot]: String(l.slot),
    [LABEL.revision]: String(l.revision),
    [LABEL.instanceHash]: l.specHash,
    [LABEL.node]: l.node,
  };
}

/**
 * Reads Orca's labels back; undefined when any is missing or malformed (an orphan). The instance
 * hash is read from `orca.instance-hash`, else from its old name `orca.spec-hash` (adoption).
 */
export function parseInstanceLabels(labels: Record<string, string>): InstanceLabels | undefined {
  const slot = Number(labels[LABEL.slot]);
  const revision = Number(labels[LABEL.revision]);
  const cluster = labels[LABEL.cluster];
  const service = labels[LABEL.service];
  const instance = labels[LABEL.instance];
  const specHash = labels[LABEL.instanceHash] || labels[LABEL.specHash];
  const node = labels[LABEL.node];
  if (!cluster || !service || !instance || !specHash || !node) return undefined;
  if (!Number.isInteger(slot) || slot < 0 || !Number.isInteger(revision) || revision < 1) return undefined;
  return { cluster, service, instance, slot, revision, specHash, node };
}
