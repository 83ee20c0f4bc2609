import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { systemClock, type Clock } from '../core/clock.js';
import { DEFAULTS, type ApiLimitsShape } from '../core/defaults.js';
import { OrcaError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { Store, EventRecord } from '../store/types.js';
import { parseInstanceLabels } from '../runtime/labels.js';
import type { ObservedContainer } from '../runtime/types.js';
import { bearer, tokenMatches } from './token.js';
import type { ControlPlane, ManifestFile } from './control-plane.js';
import type { ServerMember } from './leadership.js';
import type { EventLog } from './event-log.js';
import type { NodeRegistry } from './node-registry.js';
import { bodyTypeProblem, boolParam, decodePathParam, headerProblem, HttpError, intParam, parseTarget, readJson, sendError, sendJson, type Target } from './http-util.js';
import { RefusalLog } from './refusals.js';
import { accessRoutes, joinHandler, type AccessApiDeps } from './api-access.js';
import { MAX_SECRET_BYTES, secretNameProblem } from './secrets.js';
import { DroppingQueue, StreamWriter } from './stream-writer.js';
import { rebalanceHandler } from './rebalance-api.js';
import { certRoutes, type CertApiDeps } from './certs-api.js';
import { nodeListing, serverListing } from './listings.js';
import type { RecoveryFeed } from './recoveries.js';
import { loadAssets } from './ui/assets.js';
import { cookieWriteProblem } from './ui/guard.js';
import { createUi } from './ui/routes.js';
import { UiStreams, type UiStreamLimits } from './ui/stream.js';

/** Limits of the API listener (defaults in core/defaults.ts, DEFAULTS.api; see there). */
export const API_LIMITS: ApiLimitsShape = DEFAULTS.api;
export type ApiLimits = ApiLimitsShape;

export interface ApiDeps {
  token: string;
  log: Logger;
  control: ControlPlane;
  store: Store;
  events: EventLog;
  /** The node registry (drain, uncordon). */
  nodes: NodeRegistry;
  /** True once the store is open, containers adopted and the proxy started. */
  isReady: () => boolean;
  /** Extra unauthenticated-by-path handlers (for example /metrics) return true when they answered. */
  metrics?: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  /** Counts a request refused for its token (the /metrics counter; the log is rate-limited). */
  onUnauthorized?: () => void;
  clock?: Clock;
  limits?: Partial<ApiLimits>;
  /**
   * Join tokens, node credentials and node removal (SPEC §3.10). With it, a node credential is
   * recognised (and answered 403 on every API call) and POST /v1/join is served without a token.
   */
  access?: AccessApiDeps;
  /**
   * Serve over TLS with this key and certificate chain (PEM; the server certificate, then the
   * CA): see server/cluster-tls.ts. Absent: plaintext HTTP.
   */
  tls?: { keyPem: string; chainPem: string };
  /**
   * A standby passes requests on to the leader (SPEC §3.11; server/forward.ts): answers true when
   * it did. /healthz, /metrics and /v1/servers are always this server's own.
   */
  forward?: (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;
  /** The control plane's members, for `orca servers`. */
  servers?: () => Promise<ServerMember[]>;
  /** Certificates (SPEC §3.12): `orca certs`, `orca cert set`. */
  certs?: CertApiDeps;
  /** Crash → ready recoveries, for the dashboard's stream (SPEC §6). */
  recoveries?: RecoveryFeed;
  /** The dashboard stream's bounds (server/ui/stream.ts; tests make them small). */
  uiLimits?: Partial<UiStreamLimits>;
}

type Handler = (req: IncomingMessage, res: ServerResponse, url: Target, params: string[]) => Promise<void>;

/** The HTTP API of SPEC §4, behind bearer-token auth (all but /healthz and POST /v1/join); only the admin token calls it. */
export function createApi(deps: ApiDeps): Server {
  const { control, log } = deps;
  const limits: ApiLimits = { ...API_LIMITS, ...deps.limits };
  const clock = deps.clock ?? systemClock;
  const refusals = new RefusalLog(clock, log, deps.onUnauthorized, { windowMs: limits.refusalLogWindowMs });
  const streams = { clock, stallMs: limits.streamStallMs, followQueue: limits.followQueue };
  const join = deps.access ? joinHandler(deps.access) : null;
  // The dashboard (SPEC §6): its pages, sign-in and live stream under /ui; its session cookie signs in /v1 too.
  const uiStreams = new UiStreams({
    clock,
    log,
    services: () => control.statusFromReports(),
    nodes: () => nodeListing(control),
    servers: () => serverListing(deps.servers),
    events: deps.events,
    store: deps.store,
    ...(deps.recoveries ? { recoveries: deps.recoveries } : {}),
    ...(deps.uiLimits ? { limits: deps.uiLimits } : {}),
  });
  const ui = createUi({ token: deps.token, clock, tls: deps.tls !== undefined, assets: loadAssets(), streams: uiStreams, refused: (req, path) => refusals.refused(req.socket.remoteAddress, req.method, path) });
  const routes: Array<[string, RegExp, Handler]> = [
    ['POST', /^\/v1\/apply$/, async (req, res) => {
      const body = await readJson(req);
      const r = await control.apply(manifestFiles(body), body.dryRun === true);
      if (!r.ok) throw HttpError.of('ORCA_MANIFEST_INVALID', 'invalid manifest', r.errors);
      sendJson(res, 200, { results: r.value, dryRun: body.dryRun === true });
    }],
    ['POST', /^\/v1\/diff$/, async (req, res) => {
      const r = await control.diff(manifestFiles(await readJson(req)));
      if (!r.ok) throw HttpError.of('ORCA_MANIFEST_INVALID', 'invalid manifest', r.errors);
      sendJson(res, 200, { services: r.value });
    }],
    ['POST', /^\/v1\/delete$/, async (req, res) => {
      const body = await readJson(req);
      const names = body.services;
      if (!Array.isArray(names) || names.length === 0 || !names.every((n) => typeof n === 'string')) {
        throw HttpError.of('ORCA_USAGE', 'services: must be a non-empty list of names');
      }
      if (body.volumes !== undefined && typeof body.volumes !== 'boolean') throw HttpError.of('ORCA_USAGE', 'volumes: must be true or false');
      const r = await control.delete(names as string[]);
      if (!r.ok) throw HttpError.of('ORCA_NOT_FOUND', r.errors.join('; '), r.errors);
      if (body.volumes !== true) {
        sendJson(res, 200, { deleted: r.value });
        return;
      }
      // Once the containers are gone (SPEC §3.8): the answer comes when the volumes are.
      const removed: string[] = [];
      const failed: Array<{ name: string; node: string; error: string }> = [];
      for (const name of r.value) {
        const v = await control.removeVolumes(name);
        removed.push(...v.removed);
        failed.push(...v.failed);
      }
      sendJson(res, 200, { deleted: r.value, volumes: { removed, failed } });
    }],
    ['GET', /^\/v1\/volumes$/, async (_req, res) => {
      const volumes = await control.listVolumes();
      sendJson(res, 200, {
        volumes: volumes.map((v) => ({
          name: v.name,
          node: v.node,
          service: v.service,
          volume: v.volume,
          slot: v.slot,
          inUse: v.inUse,
          ...(v.sizeBytes !== null ? { size: v.sizeBytes } : {}),
          ...(v.stale ? { stale: true } : {}),
        })),
      });
    }],
    ['GET', /^\/v1\/status$/, async (_req, res, url) => {
      // A node that cannot be asked throws an OrcaError: answered by its code (HTTP_STATUS_OF).
      const r = await control.status(url.searchParams.get('service') ?? undefined);
      if (!r.ok) throw HttpError.of('ORCA_NOT_FOUND', r.errors.join('; '));
      sendJson(res, 200, { services: r.value });
    }],
    ['GET', /^\/v1\/services\/([^/]+)\/history$/, async (_req, res, _url, [name]) => {
      const r = await control.history(name ?? '');
      if (!r.ok) throw HttpError.of('ORCA_NOT_FOUND', r.errors.join('; '));
      sendJson(res, 200, r.value);
    }],
    ['POST', /^\/v1\/services\/([^/]+)\/rollback$/, async (req, res, _url, [name]) => {
      const body = await readJson(req);
      const to = body.toRevision;
      if (to !== undefined && (!Number.isInteger(to) || (to as number) < 1)) {
        throw HttpError.of('ORCA_USAGE', 'toRevision: must be a whole number ≥ 1');
      }
      const r = await control.rollback(name ?? '', to as number | undefined);
      if (!r.ok) throw r.errors;
      sendJson(res, 200, r.value);
    }],
    ['GET', /^\/v1\/services\/([^/]+)\/logs$/, (req, res, url, [name]) => streamLogs(control, streams, req, res, url, name ?? '')],
    ['GET', /^\/v1\/events$/, (req, res, url) => streamEvents(deps, streams, req, res, url)],
    ['GET', /^\/v1\/secrets$/, async (_req, res) => {
      sendJson(res, 200, { secrets: await control.listSecrets() });
    }],
    ['PUT', /^\/v1\/secrets\/([^/]+)$/, async (req, res, _url, [name]) => {
      const secret = secretName(name);
      const value = secretValue(await readJson(req, SECRET_BODY_BYTES));
      sendJson(res, 200, await control.setSecret(secret, value));
    }],
    ['DELETE', /^\/v1\/secrets\/([^/]+)$/, async (_req, res, _url, [name]) => {
      const r = await control.removeSecret(secretName(name));
      if (!r.ok) throw r.errors;
      sendJson(res, 200, { removed: r.value });
    }],
    ['POST', /^\/v1\/rebalance$/, (req, res) => rebalanceHandler({ rebalance: (svc, signal, progress) => control.rebalance(svc, signal, progress), clock, stallMs: limits.streamStallMs }, req, res)],
    ['POST', /^\/v1\/nodes\/([^/]+)\/(drain|uncordon)$/, async (_req, res, _url, [name, verb]) => {
      const n = await deps.nodes.setDrained(name ?? '', verb === 'drain');
      if (!n) throw HttpError.of('ORCA_NOT_FOUND', `node "${name}" not found`);
      sendJson(res, 200, { node: n.name, state: n.state() });
    }],
    ...(deps.access ? accessRoutes(deps.access) : []),
    ...(deps.certs ? certRoutes(deps.certs) : []),
    ['GET', /^\/v1\/servers$/, async (_req, res) => {
      sendJson(res, 200, { servers: await serverListing(deps.servers) });
    }],
    ['GET', /^\/v1\/nodes$/, async (_req, res) => {
      sendJson(res, 200, { nodes: nodeListing(control) });
    }],
  ];

  /** One request, inside its own error boundary: whatever it holds, the answer is a status code. */
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // A client that resets mid-request must not become an unhandled 'error' event. The address is
    // read now: by the time a refused body's stream errors, the socket may be gone (req.socket null).
    const remote = req.socket.remoteAddress;
    req.on('error', (err) => log.debug({ err: { message: err.message }, remote }, 'API request stream error'));
    res.on('error', (err) => log.debug({ err: { message: err.message }, remote }, 'API response stream error'));
    let path = '(unparsed)';
    try {
      const target = parseTarget(req.url);
      if (!target.ok) throw HttpError.of('ORCA_USAGE', target.errors);
      const url = target.value;
      path = url.pathname;
      const bad = headerProblem(req);
      if (bad) throw HttpError.of('ORCA_USAGE', bad);
      if (url.pathname === '/healthz' && req.method === 'GET') {
        const ready = deps.isReady();
        sendJson(res, ready ? 200 : 503, { status: ready ? 'ok' : 'starting' });
        return;
      }
      // A standby: the leader answers (it authenticates too: the servers share the token).
      if (deps.forward && url.pathname !== '/metrics' && url.pathname !== '/v1/servers' && (await deps.forward(req, res))) return;
      if (join && url.pathname === '/v1/join' && req.method === 'POST') {
        await join(req, res);
        return;
      }
      if (url.pathname === '/ui' || url.pathname.startsWith('/ui/')) {
        await ui.handle(req, res, url);
        return;
      }
      const presented = bearer(req.headers.authorization);
      let who = deps.access ? deps.access.access.authenticate(presented) : tokenMatches(presented, deps.token) ? { role: 'admin' as const } : null;
      // The dashboard's session cookie, when no token is presented: admin, for /v1 only, and a write only from the dashboard's own page.
      if (!who && req.headers.authorization === undefined && url.pathname.startsWith('/v1/') && ui.signedIn(req)) {
        const refused = cookieWriteProblem(req, deps.tls !== undefined);
        if (refused) throw refused;
        who = { role: 'admin' as const };
      }
      if (!who) {
        refusals.refused(req.socket.remoteAddress, req.method, url.pathname);
        throw HttpError.of('ORCA_UNAUTHORIZED', 'missing or wrong token');
      }
      // Roles (SPEC §3.10): a node credential may only hold its node's agent session.
      if (who.role !== 'admin') throw HttpError.of('ORCA_FORBIDDEN', `a node credential (node ${who.node}) may only hold an agent session for its own node; the API needs the admin token`);
      if (url.pathname === '/metrics' && req.method === 'GET' && deps.metrics) {
        await deps.metrics(req, res);
        return;
      }
      let otherMethod = false;
      for (const [method, re, handler] of routes) {
        const m = re.exec(url.pathname);
        if (!m) continue;
        // One path may have a route per method (PUT and DELETE of a secret).
        if (req.method !== method) {
          otherMethod = true;
          continue;
        }
        const params: string[] = [];
        for (const raw of m.slice(1)) {
          const p = decodePathParam(raw ?? '');
          if (!p.ok) throw HttpError.of('ORCA_USAGE', `${p.errors} (path ${url.pathname})`);
          params.push(p.value);
        }
        // A body that is not JSON is refused before the route sees it (a form or text/plain post included).
        const badType = req.method === 'GET' || req.method === 'HEAD' ? null : bodyTypeProblem(req);
        if (badType) throw new HttpError(415, 'ORCA_USAGE', badType);
        await handler(req, res, url, params);
        return;
      }
      if (otherMethod) throw new HttpError(405, 'ORCA_USAGE', `${req.method} not allowed on ${url.pathname}`);
      throw HttpError.of('ORCA_NOT_FOUND', `no such endpoint: ${url.pathname}`);
    } catch (err) {
      if (res.headersSent || res.destroyed) {
        res.destroy();
        return;
      }
      // Every error is answered by its code's status (HTTP_STATUS_OF); only a bug (an error
      // without a code) is logged, and answered 500.
      if (!(err instanceof HttpError) && !(err instanceof OrcaError)) log.error({ err, path }, 'API request failed');
      sendError(res, HttpError.from(err));
    }
  };

  const httpOptions = {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: limits.checkIntervalMs,
    maxHeaderSize: limits.maxHeaderBytes,
  };
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((err: unknown) => {
      // handle() answers every failure itself; this is the last line of defence for a bug in it.
      log.error({ err }, 'API request handler failed');
      res.destroy();
    });
  };
  // The same server either way: an https.Server is an http.Server behind a TLS handshake, with
  // the same timeouts, caps, handlers and upgrade path (the agent endpoint).
  const server: Server = deps.tls
    ? guardTls(createTlsServer({ ...httpOptions, key: deps.tls.keyPem, cert: deps.tls.chainPem, handshakeTimeout: limits.tlsHandshakeTimeoutMs }, onRequest), log)
    : createServer(httpOptions, onRequest);
  // Node takes its own error handler off an upgraded socket: one must be there before any
  // upgrade handler runs, or a client resetting a refused upgrade would be an unhandled error.
  server.prependListener('upgrade', (req: IncomingMessage, socket: Duplex) => {
    socket.on('error', (err) => log.debug({ err: { message: err.message }, remote: req.socket.remoteAddress }, 'upgrade socket error'));
  });
  // Closing the server ends the dashboard's streams (they would hold it open for ever).
  const closeServer = server.close.bind(server);
  server.close = ((cb?: (err?: Error) => void) => {
    uiStreams.close();
    return closeServer(cb);
  }) as typeof server.close;
  server.maxHeadersCount = limits.maxHeadersCount;
  server.maxConnections = limits.maxConnections;
  // Malformed requests Node's parser refuses (bad request line, header overflow, timeouts): a
  // clear 4xx when the socket can still take it, and never an unhandled error.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const body = JSON.stringify({ error: 'ORCA_USAGE', message: `malformed request: ${STATUS_CODES[status]?.toLowerCase()}` });
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  });
  return server;
}

