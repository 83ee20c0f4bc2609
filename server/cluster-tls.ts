/**
 * The cluster CA and the server certificate (SPEC §3.10), in `<data-dir>/tls/` (0700):
 * `ca.crt`, `ca.key`, `server.crt`, `server.key`, every file 0600. ECDSA P-256 keys.
 *
 * The CA is made once, on first start, and never again: agents and CLIs trust it (join tokens
 * carry its fingerprint). The server certificate is re-issued whenever what it should say
 * changed (its names), it is not the CA's, it does not match its key, or it is near expiry.
 * Certificates are issued with @peculiar/x509 (Node can read and verify X.509 but not issue
 * it), in a worker thread that ends once it has issued (see issueCertificate): the library, its
 * reflect polyfill and what issuing allocates never stay in the server's heap (about 7 MB of an
 * idle server's resident memory). Every other start reads the files with node:crypto.
 */
import { createPrivateKey, webcrypto, X509Certificate, type KeyObject } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Clock, TimerHandle } from '../core/clock.js';
import { DEFAULTS } from '../core/defaults.js';
import type { Logger } from '../core/log.js';
import { OrcaError } from '../core/errors.js';
import { secretToken } from '../core/ids.js';

export const TLS_DIR = 'tls';
export const CA_CERT_FILE = 'ca.crt';
export const CA_KEY_FILE = 'ca.key';
export const SERVER_CERT_FILE = 'server.crt';
export const SERVER_KEY_FILE = 'server.key';

const DAY_MS = 86_400_000;
const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface ClusterTls {
  /** The cluster CA certificate (PEM). */
  caPem: string;
  /** The server certificate followed by the CA certificate: the chain the server presents. */
  chainPem: string;
  /** The server certificate's private key (PKCS#8 PEM). */
  keyPem: string;
  /** What this call made: the CA (first start), and/or a new server certificate. */
  created: { ca: boolean; serverCert: boolean };
  /** The names in the server certificate, as wanted (see serverNames). */
  names: string[];
  /** When the server certificate expires (ms since the epoch). */
  notAfterMs: number;
}

const refuse = (message: string, cause?: unknown) => new OrcaError('ORCA_UNAUTHORIZED', message, cause === undefined ? {} : { cause });

/** Whether `name` may be a subject alternative name: an IP address, or a DNS name (a leading `*.` allowed). */
export function sanProblem(name: string): string | null {
  if (isIP(name)) return null;
  if (name.length > 253) return 'is longer than 253 characters';
  const labels = name.toLowerCase().split('.');
  const ok = labels.every((l, i) => (i === 0 && l === '*' && labels.length > 2) || /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(l));
  return ok ? null : 'must be a DNS name or an IP address';
}

/** An IP address in the form node:crypto prints and our comparisons use ("::1", not "0:0:…:1"). */
function canonicalIp(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  try {
    return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return ip;
  }
}

/**
 * The names the server certificate carries: `localhost`, `127.0.0.1`, `::1`, the advertise
 * address, the API's listen address when it is a specific one (not 0.0.0.0 or ::), and every
 * `--tls-san`. Lowercased, IPs canonical, duplicates and invalid ones dropped, sorted.
 */
export function serverNames(o: { advertise: string; apiHost: string; sans: readonly string[] }): string[] {
  const wildcard = new Set(['0.0.0.0', '::', '']);
  const all = ['localhost', '127.0.0.1', '::1', o.advertise, ...(wildcard.has(o.apiHost) ? [] : [o.apiHost]), ...o.sans];
  const out = new Set<string>();
  for (const raw of all) {
    const n = raw.trim().replace(/^\[(.*)\]$/, '$1').toLowerCase();
    if (n && sanProblem(n) === null) out.add(isIP(n) ? canonicalIp(n) : n);
  }
  return [...out].sort();
}

/** The names of a certificate's subjectAltName, in serverNames' form. */
function certNames(cert: X509Certificate): string[] {
  const out: string[] = [];
  for (const part of (cert.subjectAltName ?? '').split(', ')) {
    const m = /^(DNS|IP Address):(.*)$/.exec(part.trim());
    if (m?.[2]) out.push(m[1] === 'DNS' ? m[2].toLowerCase() : canonicalIp(m[2]));
  }
  return out.sort();
}

