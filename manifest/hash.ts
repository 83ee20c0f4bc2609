/**
 * The spec hash: a stable fingerprint of a normalised ServiceSpec. It covers every field, so
 * any change to a spec changes it, while key order and defaults written explicitly do not
 * (normalisation already made those specs deep-equal). Stored with each revision and used to
 * detect unchanged applies (containers carry the instance hash instead, `orca.instance-hash`).
 */
import { createHash } from 'node:crypto';
import type { ServiceSpec } from './types.js';

/** Bumped if the canonical form ever changes, so old and new hashes never collide. */
const HASH_VERSION = 'orca.spec.v1';

/** 16 hex characters (64 bits) of sha256 over the canonical JSON of the spec. Pure. */
export function specHash(spec: ServiceSpec): string {
  return createHash('sha256').update(`${HASH_VERSION}\n${canonicalJson(spec)}`).digest('hex').slice(0, 16);
}

/**
 * JSON with object keys sorted recursively and `undefined` properties dropped (as in
 * JSON.stringify, `undefined` array items become null). Throws on values JSON cannot hold
 * faithfully (functions, bigint, non-finite numbers): a ServiceSpec never has them.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(canonical(value));
}

function canonical(value: unknown): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`canonicalJson: non-finite number ${value}`);
    return value;
  }
  if (Array.isArray(value)) return value.map((v) => (v === undefined ? null : canonical(v)));
  if (typeof value === 'object') {
    // A null prototype, so a key named "__proto__" (a legal env var name) is kept as data.
    const out: Record<string, unknown> = Object.create(null);
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = canonical(v);
    }
    return out;
  }
  throw new Error(`canonicalJson: cannot encode ${typeof value}`);
}
