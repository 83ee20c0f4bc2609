/**
 * The proxy's lean path for the common request: a GET or HEAD on HTTP/1.1 with no body, whose
 * whole head arrived in the bytes read so far, for a route with a ready backend. It reads the
 * client's socket itself, checks the head with the same rules as the full path (head.ts), writes
 * the request to a keep-alive backend socket of its own and relays the response, framed by its
 * Content-Length, chunked encoding or the backend closing. It skips Node's HTTP server and undici,
 * which cost most of a request's CPU (bench/proxy).
 *
 * Everything else — a request with a body, an upgrade, Expect, HTTP/1.0, an absolute-form target,
 * a head split over several reads, any byte or header the strict checks below do not accept, an
 * unknown host, a TLS route, no ready backend, an ACME challenge being answered — is handed, with
 * the bytes read and not yet handled, to Node's HTTP server and the full path (proxy.ts,
 * exchange.ts) for the rest of that connection. The full path is then what answers it, with all
 * its checks (400, 404, 408, 431, 503, 308, tunnels). So the lean path only ever answers with a
 * backend's response, or 502/504 when no backend could give one.
 *
 * SPEC §3.5 holds on this path as on the full one: round-robin over ready backends, X-Forwarded-*,
 * hop-by-hop headers dropped both ways, and a request retried on the next backend when its
 * backend refused, reset or timed out connecting, or broke the connection before any response
 * byte (GET and HEAD are idempotent); a response-headers timeout is 504 and never retried.
 */
import http from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ProxyCore } from './core.js';
import { type HeadLimits, parseRequestHead } from './head.js';
import { clientAddress } from './headers.js';
import type { Route } from './table.js';
import { CLIENT_CLOSED } from './types.js';

/** A backend's response head may be at most this long; more is a bad response (502). */
export const RESPONSE_HEAD_MAX_BYTES = 64 * 1024;
/** How long an idle backend connection is kept when the backend does not say (undici's default). */
const UPSTREAM_IDLE_MS = 4_000;
/** Kept this much shorter than what a backend's `Keep-Alive: timeout=N` says (undici's margin). */
const UPSTREAM_IDLE_MARGIN_MS = 1_000;
/** Idle backend connections kept per backend, at most. */
const UPSTREAM_IDLE_MAX = 256;
/** A response up to this size leaves in one write (head and body copied into one buffer). */
const ONE_WRITE_MAX = 16 * 1024;
/** Chunked framing: longest chunk-size line (with extensions) and trailer section. */
const CHUNK_LINE_MAX = 4 * 1024;
const TRAILERS_MAX = 16 * 1024;

const CRLF2 = Buffer.from('\r\n\r\n');
/**
 * Backend bytes are read into this one buffer (net.connect's `onread`), shared by every backend
 * connection of the process: a read is handled before the next one starts, and whatever is kept
 * past the handler is copied out. That spares Node's stream machinery and an allocation per read
 * (measured: ~8 µs of ~65 per request in a minimal proxy).
 */
const UPSTREAM_READ_BUFFER = Buffer.allocUnsafe(64 * 1024);
const INTERNAL_ERROR = JSON.stringify({ error: 'internal proxy error' });

/** tchar (RFC 9110 §5.6.2): header names. */
const TOKEN = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~") TOKEN[c.charCodeAt(0)] = 1;
for (let c = 48; c <= 57; c++) TOKEN[c] = 1;
for (let c = 65; c <= 90; c++) TOKEN[c] = 1;
for (let c = 97; c <= 122; c++) TOKEN[c] = 1;
/** What an origin-form target may hold (RFC 3986 pchar, "/", "?", "%"); anything else takes the full path. */
const TARGET = new Uint8Array(128);
for (const c of "-._~!$&'()*+,;=:@/?%[]") TARGET[c.charCodeAt(0)] = 1;
for (let c = 48; c <= 57; c++) TARGET[c] = 1;
for (let c = 65; c <= 90; c++) TARGET[c] = 1;
for (let c = 97; c <= 122; c++) TARGET[c] = 1;

/** Response headers never passed on (RFC 9110 §7.6.1), framing and keep-alive read on the way. */
const HOP_BY_HOP_RESPONSE = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect']);
const HOP_LENGTH = new Uint8Array(32);
for (const n of [...HOP_BY_HOP_RESPONSE, 'content-length']) HOP_LENGTH[n.length] = 1;

/** Request headers that send a request to the full path (lower-case). */
const FULL_PATH_HEADERS = new Set(['content-length', 'transfer-encoding', 'upgrade', 'expect', 'te', 'http2-settings']);
const FULL_PATH_LENGTH = new Uint8Array(32);
for (const n of [...FULL_PATH_HEADERS, 'connection']) FULL_PATH_LENGTH[n.length] = 1;

/** A request head the lean path takes. */
interface LeanHead {
  method: 'GET' | 'HEAD';
  /** The client asked to close after this response. */
  close: boolean;
  /** Target and headers as Node's parser would give them (req.url, rawHeaders). */
  target: string;
  raw: string[];
}

/**
 * Parses the request head `buf[0, end)` (end: where its blank line starts) when the lean path
 * takes it; null sends the request to the full path. Strict: only visible ASCII and spaces, CRLF
 * line ends, tokens as names, no folding, no duplicate or odd framing headers.
 */
