/**
 * Manifest text and files → validated, normalised services (SPEC §2). These functions return
 * Results and never throw for a user's mistake: every error found is reported (up to
 * LIMITS.errorsPerFile per file), each with its file and place, and no service is returned when
 * there is any error.
 *
 * Parsing is bounded: a file larger than LIMITS.fileBytes is refused unread, and the raw text
 * passes a linear pre-scan (prescan.ts: nesting depth, string and key lengths) before the TOML
 * parser sees it, so no input makes parsing run long or overflow the stack. Errors quote at most
 * a short excerpt of the input.
 */
import { open, readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import TOML from '@iarna/toml';
import { errorMessage, fail, ok, type Result } from '../core/errors.js';
import { formatManifestError, issuesToErrors, type ManifestError } from './errors.js';
import { excerpt, LIMITS } from './limits.js';
import { prescan } from './prescan.js';
import { normaliseService } from './normalise.js';
import { manifestSchema } from './schema.js';
import type { ParsedService } from './types.js';

export type { ManifestError };
export { formatManifestError };

/** Longer file names (only an API client can send one) are cut with "…". */
const MAX_FILE_NAME_CHARS = 1024;
const TOO_LARGE = `larger than ${LIMITS.fileBytes / 1024} KiB (${LIMITS.fileBytes} bytes), the most a manifest file may be`;

/**
 * Parses one file's text. `file` is only used in errors and in the returned services. Never
 * throws for any text; runs in time linear in the text's length (bounded by LIMITS.fileBytes).
 */
export function parseManifestText(text: string, fileName: string): Result<ParsedService[], ManifestError[]> {
  // A name from an API request is input too: every error repeats it, so it is bounded.
  const file = excerpt(fileName, MAX_FILE_NAME_CHARS);
  // Characters first (cheap, and a bound on the bytes' count), then the exact UTF-8 size.
  if (text.length > LIMITS.fileBytes || Buffer.byteLength(text, 'utf8') > LIMITS.fileBytes) {
    return fail([{ file, message: TOO_LARGE }]);
  }
  const body = text.replace(/^\uFEFF/, '');
  const scan = prescan(body);
  if (scan) return fail([{ file, line: scan.line, col: scan.col, message: scan.message }]);
  let doc: unknown;
  try {
    doc = TOML.parse(body);
  } catch (e) {
    return fail([syntaxError(e, file)]);
  }
  try {
    return validate(hideDates(doc), file);
  } catch (e) {
    // The pre-scan bounds nesting, so this is a last guard: a stack overflow is reported, not thrown.
    if (e instanceof RangeError) return fail([{ file, message: `too deeply nested or too large to validate (${excerpt(e.message)})` }]);
    throw e;
  }
}

function validate(doc: unknown, file: string): Result<ParsedService[], ManifestError[]> {
  const errors: ManifestError[] = [];
  const parsed = manifestSchema.safeParse(doc);
  if (!parsed.success) errors.push(...issuesToErrors(parsed.error.issues, file, doc, LIMITS.errorsPerFile));
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
    const text = await readManifestFile(file);
    if (typeof text !== 'string') {
      errors.push(text.error);
      continue;
    }
    const r = parseManifestText(text, file);
    if (r.ok) services.push(...r.value);
    else errors.push(...r.errors);
  }
  errors.push(...duplicateErrors(services));
  return errors.length > 0 ? fail(errors) : ok(services);
}

/**
 * A manifest file's text, reading at most LIMITS.fileBytes + 1 bytes: a larger file (or an
 * endless one such as /dev/zero) is refused without being read whole.
 */
export async function readManifestFile(file: string): Promise<string | { error: ManifestError }> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    return { error: { file, message: `cannot read: ${ioReason(e)}` } };
  }
  try {
    const buf = Buffer.alloc(LIMITS.fileBytes + 1);
    let size = 0;
    while (size < buf.length) {
      const { bytesRead } = await fh.read(buf, size, buf.length - size, null);
      if (bytesRead === 0) break;
      size += bytesRead;
    }
    if (size > LIMITS.fileBytes) return { error: { file, message: TOO_LARGE } };
    return buf.subarray(0, size).toString('utf8');
  } catch (e) {
    return { error: { file, message: `cannot read: ${ioReason(e)}` } };
  } finally {
    await fh.close().catch(() => undefined);
  }
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
    // defineProperty, not assignment: a `__proto__` key must stay a plain key (the schema refuses it).
    for (const [k, x] of Object.entries(v)) Object.defineProperty(v, k, { value: hideDates(x), enumerable: true, writable: true, configurable: true });
  }
  return v;
}

function syntaxError(e: unknown, file: string): ManifestError {
  const err = e as { fromTOML?: boolean; line?: number; col?: number };
  // @iarna/toml appends " at row R, col C, pos P:" and a code excerpt; we print our own place.
  const message = excerpt((errorMessage(e).split('\n')[0] ?? '').replace(/ at row \d+, col \d+, pos \d+:?$/, ''), 200);
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
