/**
 * Checks a service spec read back from the store against this version's manifest rules and
 * bounds (SPEC §2). A spec stored by an older version (say with `replicas = 100000`), or a
 * damaged record, must never be scheduled or crash the server: the server reports it instead.
 */
import { formatPath } from './errors.js';
import { excerpt } from './limits.js';
import { toManifestTable } from './render.js';
import { serviceSchema } from './schema.js';
import type { ServiceSpec } from './types.js';

/** Problems listed per spec; the rest are counted. */
const MAX_PROBLEMS = 5;

/**
 * Whether `spec` (any value, as read from the store) is a ServiceSpec this version accepts:
 * the same rules as a manifest's `[[service]]`. Problems are phrased like manifest errors
 * without the file (`replicas: must be at most 1000`), quote no long input, and are at most a
 * few. Never throws.
 */
export function checkStoredSpec(spec: unknown): { ok: true; spec: ServiceSpec } | { ok: false; problems: string[] } {
  try {
    if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) return { ok: false, problems: ['is not a service spec'] };
    const table = toManifestTable(spec as ServiceSpec);
    const r = serviceSchema.safeParse(table);
    if (r.success) return { ok: true, spec: spec as ServiceSpec };
    const problems = r.error.issues.map((iss) => {
      const where = iss.code === 'unrecognized_keys' ? formatPath([...iss.path, ...iss.keys]) : formatPath(iss.path);
      const what = iss.code === 'unrecognized_keys' ? 'unknown key' : excerpt(iss.message, 200);
      return where === '' ? what : `${where}: ${what}`;
    });
    const more = problems.length - MAX_PROBLEMS;
    return { ok: false, problems: more > 0 ? [...problems.slice(0, MAX_PROBLEMS), `… and ${more} more`] : problems };
  } catch (e) {
    // A record of the wrong shape (missing tables, wrong types) breaks the renderer.
    const why = e instanceof Error ? e.message : String(e);
    return { ok: false, problems: [`is malformed (${excerpt(why)})`] };
  }
}
