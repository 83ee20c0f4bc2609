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
 * differences appear. Arrays (`command`, `exec`, `secrets`) change as a whole; maps (`env`,
 * `labels`, `volumes`) per key; arrays of tables (`mounts`) per item and field (`mounts[0].host`). Ordered as fields appear in SPEC §2, map keys alphabetically. Pure.
 */
export function diffSpecs(a: ServiceSpec | undefined, b: ServiceSpec | undefined): FieldChange[] {
  const from = a ? flatten(toManifestTable(a)) : new Map<string, Leaf>();
  const to = b ? flatten(toManifestTable(b)) : new Map<string, Leaf>();
  const keys = new Map<string, readonly Segment[]>();
  for (const m of [from, to]) for (const [k, leaf] of m) keys.set(k, leaf.segments);
  const changes: { segments: readonly Segment[]; change: FieldChange }[] = [];
  for (const [k, segments] of keys) {
    const x = from.get(k)?.value;
    const y = to.get(k)?.value;
    if (!sameValue(x, y)) changes.push({ segments, change: { path: k, from: x, to: y } });
  }
  return changes.sort((p, q) => compareSegments(p.segments, q.segments)).map((c) => c.change);
}

/** A table key, or an index into an array of tables (`mounts[1]`). */
type Segment = string | number;

interface Leaf {
  segments: readonly Segment[];
  value: ManifestValue;
}

/** Tables and arrays of tables (`mounts`) are walked into, one leaf per field; other arrays are leaves. */
function flatten(table: ManifestTable, prefix: readonly Segment[] = [], out = new Map<string, Leaf>()): Map<string, Leaf> {
  for (const [key, value] of Object.entries(table)) {
    const segments = [...prefix, key];
    if (typeof value === 'object' && !Array.isArray(value)) flatten(value, segments, out);
    else if (Array.isArray(value) && value.some((v) => typeof v === 'object')) value.forEach((v, i) => flatten(v as ManifestTable, [...segments, i], out));
    else out.set(formatPath(segments), { segments, value });
  }
  return out;
}

function sameValue(x: ManifestValue | undefined, y: ManifestValue | undefined): boolean {
  if (Array.isArray(x) && Array.isArray(y)) return x.length === y.length && x.every((v, i) => v === y[i]);
  return x === y;
}

/** Field order of SPEC §2 where the key is a known field; map keys alphabetically after; array items by index. */
function compareSegments(p: readonly Segment[], q: readonly Segment[]): number {
  for (let i = 0; i < Math.min(p.length, q.length); i++) {
    const x = p[i] as Segment;
    const y = q[i] as Segment;
    if (x === y) continue;
    if (typeof x === 'number' && typeof y === 'number') return x - y;
    const known = KNOWN_KEYS[p.slice(0, i).filter((s) => typeof s === 'string').join('.')] ?? [];
    const rx = known.indexOf(String(x));
    const ry = known.indexOf(String(y));
    if (rx !== -1 && ry !== -1) return rx - ry;
    if (rx !== -1 || ry !== -1) return rx === -1 ? 1 : -1;
    return x < y ? -1 : 1;
  }
  return p.length - q.length;
}
