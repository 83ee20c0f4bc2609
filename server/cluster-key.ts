/**
 * The cluster key (SPEC §3.9): 32 random bytes that seal every secret value in the store.
 * `<data-dir>/cluster.key`, mode 0600, made on first start; or a file given with
 * `--cluster-key-file` (every server of an etcd-backed cluster is given the same key).
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { OrcaError } from '../core/errors.js';
import { CLUSTER_KEY_BYTES } from './secret-crypto.js';

export const CLUSTER_KEY_FILE = 'cluster.key';

/** Where the key is: the given file, else `<dataDir>/cluster.key`. */
export function clusterKeyPath(dataDir: string, file?: string): string {
  return file ?? join(dataDir, CLUSTER_KEY_FILE);
}

const refuse = (message: string, cause?: unknown) => new OrcaError('ORCA_UNAUTHORIZED', message, cause === undefined ? {} : { cause });

/**
 * The cluster key. `<dataDir>/cluster.key` is created (0600) when missing; a file given with
 * `file` must exist (a typo in the flag must never start a cluster over a new key its secrets
 * do not open with), unless `createMissing` (the first server of a shared store, whose secrets
 * no key sealed yet, creates it). Refuses (OrcaError ORCA_UNAUTHORIZED, with what to do) a key
 * that is not a regular file, is readable or writable by group or others, or is not exactly 32
 * bytes. Reads at most 33 bytes.
 */
export async function loadClusterKey(dataDir: string, file?: string, opts: { createMissing?: boolean } = {}): Promise<Buffer> {
  const path = clusterKeyPath(dataDir, file);
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') throw refuse(`cannot read the cluster key ${path} (${code ?? String(err)}): fix its permissions (a file, mode 0600, owned by the user running orca server)`, err);
    if (file !== undefined && opts.createMissing !== true) {
      throw refuse(
        `the cluster key ${path} (--cluster-key-file) does not exist: copy the cluster.key of a server of this cluster there, ` +
          `or make a new one with: head -c ${CLUSTER_KEY_BYTES} /dev/urandom > ${path} && chmod 600 ${path}`,
      );
    }
    return create(path);
  }
  return read(path, st);
}

async function read(path: string, st: Awaited<ReturnType<typeof stat>>): Promise<Buffer> {
  if (!st.isFile()) throw refuse(`the cluster key ${path} is not a regular file`);
  const mode = Number(st.mode) & 0o777;
  if ((mode & 0o077) !== 0) {
    throw refuse(`the cluster key ${path} has mode 0${mode.toString(8)}: it must be readable by its owner only (chmod 600 ${path})`);
  }
  const fh = await open(path, 'r').catch((err: NodeJS.ErrnoException) => {
    throw refuse(`cannot read the cluster key ${path} (${err.code ?? err.message}): fix its permissions`, err);
  });
  try {
    const buf = Buffer.alloc(CLUSTER_KEY_BYTES + 1);
    let size = 0;
    while (size < buf.length) {
      const { bytesRead } = await fh.read(buf, size, buf.length - size, null);
      if (bytesRead === 0) break;
      size += bytesRead;
    }
    if (size !== CLUSTER_KEY_BYTES) {
      const what = size > CLUSTER_KEY_BYTES ? `more than ${CLUSTER_KEY_BYTES} bytes` : `${size} bytes`;
      throw refuse(
        `the cluster key ${path} holds ${what}, but a cluster key is exactly ${CLUSTER_KEY_BYTES} random bytes: ` +
          `restore it from a backup (the secrets in the store open only with the key they were sealed with)`,
      );
    }
    return buf.subarray(0, size);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

async function create(path: string): Promise<Buffer> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const key = randomBytes(CLUSTER_KEY_BYTES);
  try {
    const fh = await open(path, 'wx', 0o600);
    try {
      await fh.writeFile(key);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await chmod(path, 0o600);
    return key;
  } catch (err) {
    // Another process made it first: use that one.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return read(path, await stat(path));
    throw err;
  }
}
