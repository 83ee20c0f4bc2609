import { createHash } from 'node:crypto';
import { canonicalJson } from '../../manifest/hash.js';
import type { ServiceSpec } from '../../manifest/types.js';

/**
 * The fingerprint of what one instance is: the spec minus the fields that only concern the
 * service as a whole (replica count, routing, placement, rollout and restart settings).
 * Containers carry it as `orca.instance-hash`; a running instance is replaced only when it
 * changes, so scaling or re-routing a service never restarts its instances. Pure.
 */
export function instanceHash(spec: ServiceSpec): string {
  const { replicas: _r, route: _ro, placement: _p, deploy: _d, restart: _re, ...instance } = spec;
  return createHash('sha256').update(`orca.instance.v1\n${canonicalJson(instance)}`).digest('hex').slice(0, 16);
}