/**
 * A TLS listener's refusals: a handshake that failed, timed out (DEFAULTS.api.tlsHandshakeTimeoutMs)
 * or was never begun ends only that connection. A plaintext HTTP request on the TLS port gets a
 * plain 400 that says to use https:// (as Go's and nginx's servers do), then the connection closes.
 * Logged at debug only: these are strangers' bytes, and a flood of them must not flood the log.
 */
function guardTls<S extends import('node:https').Server>(server: S, log: Logger): S {
  server.on('tlsClientError', (err: NodeJS.ErrnoException, tlsSocket: import('node:tls').TLSSocket) => {
    log.debug({ err: { code: err.code, message: err.message }, remote: tlsSocket.remoteAddress }, 'TLS handshake refused');
    // The raw connection under the TLS socket (Node keeps it as _parent): still writable when the
    // TLS layer refused the very first bytes.
    const raw = (tlsSocket as unknown as { _parent?: Duplex })._parent;
    if (err.code === 'ERR_SSL_HTTP_REQUEST' && raw && raw.writable && !raw.destroyed) {
      raw.on('error', () => undefined);
      raw.end(PLAINTEXT_REFUSAL);
    } else tlsSocket.destroy();
  });
  return server;
}

const PLAINTEXT_BODY = JSON.stringify({ error: 'ORCA_USAGE', message: 'this port speaks TLS: use https:// (and the cluster CA, --ca-cert)' });
const PLAINTEXT_REFUSAL = `HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(PLAINTEXT_BODY)}\r\n\r\n${PLAINTEXT_BODY}`;

