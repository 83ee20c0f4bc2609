import { createHash, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { secretToken } from '../core/ids.js';
import { OrcaError } from '../core/errors.js';

export const TOKEN_FILE = 'cluster.token';

/**
 * Reads `<dataDir>/cluster.token`, creating it (mode 0600) on first start. A token file that exists
 * but is empty or cannot be read stops the server (OrcaError ORCA_UNAUTHORIZED with what to do):
 * silently making a new token would lock out every CLI and agent that holds the old one, and an
 * empty token would let nobody in.
 */
export async function ensureToken(dataDir: string): Promise<string> {
  const path = join(dataDir, TOKEN_FILE);
  let text: string | null = null;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code !== 'ENOENT') {
      throw new OrcaError('ORCA_UNAUTHORIZED', `cannot read the admin token ${path} (${e.code ?? e.message}): fix its permissions (it should be a file, mode 0600, owned by the user running orca server)`, { cause: err });
    }
  }
  if (text !== null) {
    const t = text.trim();
    if (t && /^\S+$/.test(t)) return t;
    throw new OrcaError(
      'ORCA_UNAUTHORIZED',
      `the admin token ${path} is ${t ? 'malformed (it holds whitespace)' : 'empty'}: restore it from a backup, or delete the file to have a new token made (every CLI and agent then needs the new one)`,
    );
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const token = await secretToken();
  await writeFile(path, token + '\n', { mode: 0o600, flag: 'wx' }).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  await chmod(path, 0o600);
  return (await readFile(path, 'utf8')).trim();
}

/** Constant-time comparison of a presented bearer token with the cluster token. */
export function tokenMatches(presented: string | undefined, expected: string): boolean {
  if (!presented) return false;
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** The bearer token of an Authorization header, if any. */
export function bearer(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1];
}
