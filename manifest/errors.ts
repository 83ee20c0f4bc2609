/**
 * Manifest errors: where a problem is (file, line/col for syntax, service and field path for
 * schema problems) and what it is, formatted the way SPEC §2 shows them.
 */
import type { z } from 'zod';
import { excerpt } from './limits.js';
import { KNOWN_KEYS, NAME_RE } from './schema.js';

export interface ManifestError {
  /** The file (or directory, or path given on the command line) as the user named it. */
  file: string;
  /** 1-based line and column, for TOML syntax errors. */
  line?: number;
  col?: number;
  /** The service's name, or `#N` (1-based index in its file) when it has no valid name. */
  service?: string;
  /** Dotted field path as written in TOML, e.g. `readiness.interval_secs`, `env.GREETING`. */
  path?: string;
  message: string;
}

/**
 * `file:line:col: message` for syntax errors, otherwise
 * `file: service "web": readiness.interval_secs: message` with absent parts left out.
 */
export function formatManifestError(e: ManifestError): string {
  if (e.line !== undefined) return `${e.file}:${e.line}:${e.col ?? 1}: ${e.message}`;
  const parts = [e.file];
  if (e.service !== undefined) parts.push(serviceLabel(e.service));
  if (e.path !== undefined && e.path !== '') parts.push(e.path);
  parts.push(e.message);
  return parts.join(': ');
}

/** `service "web"`, or `service #2` for an unnamed one. */
export function serviceLabel(service: string): string {
  return service.startsWith('#') ? `service ${service}` : `service "${service}"`;
}

/** Longest key quoted in a path; longer ones are cut with "…". */
const KEY_EXCERPT_CHARS = 40;

/**
 * Renders path segments the way TOML writes keys: `env."A.B"`, `command[1]`. A key longer than
 * 40 characters is shown as its beginning and "…", so an error never echoes a huge input.
 */
export function formatPath(segments: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of segments) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else {
      const s = excerpt(String(seg), KEY_EXCERPT_CHARS);
      out += (out === '' ? '' : '.') + (/^[A-Za-z0-9_-]+$/.test(s) ? s : JSON.stringify(s));
    }
  }
  return out;
}

/**
 * Converts zod issues for a parsed document into ManifestErrors. `doc` is the raw parsed TOML,
 * used to name services by their `name` when it is valid. At most `limit` errors are formatted;
 * the rest are counted in one last error (`… and N more errors`), so that a file with
 * thousands of mistakes costs no more than one with `limit`.
 */
export function issuesToErrors(issues: readonly z.core.$ZodIssue[], file: string, doc: unknown, limit = Infinity): ManifestError[] {
  const services = isObj(doc) && Array.isArray(doc.service) ? (doc.service as unknown[]) : [];
  const out: ManifestError[] = [];
  let more = 0;
  for (const iss of issues) {
    if (out.length >= limit) {
      more += iss.code === 'unrecognized_keys' ? iss.keys.length : 1;
      continue;
    }
    let service: string | undefined;
    let rest: PropertyKey[] = iss.path;
    if (iss.path[0] === 'service' && typeof iss.path[1] === 'number') {
      service = serviceId(services[iss.path[1]], iss.path[1]);
      rest = iss.path.slice(2);
    }
    const base = service === undefined ? { file } : { file, service };
    if (iss.code === 'unrecognized_keys') {
      const known = KNOWN_KEYS[service === undefined ? '<file>' : rest.filter((s) => typeof s === 'string').join('.')] ?? [];
      for (const key of iss.keys) {
        if (out.length >= limit) {
          more += 1;
          continue;
        }
        const hint = suggest(key, known);
        out.push({ ...base, path: formatPath([...rest, key]), message: `unknown key${hint ? ` (did you mean "${hint}"?)` : ''}` });
      }
      continue;
    }
    // Messages are ours and quote no input; the excerpt is a last guard for any that would.
    const message = excerpt(iss.code === 'invalid_key' ? (iss.issues[0]?.message ?? iss.message) : iss.message, 200);
    out.push(rest.length > 0 ? { ...base, path: formatPath(rest), message } : { ...base, message });
  }
  if (more > 0) out.push({ file, message: `… and ${more} more error${more === 1 ? '' : 's'} (fix these first)` });
  return out;
}

/** A service's name if valid, else its 1-based position as `#N`. */
export function serviceId(raw: unknown, index: number): string {
  const name = isObj(raw) ? raw.name : undefined;
  return typeof name === 'string' && NAME_RE.test(name) ? name : `#${index + 1}`;
}

/** Keys longer than this are no typo of a known key; not compared (the distance is quadratic). */
const MAX_SUGGEST_CHARS = 40;

/** The closest known key, if the unknown one looks like a typo of it (or lacks a `_secs`). */
function suggest(key: string, known: readonly string[]): string | undefined {
  if (key.length > MAX_SUGGEST_CHARS) return undefined;
  const k = key.toLowerCase().replace(/-/g, '_');
  // Short keys get one edit only, or "zone" would suggest "node".
  const maxEdits = k.length <= 4 ? 1 : 2;
  let best: { key: string; d: number } | undefined;
  for (const cand of known) {
    if (cand === k || cand === `${k}_secs`) return cand;
    const d = Math.min(distance(k, cand), distance(k, cand.replace(/_secs$/, '')));
    if (d <= maxEdits && (best === undefined || d < best.d)) best = { key: cand, d };
  }
  return best?.key;
}

/** Edit distance counting a swap of two neighbours as one edit (optimal string alignment). */
function distance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    const row: number[] = [i];
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        row.push(j);
        continue;
      }
      const up = rows[i - 1] ?? [];
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min((up[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (up[j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, (rows[i - 2]?.[j - 2] ?? 0) + 1);
      row.push(d);
    }
    rows.push(row);
  }
  return rows[a.length]?.[b.length] ?? 0;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
