/**
 * Header rewriting for the proxy: hop-by-hop headers are dropped both ways (RFC 9110 §7.6.1),
 * X-Forwarded-* are added on the way in. Works on flat [name, value, name, value …] arrays, the
 * shape Node's rawHeaders and undici both use, so nothing is parsed twice on the hot path.
 */

/** Always hop-by-hop. `expect` is dropped too: the proxy answers 100-continue itself. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect']);
const FORWARDED = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']);

/**
 * Lengths of the names looked at (hop-by-hop, x-forwarded-*, host, content-length): any other
 * header is passed on without lower-casing it, which is most of them, on every request.
 */
const INTERESTING_LENGTH = new Uint8Array(32);
for (const name of [...HOP_BY_HOP, ...FORWARDED, 'host', 'content-length']) INTERESTING_LENGTH[name.length] = 1;
const HOP_LENGTH = new Uint8Array(32);
for (const name of HOP_BY_HOP) HOP_LENGTH[name.length] = 1;

export interface UpstreamHeaders {
  /** Flat name/value list to send upstream (Host kept as the client sent it). */
  headers: string[];
  /** The Host header the client sent, if any (the last one when there are several). */
  host: string | undefined;
  /** How many Host headers the client sent (more than one is a 400). */
  hostCount: number;
  /** Whether the request carries a body (content-length > 0 or a transfer-encoding). */
  hasBody: boolean;
}

/**
 * The headers to send upstream for a client request.
 *
 * @param raw the client's rawHeaders
 * @param clientIp the client's address, appended to X-Forwarded-For
 * @param upgrade keep `Upgrade` and send `Connection: upgrade` (tunnels)
 * @param proto X-Forwarded-Proto: how the client reached the proxy (`https` on its TLS listener)
 */
export function upstreamRequestHeaders(raw: string[], clientIp: string, upgrade = false, proto: 'http' | 'https' = 'http'): UpstreamHeaders {
  const out: string[] = [];
  let host: string | undefined;
  let hostCount = 0;
  let xff: string | undefined;
  let connection: string | undefined;
  let hasBody = false;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    if (INTERESTING_LENGTH[name.length] !== 1) {
      out.push(name, value);
      continue;
    }
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'connection') connection = connection === undefined ? value : `${connection}, ${value}`;
      else if (lower === 'transfer-encoding') hasBody = true;
      else if (lower === 'upgrade' && upgrade) out.push(name, value);
      continue;
    }
    if (FORWARDED.has(lower)) {
      if (lower === 'x-forwarded-for') xff = xff === undefined ? value : `${xff}, ${value}`;
      continue;
    }
    if (lower === 'host') {
      host = value;
      hostCount++;
    }
    else if (lower === 'content-length' && value !== '0') hasBody = true;
    out.push(name, value);
  }
  const headers = connection === undefined ? out : dropConnectionTokens(out, connection);
  if (upgrade) headers.push('Connection', 'upgrade');
  headers.push(
    'x-forwarded-for',
    xff === undefined ? clientIp : `${xff}, ${clientIp}`,
    'x-forwarded-proto',
    proto,
  );
  if (host !== undefined) headers.push('x-forwarded-host', host);
  return { headers, host, hostCount, hasBody };
}

/** The upstream's response headers as strings for res.writeHead, hop-by-hop ones dropped. */
export function downstreamResponseHeaders(raw: ReadonlyArray<Buffer | string>): string[] {
  const out: string[] = [];
  let connection: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = latin1(raw[i] as Buffer | string);
    const value = latin1(raw[i + 1] as Buffer | string);
    if (HOP_LENGTH[name.length] === 1 && HOP_BY_HOP.has(name.toLowerCase())) {
      const lower = name.toLowerCase();
      if (lower === 'connection') connection = connection === undefined ? value : `${connection}, ${value}`;
      continue;
    }
    out.push(name, value);
  }
  return connection === undefined ? out : dropConnectionTokens(out, connection);
}

function latin1(b: Buffer | string): string {
  return typeof b === 'string' ? b : b.toString('latin1');
}

/** Removes the headers a Connection header names (its usual values close/keep-alive/upgrade name none we keep). */
function dropConnectionTokens(headers: string[], connection: string): string[] {
  const named = new Set<string>();
  for (const token of connection.split(',')) {
    const t = token.trim().toLowerCase();
    if (t !== '' && t !== 'close' && t !== 'keep-alive' && t !== 'upgrade') named.add(t);
  }
  if (named.size === 0) return headers;
  const out: string[] = [];
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const name = headers[i] as string;
    if (!named.has(name.toLowerCase())) out.push(name, headers[i + 1] as string);
  }
  return out;
}

/** "::ffff:127.0.0.1" → "127.0.0.1"; undefined (a destroyed socket) → "". */
export function clientAddress(remote: string | undefined): string {
  if (!remote) return '';
  return remote.startsWith('::ffff:') && remote.includes('.') ? remote.slice(7) : remote;
}
