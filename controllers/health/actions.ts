import type { ProbeSpec } from '../../manifest/types.js';
import type { ProbeKind } from './probe-state.js';

/** One running container of an instance to probe (what the probe runner needs to reach it). */
export interface ProbeTarget {
  service: string;
  instance: string;
  containerId: string;
  /** The node's advertise address, where its ports are published. */
  host: string;
  /** Published container port → host port. */
  ports: Record<string, number>;
  /** ms since epoch the container started; initial delays count from here. */
  startedAtMs: number;
  /** The service port, the default probe port. */
  servicePort?: number;
}

/**
 * The health reconciler's actions (data, like the container reconciler's). `instance.ready`,
 * `instance.unready` and `instance.liveness-failed` are written to the reconciliation log under
 * these names; `probe.start` and `probe.stop` are the probe runner's bookkeeping (logged, not
 * written to the reconciliation log, where they would only repeat every container start).
 */
export type HealthAction =
  | {
      kind: 'probe.start';
      key: string;
      reason: 'instance-running';
      service: string;
      instance: string;
      probe: ProbeKind;
      spec: ProbeSpec;
      target: ProbeTarget;
      /** ms from now to the first check (the container's start plus initial_delay_secs). */
      firstInMs: number;
    }
  | { kind: 'probe.stop'; key: string; reason: 'instance-not-running' | 'ports-changed'; service: string; instance: string; containerId: string }
  | { kind: 'instance.ready'; key: string; reason: 'readiness-passed'; service: string; instance: string; containerId: string; message: string }
  | { kind: 'instance.unready'; key: string; reason: 'readiness-failed'; service: string; instance: string; containerId: string; message: string }
  | { kind: 'instance.liveness-failed'; key: string; reason: 'liveness'; service: string; instance: string; containerId: string; message: string };

export type HealthActionKind = HealthAction['kind'];

/** Health actions that change an instance (the ones the reconciliation log records). */
export function isVerdict(a: HealthAction): a is Extract<HealthAction, { kind: `instance.${string}` }> {
  return a.kind === 'instance.ready' || a.kind === 'instance.unready' || a.kind === 'instance.liveness-failed';
}
