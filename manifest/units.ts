/**
 * Memory sizes as written in a manifest (`resources.memory`), following Docker's convention:
 * powers of 1024, suffixes case-insensitive. `k`, `kb`, `ki` and `kib` all mean KiB (likewise for
 * m and g); `b` or no suffix means bytes. An integer means bytes. Fractions are allowed in
 * strings ("1.5g") and rounded down to whole bytes, as Docker does.
 */
import { LIMITS } from './limits.js';

/** Docker refuses a memory limit below 6 MiB. */
export const MIN_MEMORY_BYTES = 6 * 1024 * 1024;
/** The most a manifest may ask for (SPEC §2): 1 TiB. */
export const MAX_MEMORY_BYTES = LIMITS.memoryBytes;
/** Longer strings are not sizes; refused before the pattern looks at them. */
const MAX_SIZE_CHARS = 64;

const MULTIPLIERS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
/**
 * A size: a number, then b, k, m, g, ki, mi, gi, kb, mb, gb, kib… in any case. Written without
 * flags (case spelled out) so the JSON Schema of `orca schema` uses this very pattern; the
 * value is trimmed first, and the JSON form allows that whitespace.
 */
const SIZE_PATTERN = '(\\d+(?:\\.\\d+)?)\\s*(?:([kKmMgG])(?:[iI]?[bB]|[iI])?|([bB]))?';
const SIZE_RE = new RegExp(`^${SIZE_PATTERN}$`);
/** The string form of a memory size as a JSON Schema pattern (without the bounds). */
export const MEMORY_JSON_PATTERN = `^\\s*${SIZE_PATTERN}\\s*$`;

export const MEMORY_FORMAT_MESSAGE = 'must be a size like "64m" (suffix b, k, m, g or ki, mi, gi) or an integer number of bytes';
export const MEMORY_MIN_MESSAGE = "must be at least 6m (Docker's minimum)";
export const MEMORY_MAX_MESSAGE = 'must be at most 1024g (1 TiB)';

/**
 * Parses a memory size. Returns the number of bytes, or an error message (without the field
 * name) when the value is malformed, below Docker's minimum or above 1 TiB. Never throws.
 */
export function parseMemory(value: unknown): { bytes: number } | { error: string } {
  let bytes: number;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) return { error: MEMORY_FORMAT_MESSAGE };
    bytes = value;
  } else if (typeof value === 'string') {
    if (value.length > MAX_SIZE_CHARS) return { error: MEMORY_FORMAT_MESSAGE };
    const m = SIZE_RE.exec(value.trim());
    if (!m) return { error: MEMORY_FORMAT_MESSAGE };
    const unit = (m[2] ?? m[3] ?? '').toLowerCase();
    bytes = Math.floor(Number(m[1]) * (MULTIPLIERS[unit] ?? 1));
    if (!Number.isFinite(bytes)) return { error: MEMORY_MAX_MESSAGE };
  } else {
    return { error: MEMORY_FORMAT_MESSAGE };
  }
  if (bytes < MIN_MEMORY_BYTES) return { error: MEMORY_MIN_MESSAGE };
  if (bytes > MAX_MEMORY_BYTES) return { error: MEMORY_MAX_MESSAGE };
  return { bytes };
}

/** Renders bytes with the largest exact suffix: 67108864 → "64m"; 6291457 → "6291457b". */
export function formatMemory(bytes: number): string {
  for (const [suffix, mult] of [['g', 1024 ** 3], ['m', 1024 ** 2], ['k', 1024]] as const) {
    if (bytes % mult === 0) return `${bytes / mult}${suffix}`;
  }
  return `${bytes}b`;
}
