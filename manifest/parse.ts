/**
 * Manifest text and files → validated, normalised services (SPEC §2). These functions return
 * Results and never throw for a user's mistake: every error found is reported, each with its
 * file and place, and no service is returned when there is any error.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import TOML from '@iarna/toml';
import { errorMessage, fail, ok, type Result } from '../core/errors.js';
import { formatManifestError, issuesToErrors, type ManifestError } from './errors.js';
import { normaliseService } from './normalise.js';
import { manifestSchema } from './schema.js';
import type { ParsedService } from './types.js';

export type { ManifestError };
export { formatManifestError };

/** Parses one file's text. `file` is only used in errors and in the returned services. */
export function parseManifestText(text: string, file: string): Result<ParsedService[], ManifestError[]> {
  let doc: unknown;
  try {
    doc = TOML.parse(text.replace(/^\uFEFF/, ''));
  } catch (e) {
    return fail([syntaxError(e, file)]);
  }
  doc = hideDates(doc);
  const errors: ManifestError[] = [];
  const parsed = manifestSchema.safeParse(doc);
  if (!parsed.success) errors.push(...issuesToErrors(parsed.error.issues, file, doc));
  const rawServices = (doc as Record<string, unknown>).service;
  if (rawServices === undefined || (Array.isArray(rawServices) && rawServices.length === 0)) {
    errors.push({ file, message: 'no [[service]] found (nothing to apply)' });
  }
  if (errors.length > 0 || !parsed.success) return fail(errors);
  const services = (parsed.data.service ?? []).map((raw) => ({ spec: normaliseService(raw), file }));
  const dupes = duplicateErrors(services);
  return dupes.length > 0 ? fail(dupes) : ok(services);
}

/**
 * Loads files and directories (every `*.toml` directly inside, sorted by name; dotfiles are
 * skipped) in the order given. The same file named twice is read once. Errors for missing
 * paths, empty directories, unreadable files, every file's own errors and service names defined
 * more than once are all collected before returning.
 */
export async function loadManifests(paths: readonly string[]): Promise<Result<ParsedService[], ManifestError[]>> {
  if (paths.length === 0) return fail([{ file: '-', message: 'no manifest files given (nothing to apply)' }]);
  const errors: ManifestError[] = [];
  const files: string[] = [];
  const seen = new Set<string>();
  for (const p of paths) {
    const found = await expandPath(p);
    if ('error' in found) {
      errors.push(found.error);
      continue;
    }
    for (const f of found.files) {
      const key = resolve(f);
      if (!seen.has(key)) {
        seen.add(key);
        files.push(f);
      }
    }
  }
  const services: ParsedService[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      errors.push({ file, message: `cannot read: ${ioReason(e)}` });
      continue;
    }
    const r = parseManifestText(text, file);
    if (r.ok) services.push(...r.value);
    else errors.push(...r.errors);
  }
  errors.push(...duplicateErrors(services));
  return errors.length > 0 ? fail(errors) : ok(services);
}

async function expandPath(p: string): Promise<{ files: string[] } | { error: ManifestError }> {
  let st;
  try {
    st = await stat(p);
  } catch (e) {
    return { error: { file: p, message: ioReason(e) } };
  }
  if (!st.isDirectory()) return { files: [p] };
  let names: string[];
  try {
    names = await readdir(p);
  } catch (e) {
    return { error: { file: p, message: `cannot read directory: ${ioReason(e)}` } };
  }
  const files: string[] = [];
  // Plain code-unit order, not locale order, so the result is the same on every machine.
  for (const name of names.filter((n) => n.endsWith('.toml') && !n.startsWith('.')).sort()) {
    const f = join(p, name);
    const isFile = await stat(f).then((s) => s.isFile(), () => true); // unreadable: let readFile report it
    if (isFile) files.push(f);
  }
  if (files.length === 0) return { error: { file: p, message: 'no *.toml files in this directory (nothing to apply)' } };
  return { files };
}

/** One error per service whose name was already used earlier (same file or another). */
function duplicateErrors(services: readonly ParsedService[]): ManifestError[] {
  const first = new Map<string, string>();
  const errors: ManifestError[] = [];
  for (const { spec, file } of services) {
    const prev = first.get(spec.name);
    if (prev === undefined) first.set(spec.name, file);
    else {
      const where = prev === file ? 'earlier in this file' : `in ${prev}`;
      errors.push({ file, service: spec.name, message: `defined more than once (already defined ${where})` });
    }
  }
  return errors;
}

/**
 * No manifest field is a TOML datetime, but a Date is an object, so zod would take one for a
 * table. A symbol is rejected by every schema with the field's own type message instead.
 */
const DATETIME = Symbol('TOML datetime');
function hideDates(v: unknown): unknown {
  if (v instanceof Date) return DATETIME;
  if (Array.isArray(v)) return v.map(hideDates);
  if (typeof v === 'object' && v !== null) {
    for (const [k, x] of Object.entries(v)) (v as Record<string, unknown>)[k] = hideDates(x);
  }
  return v;
}

function syntaxError(e: unknown, file: string): ManifestError {
  const err = e as { fromTOML?: boolean; line?: number; col?: number };
  // @iarna/toml appends " at row R, col C, pos P:" and a code excerpt; we print our own place.
  const message = (errorMessage(e).split('\n')[0] ?? '').replace(/ at row \d+, col \d+, pos \d+:?$/, '');
  if (err.fromTOML && typeof err.line === 'number' && typeof err.col === 'number') {
    return { file, line: err.line + 1, col: err.col + 1, message };
  }
  return { file, message: `cannot parse TOML: ${message}` };
}

function ioReason(e: unknown): string {
  const code = (e as { code?: string }).code;
  if (code === 'ENOENT') return 'no such file or directory';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  return errorMessage(e);
}