/** A secret's value travels as base64 in `{"value": …}`: the body is bounded by the largest value so encoded, plus a little. */
const SECRET_BODY_BYTES = 4 * Math.ceil(MAX_SECRET_BYTES / 3) + 1024;
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function secretName(name: string | undefined): string {
  const bad = secretNameProblem(name ?? '');
  if (bad) throw HttpError.of('ORCA_USAGE', `secret name: ${bad}`);
  return name ?? '';
}

/** The value of a set request, byte for byte. 400 (never quoting it) when it is not base64, empty or too large. */
function secretValue(body: Record<string, unknown>): Buffer {
  const v = body.value;
  if (typeof v !== 'string' || !BASE64_RE.test(v)) throw HttpError.of('ORCA_USAGE', 'value: must be the secret\'s bytes in base64');
  const value = Buffer.from(v, 'base64');
  if (value.length === 0) throw HttpError.of('ORCA_USAGE', 'value: the value is empty');
  if (value.length > MAX_SECRET_BYTES) throw HttpError.of('ORCA_USAGE', `value: larger than ${MAX_SECRET_BYTES / 1024} KiB (${MAX_SECRET_BYTES} bytes)`);
  return value;
}

function manifestFiles(body: Record<string, unknown>): ManifestFile[] {
  const files = body.files;
  if (!Array.isArray(files) || !files.every((f) => f && typeof f.file === 'string' && typeof f.text === 'string')) {
    throw HttpError.of('ORCA_USAGE', 'files: must be a list of {file, text}');
  }
  return files as ManifestFile[];
}