export function parseLeanHead(buf: Buffer, end: number): LeanHead | null {
  // Read as bytes (a string's charCodeAt and a regex per line cost twice as much).
  let eol = requestLineEnd(buf, 0, end);
  if (eol < 0) return null;
  let method: 'GET' | 'HEAD';
  let t: number;
  if (buf[0] === 71 && buf[1] === 69 && buf[2] === 84 && buf[3] === 32) {
    method = 'GET';
    t = 4;
  } else if (buf[0] === 72 && buf[1] === 69 && buf[2] === 65 && buf[3] === 68 && buf[4] === 32) {
    method = 'HEAD';
    t = 5;
  } else return null;
  // ... SP "HTTP/1.1"
  const te = eol - 9;
  if (te <= t || buf.compare(SP_HTTP_11, 0, 9, te, eol) !== 0) return null;
  if (buf[t] !== 47 /* / */) return null;
  for (let i = t; i < te; i++) if (TARGET[buf[i] as number] !== 1) return null;
  const target = buf.toString('latin1', t, te);
  const raw: string[] = [];
  let close = false;
  for (let pos = eol + 2; pos < end; pos = eol + 2) {
    eol = requestLineEnd(buf, pos, end);
    if (eol < 0) return null;
    const colon = fieldColon(buf, pos, eol);
    if (colon < 0) return null;
    let a = colon + 1;
    let b = eol;
    while (a < b && (buf[a] === 32 || buf[a] === 9)) a++;
    while (b > a && (buf[b - 1] === 32 || buf[b - 1] === 9)) b--;
    const name = buf.toString('latin1', pos, colon);
    const value = a === b ? '' : buf.toString('latin1', a, b);
    if (FULL_PATH_LENGTH[name.length] === 1) {
      const lower = name.toLowerCase();
      if (FULL_PATH_HEADERS.has(lower)) return null;
      if (lower === 'connection') {
        const v = value.toLowerCase();
        if (v === 'close') close = true;
        else if (v !== 'keep-alive') return null;
      }
    }
    raw.push(name, value);
  }
  return { method, close, target, raw };
}

const SP_HTTP_11 = Buffer.from(' HTTP/1.1', 'latin1');

/**
 * Where the colon after a header field's name is, in the line buf[pos, eol): -1 unless the line
 * starts with a token (RFC 9110 tchar; bytes past ASCII are not) directly followed by a colon.
 */
function fieldColon(buf: Buffer, pos: number, eol: number): number {
  let colon = pos;
  for (; colon < eol; colon++) {
    const c = buf[colon] as number;
    if (c === 58) break;
    if (TOKEN[c] !== 1) return -1; // TOKEN has 128 entries: a byte past ASCII reads undefined
  }
  return colon === pos || colon === eol ? -1 : colon;
}

/**
 * Where the request line or header line from `pos` ends (its CR), or -1 for a byte the lean path
 * does not take: anything but HTAB and visible ASCII or space, or a CR or LF not in a CRLF pair.
 */
function requestLineEnd(buf: Buffer, pos: number, end: number): number {
  for (let i = pos; i < end; i++) {
    const c = buf[i] as number;
    if ((c >= 32 && c < 127) || c === 9) continue;
    if (c === 13 && i + 1 < end && buf[i + 1] === 10) return i;
    return -1;
  }
  return end;
}

/**
 * Finds where a chunked body ends. Fed the body's bytes in order; `scan` returns the index just
 * past the message's end within the chunk given, -1 when it has not ended yet, or -2 when the
 * framing is malformed (the response is cut then).
 */
export class ChunkedScanner {
  private state = 0;
  private size = 0;
  private digits = 0;
  private line = 0;
  private trailers = 0;

  scan(buf: Buffer, start: number): number {
    const n = buf.length;
    let i = start;
    while (i < n) {
      const c = buf[i] as number;
      switch (this.state) {
        case 0: {
          // chunk-size
          const v = hex(c);
          if (v >= 0) {
            if (++this.digits > 12) return -2;
            this.size = this.size * 16 + v;
          } else if (this.digits === 0) return -2;
          else if (c === 0x0d) this.state = 2;
          else if (c === 0x3b /* ; */ || c === 0x20 || c === 0x09) this.state = 1;
          else return -2;
          this.line++;
          i++;
          break;
        }
        case 1: // chunk extensions (ignored, bounded)
          if (c === 0x0d) this.state = 2;
          else if ((c < 0x20 && c !== 0x09) || c === 0x7f) return -2;
          if (++this.line > CHUNK_LINE_MAX) return -2;
          i++;
          break;
        case 2: // LF after the size line
          if (c !== 0x0a) return -2;
          i++;
          this.line = 0;
          this.digits = 0;
          this.state = this.size === 0 ? 6 : 3;
          break;
        case 3: {
          // chunk data
          const take = Math.min(this.size, n - i);
          this.size -= take;
          i += take;
          if (this.size === 0) this.state = 4;
          break;
        }
        case 4:
          if (c !== 0x0d) return -2;
          this.state = 5;
          i++;
          break;
        case 5:
          if (c !== 0x0a) return -2;
          this.state = 0;
          i++;
          break;
        case 6: // start of a trailer line, or the final CRLF
          if (c === 0x0d) this.state = 9;
          else if (c === 0x0a || c < 0x20 || c === 0x7f) return -2;
          else this.state = 7;
          if (++this.trailers > TRAILERS_MAX) return -2;
          i++;
          break;
        case 7: // a trailer line
          if (c === 0x0d) this.state = 8;
          else if ((c < 0x20 && c !== 0x09) || c === 0x7f) return -2;
          if (++this.trailers > TRAILERS_MAX) return -2;
          i++;
          break;
        case 8:
          if (c !== 0x0a) return -2;
          if (++this.trailers > TRAILERS_MAX) return -2;
          this.state = 6;
          i++;
          break;
        case 9:
          if (c !== 0x0a) return -2;
          this.state = 10;
          return i + 1;
        default:
          return -2;
      }
    }
    return -1;
  }
}