async function readIfThere(path: string, what: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    throw refuse(`cannot read the ${what} ${path} (${code ?? String(err)}): fix its permissions (a file, mode 0600, owned by the user running orca server)`, err);
  }
}

/** Writes a file 0600 through a temporary name and a rename, so no reader sees half of it. */
async function writePrivate(path: string, text: string): Promise<void> {
  const tmp = `${path}.${(await secretToken()).slice(0, 12)}.tmp`;
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await chmod(tmp, 0o600);
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

type X509 = typeof import('@peculiar/x509');
let lib: Promise<X509> | null = null;
/** @peculiar/x509, with its reflect polyfill and Node's WebCrypto: loaded on the first issue only. */
function x509(): Promise<X509> {
  lib ??= (async () => {
    await import('reflect-metadata');
    const x = await import('@peculiar/x509');
    x.cryptoProvider.set(webcrypto as unknown as Crypto);
    return x;
  })();
  return lib;
}

async function serial(): Promise<string> {
  // 16 random bytes, the first one's top bit clear: a positive serial (RFC 5280 §4.1.2.2).
  const hex = (await secretToken()).slice(0, 32);
  return ((parseInt(hex.slice(0, 2), 16) & 0x7f) | 0x10).toString(16) + hex.slice(2);
}

async function pkcs8Pem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }).toString();
}

/** One certificate to issue: the cluster CA, or a server certificate signed by it. Plain data, for a worker thread. */
export type CertJob =
  | { kind: 'ca'; clusterId: string; nowMs: number }
  | { kind: 'server'; caCertPem: string; caKeyPem: string; names: string[]; commonName: string; nowMs: number };

export interface IssuedPem {
  certPem: string;
  keyPem: string;
}

/** Issues in this thread (what the worker runs). */
export async function runCertJob(job: CertJob): Promise<IssuedPem> {
  if (job.kind === 'ca') return createCa(job.clusterId, job.nowMs);
  return issueServerCert({ certPem: job.caCertPem, key: createPrivateKey(job.caKeyPem) }, job.names, job.commonName, job.nowMs);
}

/**
 * Issues in a worker thread (server/cert-worker.ts) that ends with the job, so @peculiar/x509
 * is never loaded into this thread. Run from the TypeScript sources (the unit tests), where a
 * worker cannot load the compiled module, it issues in this thread.
 */
