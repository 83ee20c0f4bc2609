/**
 * Typed errors with stable codes. Parsers return Results; `throw` is for bugs and for
 * errors that cross an I/O edge (runtime, store), where the code tells the caller what to do.
 */

export type ErrorCode =
  | 'ORCA_MANIFEST_INVALID'
  | 'ORCA_USAGE'
  | 'ORCA_NOT_FOUND'
  | 'ORCA_CONFLICT'
  | 'ORCA_UNAUTHORIZED'
  /** Authenticated, but not allowed this (a node credential calling the API). */
  | 'ORCA_FORBIDDEN'
  | 'ORCA_STORE_LOCKED'
  | 'ORCA_STORE_CORRUPT'
  | 'ORCA_STORE_UNAVAILABLE'
  /**
   * A write refused because this server does not (or no longer) lead the control plane: the
   * store's fence (its leadership key) did not hold in the write's own transaction (SPEC §3.11).
   * Transient: another server leads, or will once elected.
   */
  | 'ORCA_NOT_LEADER'
  | 'ORCA_RUNTIME_UNAVAILABLE'
  | 'ORCA_RUNTIME_NOT_FOUND'
  | 'ORCA_RUNTIME_CONFLICT'
  | 'ORCA_RUNTIME_FAILED'
  | 'ORCA_IMAGE_MISSING'
  | 'ORCA_SERVER_UNREACHABLE'
  | 'ORCA_TIMEOUT'
  | 'ORCA_INTERNAL';

export class OrcaError extends Error {
  readonly code: ErrorCode;
  /** Transient errors are worth retrying; terminal ones are not. */
  readonly transient: boolean;
  readonly details?: unknown;

  constructor(code: ErrorCode, message: string, opts: { transient?: boolean; cause?: unknown; details?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'OrcaError';
    this.code = code;
    this.transient = opts.transient ?? false;
    this.details = opts.details;
  }
}

export function isOrcaError(e: unknown, code?: ErrorCode): e is OrcaError {
  return e instanceof OrcaError && (code === undefined || e.code === code);
}

/**
 * Codes that say the observed state was stale — a container gone or changed since it was
 * listed. Retrying the call is useless but re-observing is the fix, so a reconciler retries
 * them as soon as a transient error.
 */
const STALE_OBSERVATION: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['ORCA_RUNTIME_NOT_FOUND', 'ORCA_RUNTIME_CONFLICT']);

/**
 * True when retrying soon cannot help: an OrcaError that is not transient (an image missing, a
 * request the engine refuses), other than a stale observation. Anything that is not an
 * OrcaError (a bug, an unmapped failure) is not judged terminal.
 */
export function isTerminal(e: unknown): e is OrcaError {
  return e instanceof OrcaError && !e.transient && !STALE_OBSERVATION.has(e.code);
}

export type Result<T, E = string[]> = { ok: true; value: T } | { ok: false; errors: E };

export const ok = <T>(value: T): Result<T, never> => ({ ok: true, value });
export const fail = <E>(errors: E): Result<never, E> => ({ ok: false, errors });

/** A short message for any thrown value. */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