interface StreamOptions {
  clock: Clock;
  stallMs: number;
  followQueue: number;
}

/** A line of the reconciliation log that the API itself writes into one follower's stream. */
function streamNote(clock: Clock, action: string, message: string): string {
  const e: EventRecord = { time: new Date(clock.now()).toISOString(), reconciler: 'api', service: null, instance: null, node: null, action, reason: 'reader-too-slow', outcome: 'dropped', durationMs: 0, message };
  return JSON.stringify(e) + '\n';
}

/**
 * GET /v1/events: the stored log, then (follow) live records. A follower gets a bounded queue:
 * when it falls more than `followQueue` records behind, the oldest are dropped and an
 * `events.dropped` record says how many; writes wait for the socket to drain, and a reader that
 * takes nothing for `stallMs` is ended.
 */
async function streamEvents(deps: ApiDeps, o: StreamOptions, _req: IncomingMessage, res: ServerResponse, url: Target): Promise<void> {
  const since = intParam(url, 'since');
  const limit = intParam(url, 'limit');
  const service = url.searchParams.get('service') ?? undefined;
  const follow = boolParam(url, 'follow');
  const matches = (e: EventRecord) => (!service || e.service === service) && (since === undefined || Date.parse(e.time) >= since);
  const queue = follow ? new DroppingQueue<EventRecord>(o.followQueue) : null;
  const unsubscribe = queue ? deps.events.follow((e) => (matches(e) ? queue.push(e) : undefined)) : null;
  try {
    await deps.events.drain();
    const past = await deps.store.listEvents({ sinceMs: since, service, limit: limit ?? (follow ? 100 : 1000) });
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    // A follower learns at once that its stream is open, even before the first record.
    res.flushHeaders();
    const writer = new StreamWriter(res, o.clock, o.stallMs);
    for (const e of past) if (!(await writer.write(JSON.stringify(e) + '\n'))) break;
    if (!queue || !writer.open) {
      writer.finish();
      return;
    }
    res.once('close', () => queue.close());
    const seen = new Set(past.map((e) => JSON.stringify(e)));
    for (;;) {
      const next = await queue.take();
      if (!next) break;
      if (next.dropped > 0 && !(await writer.write(streamNote(o.clock, 'events.dropped', `${next.dropped} events dropped: this reader fell more than ${o.followQueue} behind`)))) break;
      const text = JSON.stringify(next.item);
      if (seen.size > 0 && seen.delete(text)) continue;
      if (!(await writer.write(text + '\n'))) break;
    }
    writer.finish(writer.stalled ? streamNote(o.clock, 'events.stream-ended', `stream ended: the reader took nothing for ${Math.round(o.stallMs / 1000)} s`) : undefined);
  } finally {
    unsubscribe?.();
    queue?.close();
  }
}

