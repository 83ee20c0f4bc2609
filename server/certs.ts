/**
 * The certificates of SPEC §3.12, kept in the store's kv namespace, their private keys sealed with
 * the cluster key like secrets (server/secret-crypto.ts, under the name `cert:<host>`):
 *
 *   kv cert/<host>          CertRecord: the chain (PEM), the sealed key, issuer and validity, source
 *   kv acme-order/<host>    AcmeOrderState: the ACME order's standing (pending / failed, why, next try)
 *   kv acme-account         AcmeAccountRecord: the ACME account key (sealed) for a directory
 *
 * The store is the state of record for every server (a restarted or new leader reads what the last
 * one obtained and never orders again what is valid). Keys leave only through edgeCerts(), for the
 * proxies; nothing here logs or quotes them.
 */
import { OrcaError } from '../core/errors.js';
import type { Store } from '../store/types.js';
import type { EdgeCert } from '../proxy/tls.js';
import { checkCertificate, type CertFacts } from './cert-check.js';
import { openValue, sealValue, type SealedValue } from './secret-crypto.js';

const CERT_PREFIX = 'cert/';
const ORDER_PREFIX = 'acme-order/';
const ACCOUNT_KEY = 'acme-account';

export type CertSource = 'acme' | 'manual';

export interface CertRecord extends CertFacts {
  host: string;
  source: CertSource;
  /** PEM, leaf first. */
  chain: string;
  /** Counts every certificate stored for the host: the sealing's version. */
  version: number;
  sealedKey: SealedValue;
  /** ISO-8601. */
  updated: string;
}

/** An ACME order's standing for a host that has no valid certificate or is due for renewal. */
export interface AcmeOrderState {
  host: string;
  status: 'pending' | 'failed';
  /** Failed attempts in a row (0 while the first is under way). */
  failures: number;
  reason?: string;
  /** ISO-8601: when the last attempt began, and when the next may. */
  lastAttemptAt?: string;
  nextAttemptAt?: string;
}

export interface AcmeAccountRecord {
  directory: string;
  email?: string;
  sealedKey: SealedValue;
  url?: string;
}

/** A row of `orca certs` (SPEC §3.12). */
export interface CertView {
  host: string;
  issuer: string | null;
  notAfter: string | null;
  status: 'valid' | 'pending' | 'failed';
  reason: string | null;
  /** acme, manual, or null when none is stored. */
  source: CertSource | null;
  /** When an ACME certificate is renewed, or the next order tried (ISO-8601), if known. */
  next?: string;
}

/** What a route asks for (from the stored services): the hosts whose certificates matter. */
export interface WantedCert {
  host: string;
  tls: CertSource;
}

export class CertStore {
  private readonly listeners = new Set<() => void>();

  constructor(
    private readonly store: Store,
    private readonly key: Buffer,
  ) {}

  /** Called after every change of a certificate (not of an order's standing). */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async get(host: string): Promise<CertRecord | undefined> {
    const r = await this.store.getKv<CertRecord>(CERT_PREFIX + host);
    return isCertRecord(r) ? r : undefined;
  }

  async all(): Promise<CertRecord[]> {
    return (await this.store.listKv<CertRecord>(CERT_PREFIX)).map((e) => e.value).filter(isCertRecord);
  }

  /**
   * Stores a certificate for `host` after checking it (checkCertificate). Throws OrcaError
   * ORCA_USAGE saying what is wrong (nothing stored then).
   */
  async put(host: string, certPem: string, keyPem: string, source: CertSource, at: Date): Promise<CertRecord> {
    const c = checkCertificate(host, certPem, keyPem, at.getTime());
    if (!c.ok) throw new OrcaError('ORCA_USAGE', `certificate for ${host.slice(0, 253)}: ${c.error}`);
    const prev = await this.get(host);
    const version = (prev?.version ?? 0) + 1;
    const record: CertRecord = {
      host,
      source,
      chain: c.chain,
      version,
      sealedKey: sealValue(this.key, `cert:${host}`, version, Buffer.from(c.key)),
      updated: at.toISOString(),
      ...c.facts,
    };
    await this.store.putKv(CERT_PREFIX + host, record);
    for (const l of this.listeners) l();
    return record;
  }

  /**
   * Every stored certificate not expired at `nowMs`, with its key, for the proxies. A record whose
   * key does not open (damaged, another cluster key) is left out and reported through `onBad`.
   */
  async edgeCerts(nowMs: number, onBad: (host: string, err: unknown) => void = () => undefined): Promise<EdgeCert[]> {
    const out: EdgeCert[] = [];
    for (const r of await this.all()) {
      if (Date.parse(r.notAfter) <= nowMs) continue;
      try {
        out.push({ host: r.host, cert: r.chain, key: openValue(this.key, `cert:${r.host}`, r.version, r.sealedKey).toString() });
      } catch (err) {
        onBad(r.host, err);
      }
    }
    return out;
  }