function hex(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** A backend's response head, parsed: null when it is not a valid HTTP/1.x response head. */
interface ResponseHead {
  status: number;
  reason: string;
  /**
   * The header lines to send on as they came (hop-by-hop dropped): flat [start, end) byte ranges
   * of the head, each line with its CRLF.
   */
  lines: number[];
  /** Body framing: a length, chunked, or until the backend closes. */
  length: number;
  chunked: boolean;
  /** The backend connection may carry another request afterwards. */
  reusable: boolean;
  /** `Keep-Alive: timeout=N` of the backend, in ms, when it said. */
  keepAliveMs: number | undefined;
}

/**
 * Where the line from `pos` ends (its CR) in a response head ending at `end`, or -1 for a byte no
 * head may hold: a control byte other than HTAB, DEL, or a CR or LF not in a CRLF pair. (Bytes of
 * the Buffer: charCodeAt over a string of the head was three times slower.)
 */
function lineEnd(buf: Buffer, pos: number, end: number): number {
  for (let i = pos; i < end; i++) {
    const c = buf[i] as number;
    if (c >= 32) {
      if (c === 127) return -1;
      continue;
    }
    if (c === 9) continue;
    if (c === 13 && i + 1 < end && buf[i + 1] === 10) return i;
    return -1;
  }
  return end;
}

/** Whether the field name at buf[pos, pos + lower.length) is `lower` (lower-case letters and '-'), in any case. */
function nameIs(buf: Buffer, pos: number, lower: Uint8Array): boolean {
  for (let i = 0; i < lower.length; i++) if (((buf[pos + i] as number) | 0x20) !== lower[i]) return false;
  return true;
}
const CONTENT_LENGTH = Buffer.from('content-length', 'latin1');
const CONNECTION = Buffer.from('connection', 'latin1');
const KEEP_ALIVE = Buffer.from('keep-alive', 'latin1');
const CLOSE = Buffer.from('close', 'latin1');
const TIMEOUT_IS = Buffer.from('timeout=', 'latin1');
const HTTP_1 = Buffer.from('HTTP/1.', 'latin1');

/** Parses `buf[0, end)`, a response head without its blank line. */
export function parseResponseHead(buf: Buffer, end: number): ResponseHead | null {
  // Field values may carry obs-text (0x80–0xFF); no control byte but HTAB, and CR only before LF.
  // Read as bytes: strings are made only of what is interpreted (the reason, hop-by-hop fields).
  let eol = lineEnd(buf, 0, end);
  if (eol < 0) return null;
  // HTTP/1.x SP 3DIGIT [SP reason]
  if (eol < 12 || buf.compare(HTTP_1, 0, 7, 0, 7) !== 0 || buf[8] !== 32) return null;
  const minor = buf[7] as number;
  if (minor !== 49 && minor !== 48) return null;
  const d0 = (buf[9] as number) - 48;
  const d1 = (buf[10] as number) - 48;
  const d2 = (buf[11] as number) - 48;
  if (d0 < 1 || d0 > 5 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) return null;
  const status = d0 * 100 + d1 * 10 + d2;
  if (eol > 12 && buf[12] !== 32) return null;
  const reason = eol > 13 ? buf.toString('latin1', 13, eol) : '';
  const lines: number[] = [];
  let length = -1;
  let te: string | undefined;
  let connection: string | undefined;
  let keepAliveMs: number | undefined;
  let closes = false;
  let keepAlive = false;
  for (let pos = eol + 2; pos < end; pos = eol + 2) {
    eol = lineEnd(buf, pos, end);
    if (eol < 0) return null;
    // A token, a colon, the value without the spaces and tabs around it.
    const colon = fieldColon(buf, pos, eol);
    if (colon < 0) return null;
    // Lines are passed on as they are; only framing and hop-by-hop candidates are read (by length).
    const nameLength = colon - pos;
    if (HOP_LENGTH[nameLength] === 1) {
      let vs = colon + 1;
      let ve = eol;
      while (vs < ve && (buf[vs] === 32 || buf[vs] === 9)) vs++;
      while (ve > vs && (buf[ve - 1] === 32 || buf[ve - 1] === 9)) ve--;
      if (nameLength === 14 && nameIs(buf, pos, CONTENT_LENGTH)) {
        // 1 to 15 digits
        if (ve === vs || ve - vs > 15) return null;
        let n = 0;
        for (let i = vs; i < ve; i++) {
          const d = (buf[i] as number) - 48;
          if (d < 0 || d > 9) return null;
          n = n * 10 + d;
        }
        if (length !== -1 && length !== n) return null;
        length = n;
      } else if (nameLength === 10 && nameIs(buf, pos, CONNECTION) && ve - vs === 10 && nameIs(buf, vs, KEEP_ALIVE)) {
        keepAlive = true; // the common values, read without a string
        continue;
      } else if (nameLength === 10 && nameIs(buf, pos, CONNECTION) && ve - vs === 5 && nameIs(buf, vs, CLOSE)) {
        closes = true;
        continue;
      } else if (nameLength === 10 && nameIs(buf, pos, KEEP_ALIVE) && ve - vs > 8 && ve - vs <= 14 && nameIs(buf, vs, TIMEOUT_IS)) {
        // "timeout=N" alone, as Node and most servers send it
        let n = 0;
        for (let i = vs + 8; i < ve && n >= 0; i++) {
          const d = (buf[i] as number) - 48;
          n = d < 0 || d > 9 ? -1 : n * 10 + d;
        }
        if (n >= 0) keepAliveMs = n * 1000;
        continue;
      } else {
        const lower = buf.toString('latin1', pos, colon).toLowerCase();
        const value = buf.toString('latin1', vs, ve);
        if (lower === 'transfer-encoding') {
          if (te !== undefined) return null;
          te = value.toLowerCase();
          continue;
        } else if (lower === 'connection') {
          connection = connection === undefined ? value.toLowerCase() : `${connection},${value.toLowerCase()}`;
          continue;
        } else if (lower === 'keep-alive') {
          const k = /(?:^|[,;\s])timeout\s*=\s*(\d{1,6})/i.exec(value);
          if (k) keepAliveMs = Number(k[1]) * 1000;
          continue;
        } else if (HOP_BY_HOP_RESPONSE.has(lower)) continue;
      }
    }
    lines.push(pos, eol + 2);
  }
  let chunked = false;
  if (te !== undefined) {
    // Only plain chunked is relayed here; a response with both framings is refused (smuggling).
    if (te !== 'chunked' || length !== -1) return null;
    chunked = true;
  }
  let named: Set<string> | undefined;
  if (connection !== undefined) {
    for (const token of connection.split(',')) {
      const t = token.trim();
      if (t === 'close') closes = true;
      else if (t === 'keep-alive') keepAlive = true;
      else if (t !== '') (named ??= new Set()).add(t);
    }
  }
  const reusable = !closes && (minor === 49 || keepAlive);
  return { status, reason, lines: named ? dropNamed(buf.toString('latin1', 0, end), lines, named) : lines, length, chunked, reusable, keepAliveMs };
}

/** Removes the lines of the fields a Connection header names (hop-by-hop by declaration). */
function dropNamed(text: string, lines: number[], named: ReadonlySet<string>): number[] {
  const out: number[] = [];
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const start = lines[i] as number;
    if (!named.has(text.slice(start, text.indexOf(':', start)).toLowerCase())) out.push(start, lines[i + 1] as number);
  }
  return out;
}