/**
 * GET /v1/services/NAME/logs: container output, line by line, from every chosen instance.
 * Writes wait for the socket to drain, and a node's log stream is pulled only as fast as the
 * reader reads (the agent is flow-controlled by RemoteNode.logs): a reader that stops reading
 * stops Docker's log stream. One that takes nothing for `stallMs` is ended with a message.
 */
async function streamLogs(control: ControlPlane, o: StreamOptions, _req: IncomingMessage, res: ServerResponse, url: Target, name: string): Promise<void> {
  const tail = intParam(url, 'tail');
  const follow = boolParam(url, 'follow');
  const previous = boolParam(url, 'previous');
  const instance = url.searchParams.get('instance') ?? undefined;
  const found: Array<{ node: (typeof nodes)[number]; c: ObservedContainer; instance: string }> = [];
  const nodes = control.nodeLinks();
  const unreachable: string[] = [];
  for (const node of nodes) {
    // A node that cannot be asked does not hide the logs the others have.
    const containers = await node.containers(name).catch(() => {
      unreachable.push(node.name);
      return [];
    });
    for (const c of containers) {
      const l = parseInstanceLabels(c.labels);
      if (l) found.push({ node, c, instance: l.instance });
    }
  }
  const where = unreachable.length ? ` (nodes that could not be asked: ${unreachable.join(', ')})` : '';
  if (found.length === 0 && !(await control.liveServices()).some((s) => s.name === name)) {
    throw HttpError.of('ORCA_NOT_FOUND', `service "${name}" not found${where}`);
  }
  const exited = (f: (typeof found)[number]) => f.c.status === 'exited' || f.c.status === 'dead';
  /** The latest exited container of each slot. */
  const lastExited = () => {
    const bySlot = new Map<string, (typeof found)[number]>();
    for (const f of found.filter(exited)) {
      const key = f.c.labels['orca.slot'] ?? '';
      const prev = bySlot.get(key);
      if (!prev || (f.c.finishedAt ?? '') > (prev.c.finishedAt ?? '')) bySlot.set(key, f);
    }
    return [...bySlot.values()];
  };
  let chosen: typeof found;
  let notice: string | undefined;
  if (instance) chosen = found.filter((f) => f.instance === instance);
  else if (previous) chosen = lastExited();
  else {
    chosen = found.filter((f) => f.c.status === 'running' || f.c.status === 'created' || f.c.status === 'paused');
    if (chosen.length === 0) {
      // A crash-looping service has nothing running most of the time: its last words are what
      // the operator came for.
      chosen = lastExited();
      if (chosen.length > 0) notice = `no instance of service "${name}" is running; showing the last exited ${chosen.length === 1 ? 'one' : 'ones'}: ${chosen.map((f) => f.instance).join(', ')}`;
    }
  }
  if (chosen.length === 0) {
    const what = instance
      ? `service "${name}" has no instance "${instance}"`
      : previous
        ? `service "${name}" has no exited instance`
        : `service "${name}" has no instance with logs yet (nothing was started)`;
    throw HttpError.of('ORCA_NOT_FOUND', `${what}${where}`);
  }
  const abort = new AbortController();
  res.once('close', () => abort.abort());
  res.writeHead(200, {
    'content-type': 'text/plain; charset=utf-8',
    'cache-control': 'no-store',
    // Said beside the logs, not in them: the CLI prints it on stderr.
    ...(notice ? { 'x-orca-notice': encodeURIComponent(notice) } : {}),
  });
  res.flushHeaders();
  const writer = new StreamWriter(res, o.clock, o.stallMs);
  const prefix = chosen.length > 1;
  await Promise.all(
    chosen.map(async (f) => {
      try {
        for await (const line of f.node.logs(f.c.id, { tail, follow, signal: abort.signal })) {
          if (!(await writer.write(prefix ? `${f.instance} | ${line}\n` : `${line}\n`))) break;
        }
      } catch (err) {
        if (!abort.signal.aborted) await writer.write(`${f.instance} | [orca: log stream ended: ${(err as Error).message}]\n`);
      } finally {
        // A stalled or closed reader ends every instance's stream (the agents stop reading Docker).
        if (!writer.open) abort.abort();
      }
    }),
  );
  abort.abort();
  writer.finish(writer.stalled ? `[orca: log stream ended: the reader took nothing for ${Math.round(o.stallMs / 1000)} s]\n` : undefined);
}
