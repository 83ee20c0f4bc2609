import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from '../core/log.js';
import { OrcaError } from '../core/errors.js';
import type { Store, EventRecord } from '../store/types.js';
import { parseInstanceLabels } from '../runtime/labels.js';
import type { ObservedContainer } from '../runtime/types.js';
import { bearer, tokenMatches } from './token.js';
import type { ControlPlane, ManifestFile } from './control-plane.js';
import type { EventLog } from './event-log.js';
import type { NodeRegistry } from './node-registry.js';
import { boolParam, HttpError, intParam, readJson, sendError, sendJson } from './http-util.js';

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
}

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL, params: string[]) => Promise<void>;

/** The HTTP API of SPEC §4, behind bearer-token auth (all but /healthz). */
export function createApi(deps: ApiDeps): Server {
  const { control, log } = deps;
  const routes: Array<[string, RegExp, Handler]> = [
    ['POST', /^\/v1\/apply$/, async (req, res) => {
      const body = await readJson(req);
      const r = await control.apply(manifestFiles(body), body.dryRun === true);
      if (!r.ok) throw new HttpError(400, 'ORCA_MANIFEST_INVALID', 'invalid manifest', r.errors);
      sendJson(res, 200, { results: r.value, dryRun: body.dryRun === true });
    }],
    ['POST', /^\/v1\/diff$/, async (req, res) => {
      const r = await control.diff(manifestFiles(await readJson(req)));
      if (!r.ok) throw new HttpError(400, 'ORCA_MANIFEST_INVALID', 'invalid manifest', r.errors);
      sendJson(res, 200, { services: r.value });
    }],
    ['POST', /^\/v1\/delete$/, async (req, res) => {
      const body = await readJson(req);
      const names = body.services;
      if (!Array.isArray(names) || names.length === 0 || !names.every((n) => typeof n === 'string')) {
        throw new HttpError(400, 'ORCA_USAGE', 'services: must be a non-empty list of names');
      }
      const r = await control.delete(names as string[]);
      if (!r.ok) throw new HttpError(404, 'ORCA_NOT_FOUND', r.errors.join('; '), r.errors);
      sendJson(res, 200, { deleted: r.value });
    }],
    ['GET', /^\/v1\/status$/, async (_req, res, url) => {
      const r = await control.status(url.searchParams.get('service') ?? undefined).catch((err: unknown) => {
        if (err instanceof OrcaError) throw new HttpError(503, err.code, err.message);
        throw err;
      });
      if (!r.ok) throw new HttpError(404, 'ORCA_NOT_FOUND', r.errors.join('; '));
      sendJson(res, 200, { services: r.value });
    }],
    ['GET', /^\/v1\/services\/([^/]+)\/history$/, async (_req, res, _url, [name]) => {
      const r = await control.history(name ?? '');
      if (!r.ok) throw new HttpError(404, 'ORCA_NOT_FOUND', r.errors.join('; '));
      sendJson(res, 200, r.value);
    }],
    ['POST', /^\/v1\/services\/([^/]+)\/rollback$/, async (req, res, _url, [name]) => {
      const body = await readJson(req);
      const to = body.toRevision;
      if (to !== undefined && (!Number.isInteger(to) || (to as number) < 1)) {
        throw new HttpError(400, 'ORCA_USAGE', 'toRevision: must be a whole number ≥ 1');
      }
      const r = await control.rollback(name ?? '', to as number | undefined);
      if (!r.ok) throw new HttpError(404, 'ORCA_NOT_FOUND', r.errors.join('; '));
      sendJson(res, 200, r.value);
    }],
    ['GET', /^\/v1\/services\/([^/]+)\/logs$/, (req, res, url, [name]) => streamLogs(control, req, res, url, name ?? '')],
    ['GET', /^\/v1\/events$/, (req, res, url) => streamEvents(deps, req, res, url)],
    ['POST', /^\/v1\/nodes\/([^/]+)\/(drain|uncordon)$/, async (_req, res, _url, [name, verb]) => {
      const n = await deps.nodes.setDrained(name ?? '', verb === 'drain');
      if (!n) throw new HttpError(404, 'ORCA_NOT_FOUND', `node "${name}" not found`);
      sendJson(res, 200, { node: n.name, state: n.state() });
    }],
    ['GET', /^\/v1\/nodes$/, async (_req, res) => {
      const reports = control.lastReports();
      sendJson(res, 200, {
        nodes: control.nodeLinks().map((n) => ({
          name: n.name,
          state: n.state(),
          address: n.address(),
          lastHeartbeat: n.lastHeartbeat(),
          instances: reports.filter((r) => r.node === n.name && r.containerId !== null).length,
        })),
      });
    }],
  ];

  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://orca');
    void (async () => {
      try {
        if (url.pathname === '/healthz' && req.method === 'GET') {
          const ready = deps.isReady();
          sendJson(res, ready ? 200 : 503, { status: ready ? 'ok' : 'starting' });
          return;
        }
        if (!tokenMatches(bearer(req.headers.authorization), deps.token)) {
          log.warn({ method: req.method, path: url.pathname, remote: req.socket.remoteAddress }, 'unauthorized API request');
          throw new HttpError(401, 'ORCA_UNAUTHORIZED', 'missing or wrong token');
        }
        if (url.pathname === '/metrics' && req.method === 'GET' && deps.metrics) {
          await deps.metrics(req, res);
          return;
        }
        for (const [method, re, handler] of routes) {
          const m = re.exec(url.pathname);
          if (!m) continue;
          if (req.method !== method) throw new HttpError(405, 'ORCA_USAGE', `${req.method} not allowed on ${url.pathname}`);
          await handler(req, res, url, m.slice(1).map(decodeURIComponent));
          return;
        }
        throw new HttpError(404, 'ORCA_NOT_FOUND', `no such endpoint: ${url.pathname}`);
      } catch (err) {
        if (res.headersSent) {
          res.destroy();
          return;
        }
        if (err instanceof HttpError) sendError(res, err);
        else {
          log.error({ err, path: url.pathname }, 'API request failed');
          sendError(res, new HttpError(500, 'ORCA_INTERNAL', (err as Error).message ?? 'internal error'));
        }
      }
    })();
  });
}

