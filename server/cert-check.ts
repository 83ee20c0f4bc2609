/**
 * Checking a certificate and key given for a host (SPEC §3.12, `orca cert set`, and what an ACME
 * CA sent back): PEM, a chain of at most a few certificates with the leaf first, a private key
 * that matches the leaf, valid now, and valid for the host — an exact host is matched as a TLS
 * client would (a wildcard certificate `*.example.com` covers `a.example.com`), a wildcard host
 * needs that very wildcard among the certificate's names. Pure apart from node:crypto parsing.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';

/** Bounds on what is accepted (the PEM texts, as given). */
export const CERT_LIMITS = { certBytes: 64 * 1024, keyBytes: 16 * 1024, chainLength: 8 } as const;

/** An exact host or a wildcard `*.example.com` (the manifest's route.host rule), lower case. */
const HOST_RE = /^(\*\.)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;

/** What is shown about a certificate (never its key). */
export interface CertFacts {
  /** The issuer's common name (or its whole name when it has none). */
  issuer: string;
  /** ISO-8601. */
  notBefore: string;
  notAfter: string;
  /** The leaf's DNS names (subjectAltName), for messages. */
  names: string[];
}

export type CertCheck = { ok: true; chain: string; key: string; facts: CertFacts } | { ok: false; error: string };

/** Why `host` cannot have a certificate, or null. */
export function certHostProblem(host: string): string | null {
  if (host.length === 0 || host.length > 253 || !HOST_RE.test(host)) return 'must be a host name like "web.example.com" or a wildcard like "*.example.com" (lower case)';
  return null;
}

const PEM_CERT_RE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The DNS names of a certificate's subjectAltName (lower case). */
export function dnsNames(cert: X509Certificate): string[] {
  const san = cert.subjectAltName ?? '';
  const out: string[] = [];
  for (const part of san.split(',')) {
    const p = part.trim();
    if (p.startsWith('DNS:')) out.push(p.slice(4).toLowerCase());
  }
  return out;
}

/** The issuer's CN, else its whole distinguished name on one line. */
export function issuerName(cert: X509Certificate): string {
  const lines = cert.issuer.split('\n');
  const cn = lines.find((l) => l.startsWith('CN='));
  return (cn ? cn.slice(3) : lines.join(', ')).slice(0, 200);
}

/** The leaf's facts. */
export function certFacts(leaf: X509Certificate): CertFacts {
  return { issuer: issuerName(leaf), notBefore: new Date(leaf.validFrom).toISOString(), notAfter: new Date(leaf.validTo).toISOString(), names: dnsNames(leaf) };
}

/**
 * Checks `certPem` (leaf first, then intermediates) and `keyPem` for `host` at `nowMs`. The error
 * says what is wrong, in words an operator can act on, never quoting the key.
 */
export function checkCertificate(host: string, certPem: string, keyPem: string, nowMs: number): CertCheck {
  const hostBad = certHostProblem(host);
  if (hostBad) return { ok: false, error: `host: ${hostBad}` };
  if (Buffer.byteLength(certPem) > CERT_LIMITS.certBytes) return { ok: false, error: `certificate: larger than ${CERT_LIMITS.certBytes / 1024} KiB` };
  if (Buffer.byteLength(keyPem) > CERT_LIMITS.keyBytes) return { ok: false, error: `key: larger than ${CERT_LIMITS.keyBytes / 1024} KiB` };
  const blocks = certPem.match(PEM_CERT_RE) ?? [];
  if (blocks.length === 0) return { ok: false, error: 'certificate: no PEM certificate in it (-----BEGIN CERTIFICATE-----)' };
  if (blocks.length > CERT_LIMITS.chainLength) return { ok: false, error: `certificate: more than ${CERT_LIMITS.chainLength} certificates in the chain` };
  const chain: X509Certificate[] = [];
  for (const [i, b] of blocks.entries()) {
    try {
      chain.push(new X509Certificate(b));
    } catch (err) {
      return { ok: false, error: `certificate ${i + 1} of the chain does not parse: ${(err as Error).message}` };
    }
  }
  const leaf = chain[0] as X509Certificate;
  if (leaf.ca) return { ok: false, error: 'certificate: the first certificate is a CA certificate; put the server certificate first, then its intermediates' };
  let key;
  try {
    key = createPrivateKey({ key: keyPem, format: 'pem' });
  } catch (err) {
    const msg = (err as Error).message;
    return { ok: false, error: `key: not a PEM private key${/passphrase/i.test(msg) ? ' without a passphrase (decrypt it first)' : ''}` };
  }
  if (!leaf.checkPrivateKey(key)) return { ok: false, error: 'key: does not match the certificate (the key belongs to another certificate)' };
  const facts = certFacts(leaf);
  const names = facts.names.length > 0 ? facts.names.join(', ') : '(no DNS names)';
  if (host.startsWith('*.')) {
    if (!facts.names.includes(host)) return { ok: false, error: `the certificate is not valid for ${host}: it is for ${names} (a wildcard host needs that wildcard certificate)` };
  } else if (leaf.checkHost(host, { subject: 'never', wildcards: true, partialWildcards: false, multiLabelWildcards: false }) === undefined) {
    return { ok: false, error: `the certificate is not valid for ${host}: it is for ${names}` };
  }
  if (Date.parse(facts.notAfter) <= nowMs) return { ok: false, error: `the certificate expired on ${facts.notAfter}` };
  if (Date.parse(facts.notBefore) > nowMs) return { ok: false, error: `the certificate is not valid before ${facts.notBefore}` };
  const text = chain.map((c) => c.toString().trim()).join('\n') + '\n';
  return { ok: true, chain: text, key: key.export({ format: 'pem', type: 'pkcs8' }).toString(), facts };
}
