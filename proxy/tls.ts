/**
 * HTTPS at the edge (SPEC §3.12), the proxy's pure parts: which certificate a TLS client's SNI
 * name gets, what an ACME HTTP-01 challenge request asks for, and where a plain-HTTP request to a
 * TLS route is redirected. No I/O.
 */
import { hostFromHeader } from './table.js';

/** A certificate the proxy serves: the PEM chain (leaf first) and its private key (PEM), for `host`. */
export interface EdgeCert {
  /** The host it is for: an exact name, or a wildcard `*.example.com` (a manual wildcard certificate). */
  host: string;
  cert: string;
  key: string;
}

/** An HTTP-01 challenge being answered: GET /.well-known/acme-challenge/<token> → keyAuthorization. */
export interface AcmeChallenge {
  token: string;
  keyAuthorization: string;
}

/** What the control plane gives every proxy: the certificates to serve and the challenges to answer. */
export interface EdgeState {
  certs: EdgeCert[];
  challenges: AcmeChallenge[];
}

export const EMPTY_EDGE: EdgeState = Object.freeze({ certs: [], challenges: [] }) as EdgeState;

/** The path prefix of ACME HTTP-01 challenges (RFC 8555 §8.3). */
export const ACME_CHALLENGE_PREFIX = '/.well-known/acme-challenge/';
/** An ACME token: base64url, 1-128 characters (RFC 8555 §8.1 asks for ≥ 128 bits of entropy). */
const TOKEN_RE = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * The certificate for a TLS client's SNI name: the exact host's, else the wildcard of its parent
 * domain (`*.example.com` covers `a.example.com`, one label only, as X.509 wildcards do; not the
 * bare domain nor `a.b.example.com`). Case and a trailing dot do not matter. Undefined when none
 * (or no SNI name at all): the handshake is refused.
 */
export function pickCertificate<T>(byHost: ReadonlyMap<string, T>, servername: string | undefined): T | undefined {
  if (!servername) return undefined;
  let name = servername.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name === '' || name.length > 253) return undefined;
  const exact = byHost.get(name);
  if (exact !== undefined) return exact;
  const dot = name.indexOf('.');
  if (dot <= 0 || dot === name.length - 1) return undefined;
  return byHost.get(`*${name.slice(dot)}`);
}

/**
 * The token of an ACME HTTP-01 challenge request (`/.well-known/acme-challenge/<token>`, a query
 * ignored), or null when the path is not one.
 */
export function acmeChallengeToken(path: string): string | null {
  if (!path.startsWith(ACME_CHALLENGE_PREFIX)) return null;
  const q = path.indexOf('?');
  const token = path.slice(ACME_CHALLENGE_PREFIX.length, q === -1 ? undefined : q);
  return TOKEN_RE.test(token) ? token : null;
}

/**
 * Where a plain-HTTP request to a TLS route goes (308): `https://` + the request's host (its port
 * dropped) + the TLS listener's port unless it is 443 (or unknown: the proxy has no TLS listener
 * of its own, another node's at 443 serves it) + the path and query as sent. The host comes from
 * a Host header the proxy already checked (proxy/head.ts) and a route matched, so it is a name.
 */
export function httpsLocation(hostHeader: string, path: string, tlsPort: number | null): string {
  const host = hostFromHeader(hostHeader);
  const port = tlsPort === null || tlsPort === 443 ? '' : `:${tlsPort}`;
  return `https://${host}${port}${path.startsWith('/') ? path : `/${path}`}`;
}
