/**
 * Field-level differences between two specs, in the manifest's own terms, for `orca diff`.
 */
import { KNOWN_KEYS } from './schema.js';
import { formatPath } from './errors.js';
import { toManifestTable, type ManifestTable, type ManifestValue } from './render.js';
import type { ServiceSpec } from './types.js';

export { toManifestToml } from './render.js';

/**
 * One changed field. `path` is the dotted TOML path (`readiness.interval_secs`, `env.GREETING`,
 * `env."A.B"`); `from`/`to` are manifest values (memory as "64m"), `undefined` when absent.
 */
export interface FieldChange {
  path: string;
  from: unknown;
  to: unknown;
}

/**
 * Changes from `a` to `b`; `a` undefined means a new service (every field appears), `b`
 * undefined a deleted one. Both specs are compared with every default filled in, so only real
 * differences appear. Arrays (`command`, `exec`) change as a whole; maps (`env`, `labels`)
 * per key. Ordered as fields appear in SPEC §2, map keys alphabetically. Pure.
 */
export function diffSpecs(a: ServiceSpec | undefined, b: ServiceSpec | undefined): FieldChange[] {
  const from = a ? flatten(toManifestTable(a)) : new Map<string, Leaf>();
  const to = b ? flatten(toManifestTable(b)) : new Map<string, Leaf>();
  const keys = new Map<string, readonly string[]>();
  for (const m of [from, to]) for (const [k, leaf] of m) keys.set(k, leaf.segments);
  const changes: { segments: readonly string[]; change: FieldChange }[] = [];
  for (const [k, segments] of keys) {
    const x = from.get(k)?.value;
    const y = to.get(k)?.value;
    if (!sameValue(x, y)) changes.push({ segments, change: { path: k, from: x, to: y } });
  }
  return changes.sort((p, q) => compareSegments(p.segments, q.segments)).map((c) => c.change);
}

interface Leaf {
  segments: readonly string[];
  value: ManifestValue;
}

function flatten(table: ManifestTable, prefix: readonly string[] = [], out = new Map<string, Leaf>()): Map<string, Leaf> {
  for (const [key, value] of Object.entries(table)) {
    const segments = [...prefix, key];
    if (typeof value === 'object' && !Array.isArray(value)) flatten(value, segments, out);
    else out.set(formatPath(segments), { segments, value });
  }
  return out;
}

function sameValue(x: ManifestValue | undefined, y: ManifestValue | undefined): boolean {
  if (Array.isArray(x) && Array.isArray(y)) return x.length === y.length && x.every((v, i) => v === y[i]);
  return x === y;
}

/** Field order of SPEC §2 where the key is a known field; map keys alphabetically after. */
function compareSegments(p: readonly string[], q: readonly string[]): number {
  for (let i = 0; i < Math.min(p.length, q.length); i++) {
    const x = p[i] as string;
    const y = q[i] as string;
    if (x === y) continue;
    const known = KNOWN_KEYS[p.slice(0, i).join('.')] ?? [];
    const rx = known.indexOf(x);
    const ry = known.indexOf(y);
    if (rx !== -1 && ry !== -1) return rx - ry;
    if (rx !== -1 || ry !== -1) return rx === -1 ? 1 : -1;
    return x < y ? -1 : 1;
  }
  return p.length - q.length;
}