  async order(host: string): Promise<AcmeOrderState | undefined> {
    const s = await this.store.getKv<AcmeOrderState>(ORDER_PREFIX + host);
    return isOrderState(s) ? s : undefined;
  }

  async orders(): Promise<AcmeOrderState[]> {
    return (await this.store.listKv<AcmeOrderState>(ORDER_PREFIX)).map((e) => e.value).filter(isOrderState);
  }

  async putOrder(state: AcmeOrderState): Promise<void> {
    await this.store.putKv(ORDER_PREFIX + state.host, state);
  }

  async clearOrder(host: string): Promise<void> {
    await this.store.delKv(ORDER_PREFIX + host);
  }

  /** The ACME account key (PEM) for `directory`, or undefined (another directory's does not count). */
  async accountKey(directory: string): Promise<{ keyPem: string; url?: string } | undefined> {
    const r = await this.store.getKv<AcmeAccountRecord>(ACCOUNT_KEY);
    if (!r || typeof r !== 'object' || r.directory !== directory || !r.sealedKey) return undefined;
    try {
      return { keyPem: openValue(this.key, `acme-account:${directory}`, 1, r.sealedKey).toString(), ...(r.url ? { url: r.url } : {}) };
    } catch {
      return undefined;
    }
  }

  async putAccountKey(directory: string, keyPem: string, email: string | undefined, url: string | undefined): Promise<void> {
    const record: AcmeAccountRecord = { directory, sealedKey: sealValue(this.key, `acme-account:${directory}`, 1, Buffer.from(keyPem)), ...(email ? { email } : {}), ...(url ? { url } : {}) };
    await this.store.putKv(ACCOUNT_KEY, record);
  }

  /**
   * `orca certs`: every stored certificate and every host a route asks a certificate for, sorted
   * by host. Valid: a certificate not expired is served (a failing renewal says so in `reason`).
   * Otherwise the ACME order's standing, or for a manual route "no certificate".
   */
  async view(wanted: readonly WantedCert[], nowMs: number): Promise<CertView[]> {
    const certs = new Map((await this.all()).map((r) => [r.host, r]));
    const orders = new Map((await this.orders()).map((o) => [o.host, o]));
    const hosts = new Map<string, CertSource | null>();
    for (const w of wanted) hosts.set(w.host, w.tls);
    for (const h of certs.keys()) if (!hosts.has(h)) hosts.set(h, null);
    const rows: CertView[] = [];
    for (const [host, tls] of [...hosts].sort((a, b) => a[0].localeCompare(b[0]))) {
      const cert = certs.get(host);
      const order = tls === 'acme' ? orders.get(host) : undefined;
      const valid = cert !== undefined && Date.parse(cert.notAfter) > nowMs;
      const base = { host, issuer: cert?.issuer ?? null, notAfter: cert?.notAfter ?? null, source: cert?.source ?? null };
      const next = order?.nextAttemptAt ? { next: order.nextAttemptAt } : {};
      if (valid) {
        const reason = order?.status === 'failed' ? `renewal failed (${order.failures}×): ${order.reason ?? 'unknown'}` : order ? 'renewing' : null;
        rows.push({ ...base, status: 'valid', reason, ...next });
      } else if (tls === 'acme') {
        const expired = cert ? `expired on ${cert.notAfter}; ` : '';
        if (order?.status === 'failed') rows.push({ ...base, status: 'failed', reason: `${expired}${order.reason ?? 'the order failed'}`, ...next });
        else rows.push({ ...base, status: 'pending', reason: `${expired}ordering from the ACME CA`, ...next });
      } else if (tls === 'manual') {
        rows.push({ ...base, status: cert ? 'failed' : 'pending', reason: cert ? `expired on ${cert.notAfter}: set a new one with orca cert set ${host}` : `no certificate: orca cert set ${host} --cert FILE --key FILE` });
      } else {
        rows.push({ ...base, status: 'failed', reason: `expired on ${cert?.notAfter ?? '?'}` });
      }
    }
    return rows;
  }
}

function isCertRecord(v: unknown): v is CertRecord {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return typeof r.host === 'string' && typeof r.chain === 'string' && typeof r.version === 'number' && typeof r.notAfter === 'string' && typeof r.sealedKey === 'object' && r.sealedKey !== null;
}

function isOrderState(v: unknown): v is AcmeOrderState {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return typeof r.host === 'string' && (r.status === 'pending' || r.status === 'failed') && typeof r.failures === 'number';
}