export function issueCertificate(job: CertJob): Promise<IssuedPem> {
  if (!import.meta.url.endsWith('.js')) return runCertJob(job);
  return new Promise((resolve, reject) => {
    // No execArgv of the server's: flags such as --input-type or --eval mean nothing to it.
    const worker = new Worker(new URL('./cert-worker.js', import.meta.url), { workerData: job, execArgv: [] });
    worker.once('message', (m: { ok: true; issued: IssuedPem } | { ok: false; error: string }) => {
      if (m.ok) resolve(m.issued);
      else reject(new Error(`issuing the ${job.kind === 'ca' ? 'cluster CA' : 'server certificate'} failed: ${m.error}`));
    });
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the certificate worker exited (code ${code}) before it answered`)));
  });
}

async function createCa(clusterId: string, nowMs: number): Promise<{ certPem: string; keyPem: string }> {
  const x = await x509();
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x.X509CertificateGenerator.createSelfSigned({
    serialNumber: await serial(),
    name: [{ CN: [`Orca cluster CA (${clusterId})`] }, { O: ['Orca'] }],
    notBefore: new Date(nowMs - 3600_000),
    notAfter: new Date(nowMs + DEFAULTS.tls.caValidityDays * DAY_MS),
    keys,
    signingAlgorithm: SIGN,
    extensions: [
      new x.BasicConstraintsExtension(true, 0, true),
      new x.KeyUsagesExtension(x.KeyUsageFlags.keyCertSign | x.KeyUsageFlags.cRLSign, true),
      await x.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await pkcs8Pem(keys.privateKey) };
}

async function issueServerCert(ca: { certPem: string; key: KeyObject }, names: string[], commonName: string, nowMs: number): Promise<{ certPem: string; keyPem: string }> {
  const x = await x509();
  const caKey = await webcrypto.subtle.importKey('pkcs8', ca.key.export({ format: 'der', type: 'pkcs8' }), EC, false, ['sign']);
  const caCert = new x.X509Certificate(ca.certPem);
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x.X509CertificateGenerator.create({
    serialNumber: await serial(),
    subject: [{ CN: [commonName] }, { O: ['Orca'] }],
    issuer: caCert.subject,
    notBefore: new Date(nowMs - 3600_000),
    notAfter: new Date(nowMs + DEFAULTS.tls.serverCertValidityDays * DAY_MS),
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: SIGN,
    extensions: [
      new x.BasicConstraintsExtension(false, undefined, true),
      new x.KeyUsagesExtension(x.KeyUsageFlags.digitalSignature, true),
      new x.ExtendedKeyUsageExtension([x.ExtendedKeyUsage.serverAuth]),
      new x.SubjectAlternativeNameExtension(names.map((n) => (isIP(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n }))),
      await x.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await pkcs8Pem(keys.privateKey) };
}

/** The CA of `dir`, checked; null when neither of its files exists. Refuses (OrcaError) anything else broken. */
async function loadCa(dir: string): Promise<{ certPem: string; key: KeyObject; cert: X509Certificate } | null> {
  const certPath = join(dir, CA_CERT_FILE);
  const keyPath = join(dir, CA_KEY_FILE);
  const certPem = await readIfThere(certPath, 'cluster CA certificate');
  const keyPem = await readIfThere(keyPath, 'cluster CA key');
  if (certPem === null && keyPem === null) return null;
  const neverAgain = 'the CA is never re-created on its own, since every agent and CLI of the cluster trusts it';
  if (keyPem === null) throw refuse(`the cluster CA key ${keyPath} is missing while ${certPath} exists: restore it from a backup (${neverAgain}; to start a new CA on purpose, remove the whole ${dir} directory, and give every agent and CLI the new ca.crt)`);
  if (certPem === null) throw refuse(`the cluster CA certificate ${certPath} is missing while ${keyPath} exists: restore it from a backup (${neverAgain}; to start a new CA on purpose, remove the whole ${dir} directory)`);
  const mode = Number((await stat(keyPath)).mode) & 0o777;
  if ((mode & 0o077) !== 0) throw refuse(`the cluster CA key ${keyPath} has mode 0${mode.toString(8)}: it must be readable by its owner only (chmod 600 ${keyPath})`);
  let cert: X509Certificate;
  let key: KeyObject;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw refuse(`the cluster CA certificate ${certPath} is not a PEM certificate: restore it from a backup`, err);
  }
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw refuse(`the cluster CA key ${keyPath} is not a PEM private key: restore it from a backup`, err);
  }
  if (!cert.ca) throw refuse(`${certPath} is not a CA certificate: restore the cluster's ca.crt from a backup`);
  if (!cert.checkPrivateKey(key)) throw refuse(`the cluster CA key ${keyPath} does not match the certificate ${certPath}: restore the pair from the same backup (${neverAgain})`);
  return { certPem, key, cert };
}

/** Why the server certificate in `dir` must be (re)issued, or null if it is good. */
async function serverCertProblem(dir: string, ca: X509Certificate, names: string[], nowMs: number): Promise<string | null> {
  const certPem = await readIfThere(join(dir, SERVER_CERT_FILE), 'server certificate');
  const keyPem = await readIfThere(join(dir, SERVER_KEY_FILE), 'server key');
  if (certPem === null || keyPem === null) return 'missing';
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) return 'does not match its key';
  } catch {
    return 'does not parse';
  }
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return 'not issued by the cluster CA';
  if (certNames(cert).join(',') !== names.join(',')) return 'names changed';
  if (Date.parse(cert.validFrom) > nowMs) return 'not yet valid';
  if (Date.parse(cert.validTo) - nowMs < DEFAULTS.tls.renewBeforeDays * DAY_MS) return 'near expiry';
  return null;
}

