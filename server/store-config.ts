/**
 * `orca server --store etcd://H:P[,H:P…]` and its companions (SPEC §3.11 "Store on etcd"):
 * `--store-prefix P` (default `/orca/<cluster-id>`), `--etcd-ca F`, `--etcd-cert F`, `--etcd-key F`
 * (TLS to etcd: the endpoints are then https://), and the same keys in cluster.toml (`store`,
 * `store_prefix`, `etcd_ca`, `etcd_cert`, `etcd_key`). Without `--store`, the embedded LevelDB.
 */
import { open } from 'node:fs/promises';
import { resolve } from 'node:path';
import { defaultStorePrefix, prefixProblem } from '../store/etcd-keys.js';
import type { EtcdTls } from '../store/etcd-client.js';

/** The store on etcd, as `orca server` opens it. */
export interface EtcdStoreConfig {
  kind: 'etcd';
  /** Client URLs: http://H:P, or https://H:P with TLS. */
  endpoints: string[];
  prefix: string;
  /** The PEM contents of --etcd-ca / --etcd-cert / --etcd-key, read at start. */
  tls?: EtcdTls;
}

export interface StoreInputs {
  store?: string;
  storePrefix?: string;
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
}

/** How each input is named in a message: the flag when it came from one, else the cluster.toml key. */
export type StoreInputNames = Record<keyof StoreInputs, string>;

export const MAX_ETCD_ENDPOINTS = 16;
/** A certificate, chain or key file, at most. */
const MAX_PEM_BYTES = 1024 * 1024;

const HOST_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** `HOST:PORT` (IPv6 in brackets) → the same, checked; or why not. */
function parseEndpoint(s: string): { ok: true; hostPort: string } | { ok: false; why: string } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(s);
  if (!m) return { ok: false, why: `"${s.slice(0, 200)}" is not HOST:PORT` };
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return { ok: false, why: `"${s.slice(0, 200)}": the port must be 1-65535` };
  const host = m[1] ?? m[2] ?? '';
  if (m[2] !== undefined && (host.length > 253 || !HOST_RE.test(host))) return { ok: false, why: `"${s.slice(0, 200)}": "${host.slice(0, 200)}" is not a host name or IP address` };
  return { ok: true, hostPort: m[1] !== undefined ? `[${host}]:${port}` : `${host}:${port}` };
}

/** Reads a PEM file (at most 1 MiB) for --etcd-ca / --etcd-cert / --etcd-key; null after pushing the problem to errors. */
async function readPem(file: string, what: string, errors: string[]): Promise<Buffer | null> {
  const path = resolve(file);
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    errors.push(`${what}: cannot read ${path}: ${e.code === 'ENOENT' ? 'no such file' : (e.code ?? e.message)}`);
    return null;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) {
      errors.push(`${what}: ${path} is not a regular file`);
      return null;
    }
    if (st.size > MAX_PEM_BYTES) {
      errors.push(`${what}: ${path} is larger than ${MAX_PEM_BYTES / 1024} KiB: not a PEM certificate or key`);
      return null;
    }
    const buf = await fh.readFile();
    if (!buf.toString('utf8').includes('-----BEGIN ')) {
      errors.push(`${what}: ${path} holds no PEM block (-----BEGIN …): give a PEM certificate or key`);
      return null;
    }
    return buf;
  } catch (err) {
    errors.push(`${what}: cannot read ${path}: ${(err as Error).message}`);
    return null;
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/**
 * The etcd store's settings, or undefined for the embedded store (no `store`). Every problem is
 * pushed to `errors`, naming the flag or key: a store that is not etcd://HOST:PORT[,…], more than
 * 16 endpoints or a repeated one, a bad prefix, a TLS file that cannot be read or holds no PEM,
 * --etcd-cert without --etcd-key (or the other way), and any of these without --store.
 */
export async function parseStoreConfig(inp: StoreInputs, names: StoreInputNames, clusterId: string, errors: string[]): Promise<EtcdStoreConfig | undefined> {
  if (inp.store === undefined || inp.store === '') {
    for (const k of ['storePrefix', 'etcdCa', 'etcdCert', 'etcdKey'] as const) {
      if (inp[k] !== undefined) errors.push(`${names[k]}: only with --store etcd://HOST:PORT[,HOST:PORT…] (store in cluster.toml); without it the store is the embedded LevelDB`);
    }
    if (inp.store === '') errors.push(`${names.store}: empty (give etcd://HOST:PORT[,HOST:PORT…], or leave it out for the embedded store)`);
    return undefined;
  }
  const before = errors.length;
  const endpoints: string[] = [];
  const m = /^etcd:\/\/(.*)$/.exec(inp.store.trim());
  if (!m) {
    errors.push(`${names.store}: "${inp.store.slice(0, 200)}" must be etcd://HOST:PORT[,HOST:PORT…] (for example etcd://127.0.0.1:2379)`);
  } else {
    const list = (m[1] ?? '').split(',').map((s) => s.trim());
    if (list.length > MAX_ETCD_ENDPOINTS) errors.push(`${names.store}: at most ${MAX_ETCD_ENDPOINTS} endpoints, got ${list.length}`);
    for (const s of list.slice(0, MAX_ETCD_ENDPOINTS)) {
      const e = parseEndpoint(s);
      if (!e.ok) errors.push(`${names.store}: ${e.why} (give etcd://HOST:PORT[,HOST:PORT…])`);
      else if (endpoints.includes(e.hostPort)) errors.push(`${names.store}: ${e.hostPort} is listed twice`);
      else endpoints.push(e.hostPort);
    }
  }
  const prefix = inp.storePrefix ?? defaultStorePrefix(clusterId);
  const bad = prefixProblem(prefix);
  if (bad) errors.push(`${names.storePrefix}: "${prefix.slice(0, 200)}" ${bad}`);

  if ((inp.etcdCert === undefined) !== (inp.etcdKey === undefined)) {
    errors.push(inp.etcdCert === undefined ? `${names.etcdKey}: needs --etcd-cert (etcd_cert), the client certificate of that key` : `${names.etcdCert}: needs --etcd-key (etcd_key), the key of that certificate`);
  }
  let tls: EtcdTls | undefined;
  if (inp.etcdCa !== undefined || inp.etcdCert !== undefined || inp.etcdKey !== undefined) {
    tls = {};
    if (inp.etcdCa !== undefined) tls.ca = (await readPem(inp.etcdCa, names.etcdCa, errors)) ?? undefined;
    if (inp.etcdCert !== undefined) tls.cert = (await readPem(inp.etcdCert, names.etcdCert, errors)) ?? undefined;
    if (inp.etcdKey !== undefined) tls.key = (await readPem(inp.etcdKey, names.etcdKey, errors)) ?? undefined;
  }
  if (errors.length > before) return undefined;
  const scheme = tls ? 'https' : 'http';
  return { kind: 'etcd', endpoints: endpoints.map((e) => `${scheme}://${e}`), prefix, ...(tls ? { tls } : {}) };
}
