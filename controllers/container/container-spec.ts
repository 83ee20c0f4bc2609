import type { ContainerSpec, MountSpec } from '../../runtime/types.js';
import { clusterNetwork, instanceLabels, LABEL, slotVolume } from '../../runtime/labels.js';
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
 * The Docker volumes of a slot's named volumes (SPEC §3.8), in the manifest's order of names,
 * with their container paths: the same for every instance of the slot. Pure.
 */
export function slotVolumes(a: SlotAssignment, id: NodeIdentity): Array<{ name: string; labels: Record<string, string>; path: string }> {
  return Object.entries(a.spec.volumes ?? {})
    .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
    .map(([volume, path]) => ({ ...slotVolume({ cluster: id.cluster, service: a.service, volume, slot: a.slot, node: id.node }), path }));
}

/** The slot's named volumes, then its host mounts (host paths as the manifest wrote them: the agent resolves them before a create). Pure. */
function mountsOf(a: SlotAssignment, id: NodeIdentity): MountSpec[] {
  return [
    ...slotVolumes(a, id).map((v) => ({ type: 'volume' as const, source: v.name, target: v.path, readOnly: false })),
    ...(a.spec.mounts ?? []).map((m) => ({ type: 'bind' as const, source: m.host, target: m.path, readOnly: m.readOnly })),
  ];
}

/** The container path an instance's secret files are mounted at (SPEC §3.9). */
export const SECRETS_PATH = '/run/secrets';

/**
 * The variables of `secret_env` with their secrets' values (SPEC §3.9: an explicit opt-in, they
 * show in `docker inspect`), as UTF-8 text. Pure; a secret missing from `values` is left out
 * (the caller has made sure every one is there).
 */
export function secretEnvOf(a: SlotAssignment, values: ReadonlyMap<string, Buffer>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [variable, name] of Object.entries(a.spec.secretEnv ?? {})) {
    const v = values.get(name);
    if (v) out[variable] = v.toString('utf8');
  }
  return out;
}

/** The read-only bind of an instance's secret directory (on the node's tmpfs) at /run/secrets. Pure. */
export function secretsMount(dir: string): MountSpec {
  return { type: 'bind', source: dir, target: SECRETS_PATH, readOnly: true };
}

/**
 * The container for one instance of a slot: on the cluster network with the DNS aliases
 * `<service>` and `<instance-id>`, and `orca.internal` in its hosts file; the slot's named
 * volumes and the service's host mounts mounted; the variables of `secret_env` set from
 * `secretEnv` (see secretEnvOf; plain `secrets` never enter the spec, only secretsMount does).
 * Pure.
 */
export function toContainerSpec(a: SlotAssignment, instance: string, id: NodeIdentity, secretEnv: Record<string, string> = {}): ContainerSpec {
  const s = a.spec;
  return {
    name: instance,
    image: s.image,
    command: s.command,
    entrypoint: s.entrypoint,
    env: { ...s.env, ...secretEnv },
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
    ...(() => {
      const mounts = mountsOf(a, id);
      return mounts.length > 0 ? { mounts } : {};
    })(),
  };
}