/**
 * The cluster's TLS material in `<dataDir>/tls`: the CA made on first start (never again), and a
 * server certificate for `names` (see serverNames), issued when missing, broken, not the CA's,
 * for other names, or within DEFAULTS.tls.renewBeforeDays of expiry. Files 0600, directory 0700,
 * each written whole (a temporary file and a rename).
 *
 * Throws OrcaError (ORCA_UNAUTHORIZED, saying what to do) when the CA is half there, unreadable,
 * readable by others, or its key does not match its certificate: a server must never go on with
 * another CA than the one its cluster trusts.
 */
export async function ensureClusterTls(dataDir: string, o: { names: string[]; clusterId: string; commonName: string; nowMs: number }): Promise<ClusterTls> {
  const dir = join(dataDir, TLS_DIR);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const created = { ca: false, serverCert: false };
  let ca = await loadCa(dir);
  if (!ca) {
    const made = await issueCertificate({ kind: 'ca', clusterId: o.clusterId, nowMs: o.nowMs });
    // The key first: a crash between the two leaves a key without a certificate, which is refused
    // (and can be removed) rather than a certificate nobody can issue with.
    await writePrivate(join(dir, CA_KEY_FILE), made.keyPem);
    await writePrivate(join(dir, CA_CERT_FILE), made.certPem);
    created.ca = true;
    ca = await loadCa(dir);
    if (!ca) throw new Error('cluster CA vanished right after it was written');
  }
  if ((await serverCertProblem(dir, ca.cert, o.names, o.nowMs)) !== null) {
    const issued = await issueCertificate({ kind: 'server', caCertPem: ca.certPem, caKeyPem: ca.key.export({ format: 'pem', type: 'pkcs8' }).toString(), names: o.names, commonName: o.commonName, nowMs: o.nowMs });
    await writePrivate(join(dir, SERVER_KEY_FILE), issued.keyPem);
    await writePrivate(join(dir, SERVER_CERT_FILE), issued.certPem);
    created.serverCert = true;
  }
  const certPem = await readFile(join(dir, SERVER_CERT_FILE), 'utf8');
  const keyPem = await readFile(join(dir, SERVER_KEY_FILE), 'utf8');
  const caPem = ca.cert.toString();
  return {
    caPem,
    chainPem: `${certPem.trimEnd()}\n${caPem.trimEnd()}\n`,
    keyPem,
    created,
    names: o.names,
    notAfterMs: Date.parse(new X509Certificate(certPem).validTo),
  };
}

/** The reason ensureClusterTls would re-issue the server certificate now, or null (for logs). */
export async function serverCertNeedsIssue(dataDir: string, names: string[], nowMs: number): Promise<string | null> {
  const dir = join(dataDir, TLS_DIR);
  const caPem = await readIfThere(join(dir, CA_CERT_FILE), 'cluster CA certificate');
  if (caPem === null) return 'no CA';
  return serverCertProblem(dir, new X509Certificate(caPem), names, nowMs);
}

/**
 * Looks every `intervalMs` (default DEFAULTS.tls.renewCheckIntervalMs) whether the server
 * certificate needs re-issuing (ensureClusterTls), and hands a new one to `onIssued` (the API
 * then serves it to new connections). Stops on `signal`. A failed check is logged and tried again
 * at the next interval; the certificate in use stays until then.
 */
export function keepServerCertFresh(o: {
  dataDir: string;
  issue: { names: string[]; clusterId: string; commonName: string };
  clock: Clock;
  signal: AbortSignal;
  log: Logger;
  onIssued(tls: ClusterTls): void;
  intervalMs?: number;
}): void {
  let timer: TimerHandle | null = null;
  const schedule = () => {
    if (!o.signal.aborted) timer = o.clock.setTimeout(check, o.intervalMs ?? DEFAULTS.tls.renewCheckIntervalMs);
  };
  const check = () => {
    timer = null;
    ensureClusterTls(o.dataDir, { ...o.issue, nowMs: o.clock.now() })
      .then((t) => {
        if (t.created.serverCert && !o.signal.aborted) o.onIssued(t);
      })
      .catch((err: unknown) => o.log.error({ err }, 'server certificate check failed'))
      .finally(schedule);
  };
  o.signal.addEventListener('abort', () => timer && o.clock.clearTimeout(timer), { once: true });
  schedule();
}
