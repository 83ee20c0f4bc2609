import { DEFAULTS } from '../core/defaults.js';
import type { ProbeSpec, ServiceSpec } from './types.js';

/**
 * The readiness probe an instance gets (SPEC §2): the manifest's, else — for a service with a
 * port — an implicit TCP check of that port, else none (ready once running).
 */
export function effectiveReadiness(spec: ServiceSpec): ProbeSpec | undefined {
  if (spec.readiness) return spec.readiness;
  if (spec.port === undefined) return undefined;
  return { check: { kind: 'tcp', port: spec.port }, ...DEFAULTS.implicitTcpReadiness };
}

/** Container ports probes need published besides the service port. */
export function probePorts(spec: ServiceSpec): number[] {
  const out = new Set<number>();
  for (const p of [spec.readiness, spec.liveness]) {
    if (p && p.check.kind !== 'exec' && p.check.port !== undefined && p.check.port !== spec.port) out.add(p.check.port);
  }
  return [...out];
}

