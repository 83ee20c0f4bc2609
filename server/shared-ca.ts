/**
 * One cluster CA for every server of a control plane on a shared store (SPEC §3.10, §3.11). Join
 * tokens pin the CA's hash, agents verify whichever server they reach against it, a standby
 * forwards to the leader over TLS, and the CLI is given one `--ca-cert` for all its `--api`
 * servers: so the servers must share it. The first server publishes its CA in the store, the
 * private key sealed with the cluster key (which the servers share, `--cluster-key-file`); every
 * other server adopts it into its `<data-dir>/tls` before it issues its own server certificate.
 */
import { randomBytes } from 'node:crypto';
import { X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { OrcaError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { Store } from '../store/types.js';
import { CA_CERT_FILE, CA_KEY_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE, TLS_DIR } from './cluster-tls.js';
import { openValue, sealValue, type SealedValue } from './secret-crypto.js';

const KEY = 'cluster/ca';
/** The sealed key's name and version in its AEAD (so it cannot pass for a secret's value). */
const SEAL_NAME = 'cluster-ca-key';
const SEAL_VERSION = 1;

interface SharedCa {
  cert: string;
  key: SealedValue;
}

async function writePrivate(path: string, text: string): Promise<void> {
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, path);
}

function fingerprint(pem: string): string | null {
  try {
    return new X509Certificate(pem).fingerprint256;
  } catch {
    return null;
  }
}

/**
 * Before the server's TLS material is made: when the store holds the cluster's CA, it is the one
 * in `<dataDir>/tls` (a different local CA is set aside as `ca.*.replaced` and the server
 * certificate is issued again from the shared one). Returns what it did.
 */
export async function adoptSharedCa(store: Store, dataDir: string, clusterKey: Buffer, log: Logger): Promise<'none' | 'same' | 'adopted'> {
  const shared = await store.getKv<SharedCa>(KEY);
  if (!shared) return 'none';
  if (typeof shared.cert !== 'string' || fingerprint(shared.cert) === null || typeof shared.key !== 'object') {
    throw new OrcaError('ORCA_STORE_CORRUPT', `the cluster CA in the store (${KEY}) is damaged`);
  }
  const dir = join(dataDir, TLS_DIR);
  const localCert = await readFile(join(dir, CA_CERT_FILE), 'utf8').catch(() => null);
  if (localCert !== null && fingerprint(localCert) === fingerprint(shared.cert)) return 'same';
  const keyPem = openValue(clusterKey, SEAL_NAME, SEAL_VERSION, shared.key).toString('utf8');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  if (localCert !== null) {
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    await rename(join(dir, CA_CERT_FILE), join(dir, `${CA_CERT_FILE}.replaced-${stamp}`)).catch(() => undefined);
    await rename(join(dir, CA_KEY_FILE), join(dir, `${CA_KEY_FILE}.replaced-${stamp}`)).catch(() => undefined);
    log.warn({ dir }, 'this data directory had its own cluster CA: the control plane\'s shared CA replaces it (the old one is kept as ca.*.replaced-*); tokens and --ca-cert files of the old CA no longer verify this server');
  }
  await writePrivate(join(dir, CA_KEY_FILE), keyPem);
  await writePrivate(join(dir, CA_CERT_FILE), shared.cert);
  // Issued again, from the shared CA, by ensureClusterTls.
  await rm(join(dir, SERVER_CERT_FILE), { force: true });
  await rm(join(dir, SERVER_KEY_FILE), { force: true });
  return 'adopted';
}

/**
 * After the TLS material is made: publishes this server's CA when the store has none yet. Returns
 * true when another server published first meanwhile (then adoptSharedCa and the TLS set-up must
 * run again).
 */
export async function publishSharedCa(store: Store, dataDir: string, clusterKey: Buffer): Promise<boolean> {
  const dir = join(dataDir, TLS_DIR);
  const cert = await readFile(join(dir, CA_CERT_FILE), 'utf8');
  if (!(await store.getKv<SharedCa>(KEY))) {
    const keyPem = await readFile(join(dir, CA_KEY_FILE));
    await store.putKv(KEY, { cert, key: sealValue(clusterKey, SEAL_NAME, SEAL_VERSION, keyPem) } satisfies SharedCa);
  }
  const now = await store.getKv<SharedCa>(KEY);
  return !!now && fingerprint(now.cert) !== fingerprint(cert);
}
