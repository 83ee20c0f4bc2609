import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import { type AttemptBody, RequestBody } from './body.js';
import type { ProxyCore } from './core.js';
import { downstreamResponseHeaders, type UpstreamHeaders } from './headers.js';
import type { Route } from './table.js';
import { CLIENT_CLOSED } from './types.js';

/** Methods whose request may be sent twice (RFC 9110 §9.2.2). */
export const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** Errors of a connection that never carried the request: nothing reached the backend. */
const CONNECT_ERRORS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EADDRNOTAVAIL',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'ETIMEDOUT',
]);
/** Errors of a connection that broke after the request was written, before any response byte. */
const RESET_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'UND_ERR_SOCKET']);
const TIMEOUT_ERRORS = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

type Phase = 'connect' | 'request' | 'response';

const clientClosedError = () => Object.assign(new Error('client closed the connection'), { code: 'ORCA_PROXY_CLIENT_CLOSED' });

/**
 * One proxied HTTP request: picks backends, streams both ways, retries when safe, answers.
 * It is its own undici dispatch handler (the legacy callback API, which undici 7 runs natively;
 * the controller API goes through a wrapper that re-parses headers on every response).
 *
 * Retry rules (SPEC §3.5). An attempt that fails before any response byte arrived is retried on
 * the next backend of the route in round-robin order, each backend at most once, when either
 *  (a) it failed to connect (refused, reset or unreachable while connecting, connect timeout):
 *      nothing was written to that backend — undici hands a request to a socket only once it is
 *      connected, and the body is read only then — so any method qualifies;
 *  (b) the connection broke (reset, hang-up) after the request was handed to it, and the method
 *      is idempotent (GET, HEAD, OPTIONS, PUT, DELETE, TRACE): the backend may have seen it, which
 *      only such a method allows. What was read of its body is kept, up to
 *      REPLAY_BUFFER_MAX_BYTES, and sent again; a bigger body is not retried.
 * A POST (or PATCH, …) that may have reached a backend is never sent twice, even without a body;
 * a response-headers timeout is never retried (the backend may be working on it). When no
 * backend is left: 504 if the last failure was a timeout, else 502.
 * After the response has started nothing is retried: the client's connection is cut.
 */
export class Exchange implements Dispatcher.DispatchHandler {
  private corked = false;
  private route: Route;
  private address = '';
  private tried: Set<string> | null = null;
  private readonly body: RequestBody | null;
  private attemptBody: AttemptBody | null = null;
  private abortUpstream: ((err?: Error) => void) | null = null;
  private resumeUpstream: (() => void) | null = null;
  private attemptOpen = false;
  private connected = false;
  private responded = false;
  private clientGone = false;
  private finished = false;
  private status = 0;
  private readonly idempotent: boolean;

  constructor(
    private readonly core: ProxyCore,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    route: Route,
    private readonly fwd: UpstreamHeaders,
    /** The target in origin-form, as sent upstream. */
    private readonly path: string,
    private readonly t0: number,
  ) {
    this.route = route;
    this.idempotent = IDEMPOTENT.has(req.method ?? '');
    this.body = fwd.hasBody ? new RequestBody(req, this.idempotent) : null;
    res.on('close', this.onClientClose);
  }

  /** Sends the first attempt; `address` is the round-robin pick for the route. */
  start(address: string): void {
    this.address = address;
    this.dispatch();
  }

  private dispatch(): void {
    this.attemptOpen = true;
    this.connected = false;
    this.abortUpstream = null;
    this.core.acquire(this.address);
    this.attemptBody = this.body ? this.body.attempt() : null;
    const opts: Dispatcher.DispatchOptions = {
      path: this.path,
      method: (this.req.method ?? 'GET') as Dispatcher.HttpMethod,
      headers: this.fwd.headers,
      // undici takes any async iterable as a body; its types list only the common ones.
      body: this.attemptBody as unknown as Dispatcher.DispatchOptions['body'],
    };
    // Errors, even synchronous ones, arrive through onError.
    this.core.pool(this.address).dispatch(opts, this);
  }

  // ---- undici handler --------------------------------------------------------------------

  onConnect(abort: (err?: Error) => void): void {
    if (this.clientGone) {
      abort(clientClosedError());
      return;
    }
    this.abortUpstream = abort;
    this.connected = true;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx informational: not forwarded
    this.core.observeUpstream(this.route.service, (performance.now() - this.t0) / 1000);
    const res = this.res;
    try {
      if (this.core.closing) res.shouldKeepAlive = false;
      res.writeHead(statusCode, statusText || undefined, downstreamResponseHeaders(rawHeaders));
    } catch (err) {
      // A header Node refuses to send (invalid characters): the response cannot be relayed.
      this.abortUpstream?.(Object.assign(new Error('invalid upstream response header'), { cause: err }));
      return false;
    }
    this.responded = true;
    this.status = statusCode;
    this.resumeUpstream = resume;
    this.corkClient();
    return true;
  }

