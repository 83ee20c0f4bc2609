/**
 * Trust in the cluster CA on the client side of a TLS connection to the server (SPEC §3.10):
 * the agent's session and anything else that dials the API. Either the CA certificate itself
 * (`--ca-cert`), or a pin: the sha256 of the CA certificate's DER bytes (as a join token
 * carries it), from which the CA is learnt from the server's own chain and checked.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { connect, type PeerCertificate } from 'node:tls';
import { DEFAULTS } from '../core/defaults.js';
import { fail, ok, type Result } from '../core/errors.js';

/** How a client trusts the server: the CA's PEM, or the CA's fingerprint (see caFingerprint). */
export type TlsTrust = { caPem: string } | { caFingerprint: string };

const PIN_RE = /^[0-9a-f]{64}$/;

/**
 * sha256 (lowercase hex) of the DER bytes of the first certificate in `caPem`: the CA pin that
 * join tokens carry. Throws (a TypeError from node:crypto) if `caPem` holds no certificate.
 */
export function caFingerprint(caPem: string | Buffer): string {
  return derFingerprint(new X509Certificate(caPem).raw);
}

function derFingerprint(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex');
}

/** Whether `pin` has the form of a CA fingerprint (64 lowercase or uppercase hex digits). */
export function isCaFingerprint(pin: string): boolean {
  return PIN_RE.test(pin.toLowerCase());
}

/**
 * Checks a certificate chain as a server presented it (DER, leaf first) against a pinned CA
 * fingerprint, and returns that CA as PEM. Accepted only if one certificate of the chain after
 * the leaf has exactly the pinned fingerprint, is a self-signed CA, and signed the leaf. The CA
 * certificate is public, so an impostor can put it in its chain: what it cannot do is present a
 * leaf that the CA's key signed for its own key — and the connection that follows (with this CA
 * as its only trust anchor) proves the server holds that leaf's key, and checks the host name
 * and dates as usual. Pure: no I/O.
 */
export function matchPinnedChain(chain: readonly Buffer[], pin: string): Result<string> {
  const want = pin.toLowerCase();
  if (!PIN_RE.test(want)) return fail([`the CA fingerprint "${pin.slice(0, 80)}" is not 64 hex digits`]);
  const [leafDer, ...rest] = chain;
  if (!leafDer) return fail(['the server presented no certificate']);
  const caDer = rest.find((der) => derFingerprint(der) === want);
  if (!caDer) return fail([`the server's certificate chain holds no CA with the fingerprint ${want} (another cluster's server, or someone in between)`]);
  let leaf: X509Certificate;
  let ca: X509Certificate;
  try {
    leaf = new X509Certificate(leafDer);
    ca = new X509Certificate(caDer);
  } catch {
    return fail(['the server presented a certificate that does not parse']);
  }
  if (!ca.ca || !ca.checkIssued(ca) || !ca.verify(ca.publicKey)) return fail([`the certificate with the fingerprint ${want} is not a self-signed CA`]);
  if (!leaf.checkIssued(ca) || !leaf.verify(ca.publicKey)) {
    return fail([`the server's certificate is not signed by the CA with the fingerprint ${want} (someone in between, presenting the cluster's public CA certificate)`]);
  }
  return ok(ca.toString());
}

/** The DER certificates of a peer's chain as Node reports it (leaf first; a self-signed root ends it). */
function peerChain(leaf: PeerCertificate): Buffer[] {
  const out: Buffer[] = [];
  let c: PeerCertificate | undefined = leaf;
  const seen = new Set<PeerCertificate>();
  while (c && c.raw && !seen.has(c) && out.length < 10) {
    seen.add(c);
    out.push(c.raw);
    const next: PeerCertificate | undefined = (c as { issuerCertificate?: PeerCertificate }).issuerCertificate;
    if (!next || next === c) break;
    c = next;
  }
  return out;
}

/**
 * Learns the cluster CA from the server at `url` (https: or wss:) with a pinned fingerprint: a
 * TLS handshake that sends no application byte (no token leaves before the server is
 * verified), the presented chain checked with matchPinnedChain, then closed. Resolves with the
 * CA's PEM; rejects with a clear Error otherwise (unreachable, no TLS, wrong CA), or after
 * `timeoutMs` of silence.
 */
export function fetchPinnedCa(url: URL, pin: string, timeoutMs: number = DEFAULTS.pinFetchTimeoutMs): Promise<string> {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(url.port || 443);
  return new Promise<string>((resolve, reject) => {
    // Unverified on purpose, and only for this handshake: the chain is checked against the pin below.
    const socket = connect({ host, port, rejectUnauthorized: false, timeout: timeoutMs, ...(isIpLiteral(host) ? {} : { servername: host }) });
    socket.once('secureConnect', () => {
      const chain = peerChain(socket.getPeerCertificate(true));
      socket.destroy();
      const r = matchPinnedChain(chain, pin);
      if (r.ok) resolve(r.value);
      else reject(new Error(`TLS: ${r.errors.join('; ')} (server ${url.host})`));
    });
    socket.once('timeout', () => {
      socket.destroy();
      reject(new Error(`TLS: no handshake with ${url.host} within ${Math.round(timeoutMs / 1000)} s`));
    });
    socket.once('error', (err) => reject(err));
  });
}

function isIpLiteral(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}

/**
 * The CA a client trusts for `url`, resolved once and then kept (a cluster's CA never changes):
 * the given PEM, or the one fetched and checked with the pin. Undefined for a plaintext URL, or
 * without any trust given (Node's default roots then apply).
 */
export class TrustAnchor {
  private pem: string | undefined;

  constructor(private readonly trust: TlsTrust | undefined) {
    if (trust && 'caPem' in trust) this.pem = trust.caPem;
  }

  async ca(url: URL): Promise<string | undefined> {
    if (url.protocol !== 'https:' && url.protocol !== 'wss:') return undefined;
    if (this.pem !== undefined || !this.trust || !('caFingerprint' in this.trust)) return this.pem;
    this.pem = await fetchPinnedCa(url, this.trust.caFingerprint);
    return this.pem;
  }
}