/** The header lines of `res` in `head` (the bytes it was parsed from), as text without CRLFs. */
export function responseLines(head: Buffer, res: ResponseHead): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < res.lines.length; i += 2) out.push(head.toString('latin1', res.lines[i], (res.lines[i + 1] as number) - 2));
  return out;
}

/** A keep-alive connection to a backend, owned by one client connection while a request is on it. */
export class Upstream {
  readonly socket: net.Socket;
  owner: LeanConnection | null = null;
  connected = false;
  /** Requests this connection has carried (0: fresh). */
  uses = 0;
  idleMs = UPSTREAM_IDLE_MS;
  /** While pooled: when it expires (performance.now() ms). */
  idleUntil = 0;
  error: Error | null = null;
  closed = false;
  private timeoutMs = -1;

  constructor(
    readonly address: string,
    private readonly pool: UpstreamPool,
    connectTimeoutMs: number,
  ) {
    const colon = address.lastIndexOf(':');
    let host = address.slice(0, colon);
    if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
    const socket = net.connect({ host, port: Number(address.slice(colon + 1)), noDelay: true, onread: { buffer: UPSTREAM_READ_BUFFER, callback: this.onRead } });
    this.socket = socket;
    this.timeout(connectTimeoutMs);
    socket.on('connect', this.onConnect);
    socket.on('end', this.onEnd);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
    socket.on('timeout', this.onTimeout);
  }

  private readonly onConnect = (): void => {
    this.connected = true;
    this.owner?.onUpstreamConnect(this);
  };

  /** `n` bytes in `buf` (the shared read buffer: valid during this call only). */
  private readonly onRead = (n: number, buf: Buffer): boolean => {
    if (this.owner) this.owner.onUpstreamData(this, buf.subarray(0, n));
    else this.socket.destroy(); // bytes nobody asked for: the connection is out of step
    return true;
  };

  private readonly onEnd = (): void => {
    if (this.owner) this.owner.onUpstreamEnd(this);
    else this.socket.destroy();
  };

  private readonly onError = (err: Error): void => {
    this.error ??= err;
  };

  private readonly onClose = (): void => {
    this.closed = true;
    this.pool.forget(this);
    const owner = this.owner;
    this.owner = null;
    owner?.onUpstreamClose(this, this.error);
  };

  private readonly onTimeout = (): void => {
    if (this.owner) this.owner.onUpstreamTimeout(this);
    else this.socket.destroy();
  };

  /**
   * The socket's inactivity timeout. Set again only when it changes: every read and write restarts
   * it anyway, and a new timer per call cost a little on every request.
   */
  timeout(ms: number): void {
    if (ms === this.timeoutMs) return;
    this.timeoutMs = ms;
    this.socket.setTimeout(ms);
  }

  destroy(): void {
    this.owner = null;
    this.socket.destroy();
  }
}

/** Idle keep-alive backend connections per backend address (most recently used first out). */
export class UpstreamPool {
  private readonly idle = new Map<string, Upstream[]>();
  /**
   * Idle connections expire by one timer for the pool, armed for the earliest expiry, not by a
   * socket timer set and reset on every request (a request's connection keeps its in-flight
   * timeout all along).
   */
  private sweepTimer: NodeJS.Timeout | null = null;
  private sweepAt = Infinity;

  constructor(private readonly connectTimeoutMs: number) {}

  /** An idle connection to `address` that has not expired, or a new one (connecting). */
  take(address: string, fresh = false): Upstream {
    const list = fresh ? undefined : this.idle.get(address);
    if (list) {
      const now = performance.now();
      for (let up = list.pop(); up; up = list.pop()) {
        if (up.closed || up.socket.destroyed) continue;
        if (now < up.idleUntil) return up;
        up.destroy();
      }
    }
    return new Upstream(address, this, this.connectTimeoutMs);
  }