  /**
   * Head, body chunks and end that arrive in one tick leave in one write: the client socket is
   * corked until the tick is over (small responses: one syscall instead of three).
   */
  private corkClient(): void {
    const socket = this.res.socket;
    if (!socket || this.corked) return;
    this.corked = true;
    socket.cork();
    process.nextTick(() => {
      this.corked = false;
      socket.uncork();
    });
  }

  onData(chunk: Buffer): boolean {
    this.corkClient();
    if (this.res.write(chunk)) return true;
    this.res.once('drain', this.onClientDrain);
    return false;
  }

  onComplete(): void {
    this.endAttempt();
    if (this.clientGone) return this.finish(CLIENT_CLOSED);
    // A backend that answered without reading the whole body: the rest cannot be left unread
    // on a keep-alive connection.
    if (this.body && !this.body.complete) this.closeClientAfterResponse();
    this.res.end();
    this.finish(this.status);
  }

  onError(err: Error): void {
    const phase: Phase = this.responded ? 'response' : this.connected ? 'request' : 'connect';
    this.endAttempt();
    if (this.clientGone) return this.finish(CLIENT_CLOSED);
    const code = (err as { code?: unknown }).code;
    const c = typeof code === 'string' ? code : '';
    if (phase === 'response') {
      // The client already has a status line: the only honest signal left is a cut connection.
      this.core.upstreamFailed({ service: this.route.service, address: this.address, err, phase, retry: false });
      this.res.destroy(err);
      return this.finish(this.status);
    }
    if (phase === 'connect' && CONNECT_ERRORS.has(c)) this.core.connectFailed(this.address);
    const retryable =
      phase === 'connect'
        ? CONNECT_ERRORS.has(c) && (!this.body || !this.body.consumed)
        : RESET_ERRORS.has(c) && this.idempotent && (!this.body || this.body.replayable());
    const next = retryable ? this.nextBackend() : undefined;
    this.core.upstreamFailed({ service: this.route.service, address: this.address, err, phase, retry: next !== undefined });
    if (next) {
      this.route = next.route;
      this.address = next.address;
      this.dispatch();
      return;
    }
    this.replyError(TIMEOUT_ERRORS.has(c) ? 504 : 502);
  }

  // ---- helpers ---------------------------------------------------------------------------

  private nextBackend(): { route: Route; address: string } | undefined {
    const tried = (this.tried ??= new Set());
    tried.add(this.address);
    return this.core.next(this.fwd.host, this.path, tried, this.address);
  }

  private endAttempt(): void {
    if (!this.attemptOpen) return;
    this.attemptOpen = false;
    this.abortUpstream = null;
    this.attemptBody?.cancel(new Error('upstream attempt ended'));
    this.attemptBody = null;
    this.core.release(this.address);
  }

  private replyError(status: 502 | 504): void {
    const res = this.res;
    const payload = JSON.stringify({
      error: status === 504 ? 'upstream timed out' : 'upstream unavailable',
      service: this.route.service,
    });
    // Part of the client's body may be unread (and unreadable now): do not reuse the connection.
    if (this.body?.consumed && !this.body.complete) this.closeClientAfterResponse();
    else if (this.core.closing) res.shouldKeepAlive = false;
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
    res.end(payload);
    this.finish(status);
  }

  private closeClientAfterResponse(): void {
    this.res.shouldKeepAlive = false;
    const socket = this.req.socket;
    this.res.once('finish', () => socket.end());
  }

  private finish(status: number): void {
    if (this.finished) return;
    this.finished = true;
    this.core.countRequest(this.route.service, status);
  }

  private readonly onClientDrain = (): void => {
    this.resumeUpstream?.();
  };

  private readonly onClientClose = (): void => {
    if (this.res.writableFinished) {
      if (this.core.closing) this.req.socket.end();
      return;
    }
    this.clientGone = true;
    const err = clientClosedError();
    this.attemptBody?.cancel(err);
    if (this.abortUpstream) this.abortUpstream(err);
    else if (!this.attemptOpen) this.finish(CLIENT_CLOSED);
    // Otherwise the attempt is still connecting: onConnect aborts it, onError counts it.
  }
}
