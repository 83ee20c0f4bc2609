/**
 * Why a store failed to open, in words an operator can act on (SPEC §3.6: refuse to start, say
 * why and what to do, never start empty over an unreadable store).
 */

import { readdir, stat } from 'node:fs/promises';
import { errorMessage, OrcaError } from '../core/errors.js';

/** What is at the store's location before opening it. */
export type LocationState = 'missing' | 'empty' | 'populated';

/**
 * Looks at the store directory without changing anything. 'missing' also covers a path whose
 * parent cannot hold it (opening then fails as "cannot be created").
 * Throws ORCA_STORE_CORRUPT if the path exists but is not a readable directory.
 */
export async function inspectLocation(path: string): Promise<LocationState> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(path)).isDirectory();
  } catch (e) {
    const code = codeOf(e);
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'missing';
    throw storeCorrupt(path, `cannot stat it: ${errorMessage(e)}`, e);
  }
  if (!isDirectory) throw storeCorrupt(path, 'it exists but is not a directory');
  try {
    return (await readdir(path)).length === 0 ? 'empty' : 'populated';
  } catch (e) {
    throw storeCorrupt(path, `cannot list the directory: ${errorMessage(e)}`, e);
  }
}

export function storeLocked(path: string, cause?: unknown): OrcaError {
  return new OrcaError(
    'ORCA_STORE_LOCKED',
    `store ${path} is locked by another process: another orca server (or agent) is probably running ` +
      `on this data directory; stop it or use another --data-dir`,
    { cause },
  );
}

export function storeCorrupt(path: string, reason: string, cause?: unknown): OrcaError {
  return new OrcaError(
    'ORCA_STORE_CORRUPT',
    `store ${path} cannot be read: ${reason}. Orca refuses to start with an empty store over existing ` +
      `data. Move the directory aside (or restore it from a backup) and start again; if the cause is ` +
      `file permissions, fix them instead.`,
    { cause },
  );
}

/**
 * Maps an error from db.open() to an OrcaError. `state` is what inspectLocation saw before the
 * attempt: a failure over existing data is reported as corrupt, a failure to create a new store
 * as unavailable (for example a parent directory that is not writable).
 */
export function openFailure(path: string, state: LocationState, err: unknown): OrcaError {
  const cause = causeOf(err);
  const code = codeOf(cause) ?? codeOf(err);
  const reason = errorMessage(cause ?? err);
  if (code === 'LEVEL_LOCKED') return storeLocked(path, err);
  if (code === 'LEVEL_CORRUPTION' || state === 'populated') return storeCorrupt(path, reason, err);
  return new OrcaError('ORCA_STORE_UNAVAILABLE', `store ${path} cannot be created: ${reason}`, { cause: err });
}

/**
 * Maps an error from a read or write on an open database. OrcaErrors pass through;
 * LevelDB corruption becomes ORCA_STORE_CORRUPT; anything else ORCA_STORE_UNAVAILABLE (transient:
 * a full disk or a closing database may recover).
 */
export function operationFailure(path: string, err: unknown): OrcaError {
  if (err instanceof OrcaError) return err;
  const code = codeOf(err) ?? codeOf(causeOf(err));
  if (code === 'LEVEL_CORRUPTION') return storeCorrupt(path, errorMessage(err), err);
  return new OrcaError('ORCA_STORE_UNAVAILABLE', `store ${path}: ${errorMessage(err)}`, {
    cause: err,
    transient: true,
  });
}

function causeOf(e: unknown): unknown {
  return e instanceof Error ? e.cause : undefined;
}

function codeOf(e: unknown): string | undefined {
  if (typeof e === 'object' && e !== null && 'code' in e) {
    const code = (e as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}