function manifestFiles(body: Record<string, unknown>): ManifestFile[] {
  const files = body.files;
  if (!Array.isArray(files) || !files.every((f) => f && typeof f.file === 'string' && typeof f.text === 'string')) {
    throw new HttpError(400, 'ORCA_USAGE', 'files: must be a list of {file, text}');
  }
  return files as ManifestFile[];
}

async function streamEvents(deps: ApiDeps, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const since = intParam(url, 'since');
  const limit = intParam(url, 'limit');
  const service = url.searchParams.get('service') ?? undefined;
  const follow = boolParam(url, 'follow');
  const matches = (e: EventRecord) => (!service || e.service === service) && (since === undefined || Date.parse(e.time) >= since);
  const buffered: EventRecord[] = [];
  let live = false;
  const write = (e: EventRecord) => res.write(JSON.stringify(e) + '\n');
  const unsubscribe = follow ? deps.events.follow((e) => (matches(e) ? (live ? write(e) : buffered.push(e)) : undefined)) : null;
  await deps.events.drain();
  const past = await deps.store.listEvents({ sinceMs: since, service, limit: limit ?? (follow ? 100 : 1000) });
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  for (const e of past) write(e);
  if (!unsubscribe) {
    res.end();
    return;
  }
  const seen = new Set(past.map((e) => JSON.stringify(e)));
  for (const e of buffered) if (!seen.has(JSON.stringify(e))) write(e);
  live = true;
  await new Promise<void>((resolve) => {
    req.on('close', resolve);
    res.on('close', resolve);
  });
  unsubscribe();
}

async function streamLogs(control: ControlPlane, req: IncomingMessage, res: ServerResponse, url: URL, name: string): Promise<void> {
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
  let chosen = found;
  if (instance) chosen = found.filter((f) => f.instance === instance);
  else if (previous) {
    const bySlot = new Map<string, (typeof found)[number]>();
    for (const f of found.filter((x) => x.c.status === 'exited' || x.c.status === 'dead')) {
      const key = f.c.labels['orca.slot'] ?? '';
      const prev = bySlot.get(key);
      if (!prev || (f.c.finishedAt ?? '') > (prev.c.finishedAt ?? '')) bySlot.set(key, f);
    }
    chosen = [...bySlot.values()];
  } else chosen = found.filter((f) => f.c.status === 'running' || f.c.status === 'created' || f.c.status === 'paused');
  if (chosen.length === 0) {
    const what = instance ? `instance "${instance}" of service "${name}"` : previous ? `an exited instance of service "${name}"` : `a running instance of service "${name}"`;
    throw new HttpError(404, 'ORCA_NOT_FOUND', `no ${what}${unreachable.length ? ` on the reachable nodes (not reachable: ${unreachable.join(', ')})` : ''}`);
  }
  const abort = new AbortController();
  req.on('close', () => abort.abort());
  res.on('close', () => abort.abort());
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
  const prefix = chosen.length > 1;
  await Promise.all(
    chosen.map(async (f) => {
      try {
        for await (const line of f.node.logs(f.c.id, { tail, follow, signal: abort.signal })) {
          res.write(prefix ? `${f.instance} | ${line}\n` : `${line}\n`);
        }
      } catch (err) {
        if (!abort.signal.aborted) res.write(`${f.instance} | [orca: log stream ended: ${(err as Error).message}]\n`);
      }
    }),
  );
  res.end();
}
