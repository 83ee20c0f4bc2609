/**
 * The request head as the proxy trusts it: everything a client sent that routing depends on is
 * checked here, once, and turned into a result — never an exception — so a malformed request is
 * a 4xx for that request alone (SPEC §3.7).
 *
 * Node's parser has already refused what HTTP/1.1 forbids outright (control characters or
 * spaces in the target, non-ASCII bytes, a missing Host on HTTP/1.1, heads over the size limit:
 * 400 or 431 before any listener runs). What it lets through and is checked here:
 *  - the request target: origin-form ("/path?query") or absolute-form ("http://host:port/path",
 *    RFC 9112 §3.2.2: routed by its authority, which replaces the Host header, and sent upstream
 *    in origin-form); anything else ("*", authority-form) is 400. Every "%" must start a "%HH"
 *    escape, or 400: the proxy does not decode the path, but a backend would, and a bad escape
 *    is the client's error, not the backend's.
 *  - the Host header: at most one (RFC 9112 §3.2: more than one is 400) and a valid authority:
 *    host name, IPv4 or bracketed IPv6, optional port 0–65535, no userinfo.
 *  - the number of header fields: more than maxHeaderCount is 431.
 */
import { upstreamRequestHeaders, type UpstreamHeaders } from './headers.js';

export type RequestHead =
  | {
      ok: true;
      /** The target in origin-form, as sent upstream (absolute-form reduced to its path and query). */
      path: string;
      /** Headers for upstream; `fwd.host` is what routing uses. */
      fwd: UpstreamHeaders;
    }
  | { ok: false; status: 400 | 431; error: string };

export interface HeadLimits {
  /** More header fields than this: 431. */
  maxHeaderCount: number;
}

const TOO_MANY = { ok: false, status: 431, error: 'too many header fields' } as const;
const BAD_TARGET = { ok: false, status: 400, error: 'bad request target' } as const;
const BAD_ESCAPE = { ok: false, status: 400, error: 'bad percent-encoding in request target' } as const;
const BAD_AUTHORITY = { ok: false, status: 400, error: 'bad host or port in request target' } as const;
const DUPLICATE_HOST = { ok: false, status: 400, error: 'more than one Host header' } as const;
const BAD_HOST = { ok: false, status: 400, error: 'bad Host header' } as const;

/**
 * Checks a request head and computes the headers to send upstream.
 *
 * @param url the request target as Node parsed it (req.url)
 * @param raw the client's rawHeaders
 * @param clientIp the client's address, for X-Forwarded-For
 * @param upgrade keep `Upgrade` for a tunnel
 * @param proto how the client reached the proxy, for X-Forwarded-Proto
 */
export function parseRequestHead(url: string, raw: string[], clientIp: string, upgrade: boolean, limits: HeadLimits, proto: 'http' | 'https' = 'http'): RequestHead {
  if (raw.length / 2 > limits.maxHeaderCount) return TOO_MANY;
  let path = url;
  let authority: string | undefined;
  if (url.charCodeAt(0) !== 47 /* / */) {
    const scheme = absoluteScheme(url);
    if (scheme === 0) return BAD_TARGET;
    let end = scheme;
    while (end < url.length) {
      const c = url.charCodeAt(end);
      if (c === 47 /* / */ || c === 63 /* ? */ || c === 35 /* # */) break;
      end++;
    }
    authority = url.slice(scheme, end);
    if (authority === '' || !validAuthority(authority)) return BAD_AUTHORITY;
    const rest = url.slice(end);
    path = rest === '' ? '/' : rest.charCodeAt(0) === 47 ? rest : `/${rest}`;
  }
  if (path.indexOf('%') !== -1 && !validEscapes(path)) return BAD_ESCAPE;
  const fwd = upstreamRequestHeaders(raw, clientIp, upgrade, proto);
  if (fwd.hostCount > 1) return DUPLICATE_HOST;
  if (authority !== undefined) {
    replaceHost(fwd, authority);
  } else if (fwd.host !== undefined && fwd.host !== '' && !validAuthority(fwd.host)) {
    return BAD_HOST;
  }
  return { ok: true, path, fwd };
}

/** Length of a leading "http://" or "https://" (any case), else 0. */
function absoluteScheme(url: string): number {
  const lower = url.slice(0, 8).toLowerCase();
  if (lower.startsWith('http://')) return 7;
  if (lower.startsWith('https://')) return 8;
  return 0;
}

/** Every "%" is followed by two hex digits. */
export function validEscapes(s: string): boolean {
  for (let i = s.indexOf('%'); i !== -1; i = s.indexOf('%', i + 1)) {
    if (!isHex(s.charCodeAt(i + 1)) || !isHex(s.charCodeAt(i + 2))) return false;
  }
  return true;
}

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

/**
 * RFC 3986 authority without userinfo: reg-name or IPv4 (unreserved, sub-delims, %HH) or an
 * IPv6 literal in brackets (hex digits, ":" and "."; no zone, no IPvFuture), then an optional ":port" of at most 5 digits, 0–65535.
 */
export function validAuthority(a: string): boolean {
  let i = 0;
  if (a.charCodeAt(0) === 91 /* [ */) {
    const close = a.indexOf(']');
    if (close < 2) return false;
    for (let k = 1; k < close; k++) {
      const c = a.charCodeAt(k);
      if (!(isHex(c) || c === 58 /* : */ || c === 46 /* . */)) return false;
    }
    i = close + 1;
  } else {
    while (i < a.length && a.charCodeAt(i) !== 58 /* : */) {
      const c = a.charCodeAt(i);
      if (c === 37 /* % */) {
        if (!isHex(a.charCodeAt(i + 1)) || !isHex(a.charCodeAt(i + 2))) return false;
        i += 3;
        continue;
      }
      if (!isUnreservedOrSubDelim(c)) return false;
      i++;
    }
    if (i === 0) return false;
  }
  if (i === a.length) return true;
  if (a.charCodeAt(i) !== 58 /* : */) return false;
  const port = a.slice(i + 1);
  if (port.length > 5) return false;
  for (let k = 0; k < port.length; k++) {
    const c = port.charCodeAt(k);
    if (c < 48 || c > 57) return false;
  }
  return port === '' || Number(port) <= 65_535;
}

/** ALPHA / DIGIT / "-" "." "_" "~" / "!" "$" "&" "'" "(" ")" "*" "+" "," ";" "=". */
function isUnreservedOrSubDelim(c: number): boolean {
  if ((c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57)) return true;
  switch (c) {
    case 45: case 46: case 95: case 126: // - . _ ~
    case 33: case 36: case 38: case 39: case 40: case 41: // ! $ & ' ( )
    case 42: case 43: case 44: case 59: case 61: // * + , ; =
      return true;
    default:
      return false;
  }
}

/** Absolute-form: the target's authority is the Host (RFC 9112 §3.2.2), upstream and for routing. */
function replaceHost(fwd: UpstreamHeaders, authority: string): void {
  const h = fwd.headers;
  let found = false;
  for (let i = 0; i + 1 < h.length; i += 2) {
    const name = (h[i] as string).toLowerCase();
    if (name === 'host') {
      h[i + 1] = authority;
      found = true;
    } else if (name === 'x-forwarded-host') {
      h[i + 1] = authority;
    }
  }
  if (!found) h.unshift('Host', authority);
  if (fwd.host === undefined) h.push('x-forwarded-host', authority);
  fwd.host = authority;
}
