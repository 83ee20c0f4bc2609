import type { ServiceSpec } from '../manifest/types.js';
import type { ObservedContainer } from '../runtime/types.js';
import { instanceLabels } from '../runtime/labels.js';
import type { SlotAssignment } from '../controllers/container/types.js';
import { instanceHash } from '../controllers/container/instance-hash.js';

/** A normalised spec with every default, overridable. */
export function aSpec(over: Partial<ServiceSpec> = {}): ServiceSpec {
  return {
    name: 'web',
    image: 'orca-test/busybox:1',
    env: {},
    replicas: 1,
    stopGraceSecs: 1,
    init: true,
    labels: {},
    resources: {},
    restart: { policy: 'always', backoffInitialSecs: 1, backoffMaxSecs: 60, resetAfterSecs: 60 },
    deploy: { strategy: 'start-first', readyTimeoutSecs: 60 },
    ...over,
  };
}

export function slotsOf(spec: ServiceSpec, revision = 1): SlotAssignment[] {
  const hash = instanceHash(spec);
  return Array.from({ length: spec.replicas }, (_, slot) => ({ service: spec.name, slot, revision, specHash: hash, spec }));
}

export interface ContainerOpts {
  service?: string;
  slot?: number;
  instance?: string;
  revision?: number;
  specHash?: string;
  status?: ObservedContainer['status'];
  exitCode?: number | null;
  oomKilled?: boolean;
  startedAt?: string | null;
  finishedAt?: string | null;
  cluster?: string;
  node?: string;
}

let n = 0;
/** An observed container with Orca's labels. */
export function aContainer(o: ContainerOpts = {}): ObservedContainer {
  const service = o.service ?? 'web';
  const slot = o.slot ?? 0;
  const instance = o.instance ?? `${service}-${o.revision ?? 1}-${slot}-c${++n}`;
  const status = o.status ?? 'running';
  return {
    id: `cid-${instance}`,
    name: instance,
    image: 'orca-test/busybox:1',
    labels: instanceLabels({
      cluster: o.cluster ?? 'test',
      service,
      instance,
      slot,
      revision: o.revision ?? 1,
      specHash: o.specHash ?? 'hash',
      node: o.node ?? 'n1',
    }),
    status,
    exitCode: o.exitCode ?? (status === 'exited' ? 1 : null),
    oomKilled: o.oomKilled ?? false,
    startedAt: o.startedAt === undefined ? '2026-01-01T00:00:00.000Z' : o.startedAt,
    finishedAt: o.finishedAt === undefined ? (status === 'exited' ? '2026-01-01T00:00:10.000Z' : null) : o.finishedAt,
    createdAt: '2026-01-01T00:00:00.000Z',
    hostIp: status === 'running' ? '127.0.0.1' : null,
    hostPort: status === 'running' ? 49153 : null,
    ports: status === 'running' ? { '80': 49153 } : {},
    health: null,
    error: null,
  };
}