  /** Keeps a connection whose response is complete for the next request, for its idleMs. */
  put(up: Upstream): void {
    let list = this.idle.get(up.address);
    if (up.closed || up.idleMs <= 0 || (list !== undefined && list.length >= UPSTREAM_IDLE_MAX)) {
      up.destroy();
      return;
    }
    if (!list) this.idle.set(up.address, (list = []));
    up.owner = null;
    up.idleUntil = performance.now() + up.idleMs;
    list.push(up);
    if (up.idleUntil < this.sweepAt) this.arm(up.idleUntil);
  }

  private arm(at: number): void {
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    this.sweepAt = at;
    this.sweepTimer = setTimeout(this.sweep, Math.max(1, Math.ceil(at - performance.now())));
    this.sweepTimer.unref();
  }

  /** Closes the idle connections that have expired; arms the timer for the next expiry. */
  private readonly sweep = (): void => {
    this.sweepTimer = null;
    this.sweepAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const [address, list] of this.idle) {
      for (let i = list.length - 1; i >= 0; i--) {
        const up = list[i] as Upstream;
        if (now >= up.idleUntil) {
          list.splice(i, 1);
          up.destroy();
        } else if (up.idleUntil < next) next = up.idleUntil;
      }
      if (list.length === 0) this.idle.delete(address);
    }
    if (next < Infinity) this.arm(next);
  };

  forget(up: Upstream): void {
    const list = this.idle.get(up.address);
    if (!list) return;
    const i = list.indexOf(up);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.idle.delete(up.address);
  }

  /** Closes the idle connections of backends not in `live` (all of them without it). */
  prune(live?: ReadonlySet<string>): void {
    for (const [address, list] of this.idle) {
      if (live?.has(address)) continue;
      this.idle.delete(address);
      for (const up of list) up.destroy();
    }
    if (this.idle.size === 0 && this.sweepTimer) {
      clearTimeout(this.sweepTimer);
      this.sweepTimer = null;
      this.sweepAt = Infinity;
    }
  }
}

/** What the lean path needs of the proxy around it. */
export interface LeanHost {
  readonly core: ProxyCore;
  readonly upstreams: UpstreamPool;
  readonly limits: HeadLimits;
  readonly maxHeaderBytes: number;
  readonly keepAliveMs: number;
  readonly headersTimeoutMs: number;
  /** Whether every request must take the full path now (an ACME challenge is being answered). */
  fullPathOnly(): boolean;
  /** Gives the connection to Node's HTTP server (the full path), `pending` to be read first. */
  handOff(socket: net.Socket, pending: Buffer | null): void;
  requestStarted(): void;
  requestEnded(): void;
  connectionClosed(conn: LeanConnection): void;
}

/**
 * One client connection on the lean path: reads request heads, sends each to a backend, relays
 * the response, one request at a time (pipelined requests wait in `buffered`, bounded).
 */
export class LeanConnection {
  private buffered: Buffer | null = null;
  private inflight = false;
  private clientEnded = false;
  private gone = false;
  private paused = false;
  // the request in flight
  private head: LeanHead | null = null;
  private upstreamHead = '';
  private route: Route | null = null;
  private address = '';
  private fwdHost: string | undefined;
  private path = '';
  private tried: Set<string> | null = null;
  /** The backend's in-flight count is held (core.acquire) for the current attempt. */
  private acquired = false;
  /** A reused backend connection broke before any response byte: retried once on a fresh one. */
  private staleRetried = false;
  /** The first request has come: idle time is the keep-alive timeout from now on. */
  private served = false;
  private t0 = 0;
  private up: Upstream | null = null;
  /** 0 waiting for the response head, 1 relaying its body, 2 done. */
  private phase = 0;
  /** A response head not complete yet: `resHeadLength` bytes kept in `resHead` (grown by doubling). */
  private resHead: Buffer | null = null;
  private resHeadLength = 0;
  private remaining = 0;
  private scanner: ChunkedScanner | null = null;
  private untilClose = false;
  private reusable = false;
  private closeAfter = false;
  private status = 0;
  private headersTimedOut = false;
  /** Bytes of the current request's response went to the client. */
  private responseStarted = false;

