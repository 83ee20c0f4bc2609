/**
 * The control plane's shared secrets (SPEC §3.11): servers on one etcd store share the admin
 * token and the cluster key.
 *
 * - Admin token: its sha256 is kept in the store (kv `admin-token`). The first server makes the
 *   token (`<data-dir>/cluster.token`, as ever) and records its hash; the others are given that
 *   token with `--token-file` (or find it in their own data directory) and refuse to start with
 *   any other, so every server accepts the same token and a CLI pointed at any of them works.
 * - Cluster key: `--cluster-key-file`; the first server (the store holds no secret-key
 *   fingerprint yet) creates the file when it is missing, the others must be given a copy
 *   (SecretStore.open refuses another key).
 *
 * On the embedded store (one server) nothing changes, except that `--token-file` may name the
 * token to use.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { OrcaError } from '../core/errors.js';
import type { Store } from '../store/types.js';
import { clusterKeyPath, loadClusterKey } from './cluster-key.js';
import { FINGERPRINT_KEY } from './secrets.js';
import { ensureToken, TOKEN_FILE } from './token.js';

/** The kv key of the admin token's hash in a shared store. */
export const ADMIN_TOKEN_KEY = 'admin-token';
/** A token file, at most (a token is 43 characters). */
const MAX_TOKEN_FILE_BYTES = 4096;

interface AdminTokenRecord {
  sha256: string;
  createdAt: string;
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
const refuse = (message: string, cause?: unknown) => new OrcaError('ORCA_UNAUTHORIZED', message, cause === undefined ? {} : { cause });

/** The token in `file` (one token, no whitespace inside, at most 4 KiB); ORCA_UNAUTHORIZED with what to do otherwise. */
export async function readTokenFile(file: string, what: string): Promise<string> {
  let st;
  try {
    st = await stat(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw refuse(`the admin token ${file} (${what}) ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}: copy the cluster.token of the first server of this cluster there`, err);
  }
  if (!st.isFile() || st.size > MAX_TOKEN_FILE_BYTES) throw refuse(`the admin token ${file} (${what}) is not a token file (a regular file of one line)`);
  const text = (await readFile(file, 'utf8')).trim();
  if (!text || !/^\S+$/.test(text)) throw refuse(`the admin token ${file} (${what}) is ${text ? 'malformed (it holds whitespace)' : 'empty'}: copy the cluster.token of the first server of this cluster there`);
  return text;
}

/**
 * The admin token of this server. With `tokenFile`, the token in that file (and
 * `<dataDir>/cluster.token` is written with it when missing, so a CLI on this host finds it; one
 * that holds another token is refused). Else `<dataDir>/cluster.token`, made when missing —
 * except on a shared store that already knows a token: a server there never makes its own.
 * On a shared store the token's hash is recorded when none is, and a token with another hash is
 * refused (ORCA_UNAUTHORIZED, saying which file to copy from where).
 */
export async function adminToken(store: Store, o: { dataDir: string; tokenFile?: string; shared: boolean; now: string }): Promise<string> {
  const own = join(o.dataDir, TOKEN_FILE);
  const known = o.shared ? await store.getKv<Partial<AdminTokenRecord>>(ADMIN_TOKEN_KEY) : undefined;
  let token: string;
  if (o.tokenFile !== undefined) {
    token = await readTokenFile(o.tokenFile, '--token-file');
    const existing = await readFile(own, 'utf8').then(
      (t) => t.trim(),
      () => null,
    );
    if (existing === null) {
      await writeFile(own, token + '\n', { mode: 0o600, flag: 'wx' }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
      await chmod(own, 0o600);
    } else if (existing !== token) {
      throw refuse(`${own} holds another admin token than --token-file ${o.tokenFile}: remove one of them (a data directory serves one cluster with one admin token)`);
    }
  } else {
    if (known && typeof known.sha256 === 'string' && !(await exists(own))) {
      throw refuse(
        `this store already has an admin token (made by the first server of this cluster), and ${own} does not exist: ` +
          `copy that server's cluster.token to this host and start with --token-file FILE`,
      );
    }
    token = await ensureToken(o.dataDir);
  }
  if (!o.shared) return token;

  const hash = sha256(token);
  let recorded = known;
  if (!recorded || typeof recorded.sha256 !== 'string') {
    if (await store.createKv(ADMIN_TOKEN_KEY, { sha256: hash, createdAt: o.now } satisfies AdminTokenRecord)) return token;
    recorded = await store.getKv<Partial<AdminTokenRecord>>(ADMIN_TOKEN_KEY);
  }
  const want = typeof recorded?.sha256 === 'string' ? Buffer.from(recorded.sha256) : Buffer.alloc(0);
  const have = Buffer.from(hash);
  if (want.length !== have.length || !timingSafeEqual(want, have)) {
    throw refuse(
      `the admin token ${o.tokenFile ?? own} is not this cluster's: servers on one store share one admin token. ` +
        `Copy the cluster.token of the first server of this cluster to this host and start with --token-file FILE`,
    );
  }
  return token;
}

/**
 * The cluster key. On a shared store whose secrets no key sealed yet (this is the first server),
 * a missing `--cluster-key-file` is created; on one whose secrets a key sealed, a missing key
 * file is refused before any is made (ORCA_UNAUTHORIZED: copy the first server's). Otherwise as
 * loadClusterKey.
 */
export async function sharedClusterKey(store: Store, o: { dataDir: string; clusterKeyFile?: string; shared: boolean }): Promise<Buffer> {
  if (!o.shared) return loadClusterKey(o.dataDir, o.clusterKeyFile);
  const sealed = (await store.getKv(FINGERPRINT_KEY)) !== undefined;
  const path = clusterKeyPath(o.dataDir, o.clusterKeyFile);
  if (sealed && !(await exists(path))) {
    throw refuse(
      `the secrets in this store are sealed with the cluster key of the first server of this cluster, and ${path} does not exist: ` +
        `copy that server's cluster key to this host (mode 0600) and start with --cluster-key-file FILE`,
    );
  }
  return loadClusterKey(o.dataDir, o.clusterKeyFile, { createMissing: !sealed });
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
