/**
 * The settings of HTTPS at the edge (SPEC §3.12) from flags and cluster.toml: `--proxy-listen-tls`
 * (default off), `--acme-directory` (default Let's Encrypt production), `--acme-email`,
 * `--acme-ca-file` (a PEM CA to trust for the directory's HTTPS: a test CA), and the hidden
 * `--acme-retry-secs` (the first retry of a failed order; tests only — against a real CA the
 * retry is an hour, doubling). Each refusal names the flag or key.
 */
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { LETS_ENCRYPT_DIRECTORY, type AcmeSettings } from './acme.js';

export interface EdgeConfig {
  /** `--proxy-listen-tls`: where the proxy serves TLS; absent: off. */
  proxyListenTls?: { host: string; port: number };
  acme: AcmeSettings;
}

export interface EdgeFlags {
  proxyListenTls?: string | undefined;
  acmeDirectory?: string | undefined;
  acmeEmail?: string | undefined;
  acmeCaFile?: string | undefined;
  acmeRetrySecs?: string | undefined;
}

const MAX_CA_BYTES = 1024 * 1024;
const EMAIL_RE = /^[^\s@]{1,64}@[^\s@]{1,253}$/;

/** `values` are the flag's value or the file's; `names` say which, for messages. */
export async function parseEdgeConfig(
  values: EdgeFlags,
  names: Record<keyof EdgeFlags, string>,
  parseListen: (value: string, what: string) => { ok: true; value: { host: string; port: number } } | { ok: false; errors: string[] },
  errors: string[],
): Promise<EdgeConfig> {
  const acme: AcmeSettings = { directory: LETS_ENCRYPT_DIRECTORY };
  const out: EdgeConfig = { acme };
  if (values.proxyListenTls !== undefined) {
    const l = parseListen(values.proxyListenTls, names.proxyListenTls);
    if (l.ok) out.proxyListenTls = l.value;
    else errors.push(...l.errors);
  }
  if (values.acmeDirectory !== undefined) {
    let url: URL | null = null;
    try {
      url = new URL(values.acmeDirectory);
    } catch {
      url = null;
    }
    if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) errors.push(`${names.acmeDirectory}: "${values.acmeDirectory.slice(0, 200)}" must be the https:// URL of an ACME directory`);
    else acme.directory = url.toString();
  }
  if (values.acmeEmail !== undefined) {
    if (!EMAIL_RE.test(values.acmeEmail)) errors.push(`${names.acmeEmail}: "${values.acmeEmail.slice(0, 200)}" must be an e-mail address`);
    else acme.email = values.acmeEmail;
  }
  if (values.acmeCaFile !== undefined) {
    const path = resolve(values.acmeCaFile);
    try {
      if ((await stat(path)).size > MAX_CA_BYTES) errors.push(`${names.acmeCaFile}: ${path} is larger than 1 MiB: not a CA certificate`);
      else {
        const pem = await readFile(path, 'utf8');
        if (!pem.includes('-----BEGIN CERTIFICATE-----')) errors.push(`${names.acmeCaFile}: ${path} holds no PEM certificate`);
        else acme.caPem = pem;
      }
    } catch (err) {
      errors.push(`${names.acmeCaFile}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  if (values.acmeRetrySecs !== undefined) {
    const n = Number(values.acmeRetrySecs);
    if (!Number.isFinite(n) || n < 0.05 || n > 86_400) errors.push(`${names.acmeRetrySecs}: "${values.acmeRetrySecs.slice(0, 40)}" must be seconds from 0.05 to 86400`);
    else acme.retry = { initialMs: Math.round(n * 1000), maxMs: Math.round(n * 4000), factor: 2 };
  }
  return out;
}