  constructor(
    private readonly host: LeanHost,
    readonly socket: net.Socket,
  ) {
    socket.setNoDelay(true);
    // A new connection must send its first head within the head timeout, as on the full path.
    socket.setTimeout(host.headersTimeoutMs);
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onClose);
    socket.on('error', this.onError);
    socket.on('timeout', this.onTimeout);
    socket.on('drain', this.onDrain);
  }

  /** Whether no request is in flight (close() ends such connections at once). */
  get idle(): boolean {
    return !this.inflight;
  }

  destroy(): void {
    this.socket.destroy();
  }

  // ---- client side ---------------------------------------------------------------------

  private readonly onData = (chunk: Buffer): void => {
    this.buffered = this.buffered === null ? chunk : Buffer.concat([this.buffered, chunk]);
    if (this.inflight) {
      // Pipelined bytes wait for the response in flight; bounded by pausing the socket.
      if (this.buffered.length > this.host.maxHeaderBytes && !this.paused) {
        this.paused = true;
        this.socket.pause();
      }
      return;
    }
    try {
      this.next();
    } catch (err) {
      this.fail(err);
    }
  };

  /**
   * The connection's error boundary: anything that throws here is a bug in the proxy. It is
   * logged, the client gets a 500 if nothing of a response was sent (else a cut connection), and
   * only this connection closes.
   */
  private fail(err: unknown): void {
    this.host.core.log.error({ err, path: this.path.slice(0, 200) }, 'proxy request failed');
    try {
      const up = this.up;
      this.up = null;
      up?.destroy();
      this.releaseBackend();
      if (!this.responseStarted && !this.gone) {
        this.socket.end(`HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: ${INTERNAL_ERROR.length}\r\nConnection: close\r\n\r\n${INTERNAL_ERROR}`);
        this.endRequest(500);
        this.gone = true;
        this.socket.destroySoon();
        return;
      }
      this.endRequest(this.status);
    } catch {
      // nothing more to do
    }
    this.gone = true;
    this.socket.destroy();
  }

  /** Takes the next request from `buffered`, or hands the connection off. */
  private next(): void {
    const buf = this.buffered;
    if (buf === null || this.gone) return;
    const end = buf.indexOf(CRLF2);
    if (end < 0 || end + 4 > this.host.maxHeaderBytes) return this.handOff();
    const host = this.host;
    if (host.fullPathOnly()) return this.handOff();
    let head: LeanHead | null;
    try {
      head = parseLeanHead(buf, end);
    } catch {
      head = null;
    }
    if (head === null) return this.handOff();
    const parsed = parseRequestHead(head.target, head.raw, clientAddress(this.socket.remoteAddress), false, host.limits, 'http');
    if (!parsed.ok) return this.handOff();
    const core = host.core;
    const m = core.table.match(parsed.fwd.host, parsed.path);
    if (m.kind !== 'route' || m.route.tls) return this.handOff();
    const address = core.first(m.route);
    if (address === undefined) return this.handOff();
    // Taken: the head's bytes are consumed.
    this.buffered = end + 4 === buf.length ? null : buf.subarray(end + 4);
    let text = `${head.method} ${parsed.path} HTTP/1.1\r\n`;
    const h = parsed.fwd.headers;
    for (let i = 0; i + 1 < h.length; i += 2) text += `${h[i] as string}: ${h[i + 1] as string}\r\n`;
    this.head = head;
    this.upstreamHead = `${text}\r\n`;
    this.route = m.route;
    this.address = address;
    this.fwdHost = parsed.fwd.host;
    this.path = parsed.path;
    this.tried = null;
    this.staleRetried = false;
    if (!this.served) {
      this.served = true;
      this.socket.setTimeout(host.keepAliveMs);
    }
    this.t0 = performance.now();
    this.inflight = true;
    this.responseStarted = false;
    this.closeAfter = head.close || core.closing;
    host.requestStarted();
    this.send();
  }

  /** Gives this connection to the full path, with what was read and not handled. */
  private handOff(): void {
    const s = this.socket;
    s.off('data', this.onData);
    s.off('end', this.onEnd);
    s.off('close', this.onClose);
    s.off('error', this.onError);
    s.off('timeout', this.onTimeout);
    s.off('drain', this.onDrain);
    s.setTimeout(0);
    this.gone = true;
    const pending = this.buffered;
    this.buffered = null;
    this.host.connectionClosed(this);
    this.host.handOff(s, pending);
  }

  /**
   * The client half-closed. As Node's server does (httpAllowHalfOpen off), a request in flight is
   * abandoned (499) and the connection ends.
   */
  private readonly onEnd = (): void => {
    this.clientEnded = true;
    if (this.inflight) this.abandon();
    this.endClient();
  };

  /** The client is gone while its request is in flight: the backend connection is mid-exchange. */
  private abandon(): void {
    const up = this.up;
    this.up = null;
    up?.destroy();
    this.releaseBackend();
    this.endRequest(CLIENT_CLOSED);
  }

  private readonly onClose = (): void => {
    if (this.gone) return;
    this.gone = true;
    this.host.connectionClosed(this);
    if (this.inflight) this.abandon();
  };

  private readonly onError = (): void => undefined; // 'close' follows

  private readonly onTimeout = (): void => {
    // A request in flight is bounded by the backend's timeouts.
    if (this.inflight) return;
    if (!this.served) {
      // No head on a new connection in time: 408, as Node's server answers it on the full path.
      this.host.core.countRequest('-', 408);
      this.socket.end('HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    }
    this.socket.destroy();
  };

  private readonly onDrain = (): void => {
    this.up?.socket.resume();
  };

  private endClient(): void {
    if (this.gone) return;
    this.socket.end();
  }

  // ---- backend side --------------------------------------------------------------------

  private send(fresh = false): void {
    const up = this.host.upstreams.take(this.address, fresh);
    up.owner = this;
    this.up = up;
    this.phase = 0;
    this.resHead = null;
    this.resHeadLength = 0;
    this.headersTimedOut = false;
    this.acquired = true;
    this.host.core.acquire(this.address);
    if (up.connected) {
      up.timeout(this.host.core.headersTimeoutMs);
      up.socket.resume();
    }
    up.socket.write(this.upstreamHead, 'latin1');
  }

  onUpstreamConnect(up: Upstream): void {
    if (up !== this.up) return;
    up.timeout(this.host.core.headersTimeoutMs);
  }

  /** `chunk` is lent for this call only (the shared read buffer): what is kept is copied. */
  onUpstreamData(up: Upstream, chunk: Buffer): void {
    if (up !== this.up) return;
    try {
      this.relay(up, chunk);
    } catch (err) {
      this.fail(err);
    }
  }

  private relay(up: Upstream, chunk: Buffer): void {
    if (this.phase === 0) {
      if (this.resHeadLength === 0) return this.onResponseBytes(chunk, 0);
      // A head in pieces (a backend may send it a byte at a time): appended to one growing
      // buffer and searched from where the last search stopped, so it costs linear time.
      const kept = this.resHeadLength;
      this.keepHead(chunk, 0);
      this.onResponseBytes((this.resHead as Buffer).subarray(0, this.resHeadLength), Math.max(0, kept - 3));
    } else if (this.phase === 1) {
      this.relayBody(chunk, 0);
    } else {
      up.destroy(); // bytes after the response: out of step
    }
  }

  /**
   * Parses the response head from `buf` once complete (skipping 1xx), then relays. `from`: where
   * the search for the head's end may start (what came before it was searched already).
   */
  private onResponseBytes(buf: Buffer, from: number): void {
    let start = 0;
    for (;;) {
      const end = buf.indexOf(CRLF2, Math.max(start, from));
      if (end < 0) {
        if (buf.length - start > RESPONSE_HEAD_MAX_BYTES) return this.badResponse();
        // Kept for the next read (out of the lent read buffer, or moved to the front of its own).
        const own = this.resHead;
        if (own !== null && buf.buffer === own.buffer && buf.byteOffset === own.byteOffset) {
          if (start > 0) own.copyWithin(0, start, this.resHeadLength);
          this.resHeadLength -= start;
        } else {
          this.resHeadLength = 0;
          this.keepHead(buf, start);
        }
        return;
      }
      if (end - start > RESPONSE_HEAD_MAX_BYTES) return this.badResponse();
      const view = start === 0 ? buf : buf.subarray(start);
      const res = parseResponseHead(view, end - start);
      if (res === null || res.status === 101) return this.badResponse();
      if (res.status < 200) {
        start = end + 4;
        continue;
      }
      this.resHead = null;
      this.resHeadLength = 0;
      // The head's line ranges count from `view`.
      this.respond(res, view, end + 4 - start);
      return;
    }
  }

  /** Appends `buf[start..]` to the kept head, growing its buffer by doubling. */
  private keepHead(buf: Buffer, start: number): void {
    const n = buf.length - start;
    const need = this.resHeadLength + n;
    if (this.resHead === null || need > this.resHead.length) {
      const grown = Buffer.allocUnsafe(Math.max(1024, need, 2 * (this.resHead?.length ?? 0)));
      if (this.resHead !== null) this.resHead.copy(grown, 0, 0, this.resHeadLength);
      this.resHead = grown;
    }
    buf.copy(this.resHead, this.resHeadLength, start);
    this.resHeadLength = need;
  }

  private respond(res: ResponseHead, buf: Buffer, bodyStart: number): void {
    const core = this.host.core;
    const up = this.up as Upstream;
    const route = this.route as Route;
    core.observeUpstream(route.service, (performance.now() - this.t0) / 1000);
    this.status = res.status;
    this.phase = 1;
    this.responseStarted = true;
    const noBody = this.head?.method === 'HEAD' || res.status === 204 || res.status === 304;
    this.scanner = null;
    this.untilClose = false;
    this.remaining = 0;
    let framing = '';
    if (noBody) {
      // no body follows, whatever the headers say
    } else if (res.chunked) {
      this.scanner = new ChunkedScanner();
      framing = 'Transfer-Encoding: chunked\r\n';
    } else if (res.length >= 0) {
      this.remaining = res.length;
    } else {
      this.untilClose = true;
      this.closeAfter = true;
    }
    this.reusable = res.reusable && !this.untilClose;
    if (res.keepAliveMs !== undefined) up.idleMs = Math.max(0, Math.min(UPSTREAM_IDLE_MS, res.keepAliveMs - UPSTREAM_IDLE_MARGIN_MS));
    if (core.closing) this.closeAfter = true;
    // The head: a status line of our own, the backend's lines as they came, framing, the blank line.
    const status = `HTTP/1.1 ${res.status} ${res.reason || http.STATUS_CODES[res.status] || ''}\r\n`;
    const tail = `${framing}${this.closeAfter ? 'Connection: close\r\n' : ''}\r\n`;
    const lines = res.lines;
    let headLength = status.length + tail.length;
    for (let i = 0; i + 1 < lines.length; i += 2) headLength += (lines[i + 1] as number) - (lines[i] as number);
    up.timeout(core.idleTimeoutMs);
    const rest = buf.length - bodyStart;
    // The common small response: head and the whole body in one write.
    const whole = !noBody && this.remaining > 0 && rest === this.remaining && rest + headLength <= ONE_WRITE_MAX;
    const out = Buffer.allocUnsafe(whole ? headLength + rest : headLength);
    let at = out.write(status, 0, 'latin1');
    for (let i = 0; i + 1 < lines.length; i += 2) at += buf.copy(out, at, lines[i] as number, lines[i + 1] as number);
    at += out.write(tail, at, 'latin1');
    if (noBody) {
      this.socket.write(out);
      if (buf.length > bodyStart) this.reusable = false;
      return this.complete();
    }
    if (whole) {
      buf.copy(out, at, bodyStart);
      this.remaining = 0;
      this.socket.write(out);
      return this.complete();
    }
    this.socket.cork();
    this.socket.write(out);
    if (rest > 0) this.relayBody(buf, bodyStart);
    else if (!this.scanner && !this.untilClose && this.remaining === 0) this.complete();
    process.nextTick(uncork, this.socket);
  }

  private relayBody(buf: Buffer, start: number): void {
    let end = buf.length;
    let done = false;
    if (this.scanner) {
      const at = this.scanner.scan(buf, start);
      if (at === -2) return this.cutResponse(new Error('malformed chunked response body'));
      if (at >= 0) {
        end = at;
        done = true;
      }
    } else if (!this.untilClose) {
      if (end - start >= this.remaining) {
        end = start + this.remaining;
        done = true;
      }
      this.remaining -= end - start;
    }
    if (end < buf.length) this.reusable = false; // bytes past the response: do not reuse
    if (end > start) {
      // A copy: the socket may hold on to what it is given (a partial write, a corked socket),
      // and `buf` may be the lent read buffer.
      const ok = this.socket.write(Buffer.from(buf.subarray(start, end)));
      if (!ok && !done) this.up?.socket.pause();
    }
    if (done) this.complete();
  }

  onUpstreamEnd(up: Upstream): void {
    if (up !== this.up) return;
    if (this.phase === 1 && this.untilClose) {
      this.reusable = false;
      this.complete();
      return;
    }
    up.socket.destroy(Object.assign(new Error('the backend closed the connection'), { code: 'UND_ERR_SOCKET' }));
  }

  onUpstreamTimeout(up: Upstream): void {
    if (up !== this.up) return;
    if (this.phase === 1) {
      up.socket.destroy(Object.assign(new Error('backend body timeout'), { code: 'UND_ERR_BODY_TIMEOUT' }));
      return;
    }
    if (up.connected) {
      this.headersTimedOut = true;
      up.socket.destroy(Object.assign(new Error('backend headers timeout'), { code: 'UND_ERR_HEADERS_TIMEOUT' }));
    } else {
      up.socket.destroy(Object.assign(new Error('connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' }));
    }
  }

  onUpstreamClose(up: Upstream, err: Error | null): void {
    if (up !== this.up || !this.inflight) return;
    this.up = null;
    const core = this.host.core;
    const route = this.route as Route;
    const error = err ?? Object.assign(new Error('the backend closed the connection'), { code: 'UND_ERR_SOCKET' });
    if (this.phase !== 0) {
      // The response has begun: the only honest signal left is a cut connection.
      core.upstreamFailed({ service: route.service, address: this.address, err: error, phase: 'response', retry: false });
      this.releaseBackend();
      this.socket.destroy();
      this.endRequest(this.status);
      return;
    }
    this.releaseBackend();
    const connectPhase = !up.connected;
    if (connectPhase) core.connectFailed(this.address);
    else if (up.uses > 0 && !this.headersTimedOut && !this.staleRetried) {
      // A kept-alive connection the backend had closed (the request met its FIN or RST before any
      // response byte): once more on a fresh connection to the same backend, as nginx does.
      this.staleRetried = true;
      this.send(true);
      return;
    }
    // Nothing of a response came: GET and HEAD may go to the next backend, unless the backend
    // was given its time to answer and did not (a response-headers timeout: 504, not retried).
    const next = this.headersTimedOut ? undefined : this.nextBackend();
    core.upstreamFailed({ service: route.service, address: this.address, err: error, phase: connectPhase ? 'connect' : 'request', retry: next !== undefined });
    if (next) {
      this.route = next.route;
      this.address = next.address;
      this.send();
      return;
    }
    const code = (error as { code?: unknown }).code;
    const timeout = code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT';
    this.replyError(timeout ? 504 : 502);
  }

  private nextBackend(): { route: Route; address: string } | undefined {
    const tried = (this.tried ??= new Set());
    tried.add(this.address);
    return this.host.core.next(this.fwdHost, this.path, tried, this.address);
  }

  private badResponse(): void {
    const up = this.up;
    this.up = null;
    up?.destroy();
    const core = this.host.core;
    const route = this.route as Route;
    this.releaseBackend();
    core.upstreamFailed({ service: route.service, address: this.address, err: new Error('invalid upstream response head'), phase: 'request', retry: false });
    this.replyError(502);
  }

  private cutResponse(err: Error): void {
    const up = this.up;
    this.up = null;
    up?.destroy();
    const core = this.host.core;
    core.upstreamFailed({ service: (this.route as Route).service, address: this.address, err, phase: 'response', retry: false });
    this.releaseBackend();
    this.socket.destroy();
    this.endRequest(this.status);
  }

  private replyError(status: 502 | 504): void {
    const core = this.host.core;
    const payload = JSON.stringify({ error: status === 504 ? 'upstream timed out' : 'upstream unavailable', service: (this.route as Route).service });
    if (core.closing) this.closeAfter = true;
    this.responseStarted = true;
    this.socket.write(
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(payload)}\r\n${this.closeAfter ? 'Connection: close\r\n' : ''}\r\n${payload}`,
      'latin1',
    );
    this.endRequest(status);
    this.afterResponse();
  }

  /** The response is complete: the backend connection goes back to the pool (or closes). */
  private complete(): void {
    const up = this.up;
    this.up = null;
    this.phase = 2;
    const core = this.host.core;
    if (up) {
      up.uses++;
      if (this.reusable && !core.closing) this.host.upstreams.put(up);
      else up.destroy();
    }
    this.releaseBackend();
    this.endRequest(this.status);
    this.afterResponse();
  }

  private releaseBackend(): void {
    if (!this.acquired) return;
    this.acquired = false;
    this.host.core.release(this.address);
  }

  private endRequest(status: number): void {
    if (!this.inflight) return;
    this.inflight = false;
    this.head = null;
    this.host.core.countRequest((this.route as Route).service, status);
    this.host.requestEnded();
  }

  /** After a response: close when asked to, else the next request. */
  private afterResponse(): void {
    if (this.gone) return;
    if (this.closeAfter || this.host.core.closing || this.clientEnded) return this.endClient();
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
    if (this.buffered !== null) this.next();
  }
}

function uncork(socket: net.Socket): void {
  socket.uncork();
}
