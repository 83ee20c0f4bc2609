import { chmod, mkdir, stat } from 'node:fs/promises';
import { OrcaError } from '../core/errors.js';

/**
 * Makes the data directory private before anything is written into it (SPEC §3.7): created 0700
 * (an existing one is narrowed to 0700), and the process's umask set to 077 so that every file
 * written from then on — the token, LevelDB's tables and logs — is 0600. Called by the composition
 * roots (server, agent) before their stores open.
 *
 * Throws OrcaError ORCA_STORE_UNAVAILABLE, saying what to do, when the path cannot be a directory.
 */
export async function prepareDataDir(dir: string): Promise<void> {
  privateUmask();
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const s = await stat(dir);
    if (!s.isDirectory()) throw Object.assign(new Error(`${dir} is not a directory`), { code: 'ENOTDIR' });
    if ((s.mode & 0o077) !== 0) await chmod(dir, 0o700);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new OrcaError(
      'ORCA_STORE_UNAVAILABLE',
      `cannot use data directory ${dir}: ${e.code ?? ''} ${e.message}`.replace(/\s+/g, ' ').trim() +
        ' — choose another with --data-dir (or $ORCA_HOME), or fix its ownership and permissions',
      { cause: err },
    );
  }
}

/** umask 077 for the whole process; a no-op where the process cannot change it (worker threads). */
function privateUmask(): void {
  try {
    process.umask(0o077);
  } catch {
    /* vitest worker threads: files created by tests keep the default mode */
  }
}
