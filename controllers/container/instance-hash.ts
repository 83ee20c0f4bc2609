import { createHash } from 'node:crypto';
import { canonicalJson } from '../../manifest/hash.js';
import type { ServiceSpec } from '../../manifest/types.js';

/**
 * The fingerprint of what one instance is: the spec minus the fields that only concern the
 * service as a whole (replica count, routing, placement, rollout and restart settings), plus the
 * versions of the secrets it uses (a new value is a new instance; the value itself never enters).
 * Containers carry it as `orca.instance-hash`; a running instance is replaced only when it
 * changes, so scaling or re-routing a service never restarts its instances. Without secret
 * versions (or with none) the hash is what it was before secrets existed. Pure.
 */
export function instanceHash(spec: ServiceSpec, secretVersions?: Readonly<Record<string, number>>): string {
  const { replicas: _r, route: _ro, placement: _p, deploy: _d, restart: _re, ...instance } = spec;
  const what = secretVersions && Object.keys(secretVersions).length > 0 ? { ...instance, [SECRET_VERSIONS]: secretVersions } : instance;
  return createHash('sha256').update(`orca.instance.v1\n${canonicalJson(what)}`).digest('hex').slice(0, 16);
}

/** A key no ServiceSpec field has (manifest fields are camelCase words), so it cannot collide with one. */
const SECRET_VERSIONS = '#secretVersions';
