/**
 * A standby's API (SPEC §3.11): every server answers the whole API. A standby passes each request
 * on to the leader as it came — method, path, headers (the token included: the servers of one
 * control plane share it), body — and streams the answer back with backpressure both ways, so
 * `orca apply` against any server is stored, fenced, by the one that leads. While no leader is
 * known, or the leader cannot be reached before it answered, the standby answers 503
 * ORCA_NOT_LEADER, which the CLI retries (on this server or the next it was given).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError, sendError } from './http-util.js';
import type { Logger } from '../core/log.js';

/** Headers that belong to one hop, never passed on. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'proxy-authorization', 'proxy-authenticate', 'host']);
/** The leader must accept the connection within this; then the request runs as long as the leader lets it. */
const CONNECT_TIMEOUT_MS = 5_000;

export interface ForwardDeps {
  /** Whether this server leads now (then nothing is forwarded). */
  isLeader: () => boolean;
  /** The leader's API URL, or null while none is elected. */
  leader: () => string | null;
  /** Why no server can lead now (the store cannot be reached): answered as ORCA_STORE_UNAVAILABLE, not retried. */
  problem?: () => string | null;
  /** How long the leader may take to answer (default 5 s); then 503. */
  answerTimeoutMs?: number;
  /** The cluster CA, to verify an https:// leader. */
  ca?: () => string | undefined;
  log: Logger;
}

/** Returns a handler that forwards to the leader and answers true, or answers false when this server leads. */
export function leaderForwarder(deps: ForwardDeps): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  return async (req, res) => {
    if (deps.isLeader()) return false;
    const leader = deps.leader();
    const problem = deps.problem?.() ?? null;
    if (problem) {
      sendError(res, HttpError.of('ORCA_STORE_UNAVAILABLE', problem));
      return true;
    }
    if (!leader) {
      sendError(res, HttpError.of('ORCA_NOT_LEADER', 'no server leads the control plane yet (an election is under way): retry in a moment'));
      return true;
    }
    let base: URL;
    try {
      base = new URL(leader);
    } catch {
      sendError(res, HttpError.of('ORCA_NOT_LEADER', 'the leader has no usable address yet: retry in a moment'));
      return true;
    }
    const target = new URL(req.url ?? '/', base);
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
    headers['x-forwarded-for'] = req.socket.remoteAddress ?? '';
    headers['x-orca-forwarded-by'] = 'standby';
    // The dashboard's writes are checked against the origin the browser addressed (server/ui/guard.ts).
    headers['x-orca-forwarded-host'] = req.headers.host ?? '';
    headers['x-orca-forwarded-proto'] = (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
    const mod = await import(target.protocol === 'https:' ? 'node:https' : 'node:http');
    const ca = target.protocol === 'https:' ? deps.ca?.() : undefined;
    await new Promise<void>((resolve) => {
      let answered = false;
      const upstream = mod.request(target, { method: req.method, headers, ...(ca ? { ca } : {}) }, (up: IncomingMessage) => {
        answered = true;
        upstream.setTimeout(0);
        const out: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(up.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
        res.writeHead(up.statusCode ?? 502, out);
        up.pipe(res);
        up.on('end', () => resolve());
        up.on('error', () => {
          res.destroy();
          resolve();
        });
      });
      const within = deps.answerTimeoutMs ?? CONNECT_TIMEOUT_MS;
      upstream.setTimeout(within, () => upstream.destroy(new Error(`no answer from the leader within ${within} ms`)));
      upstream.on('error', (err: Error) => {
        if (!answered && !res.headersSent) {
          deps.log.warn({ leader, err: { message: err.message } }, 'could not forward an API request to the leader');
          sendError(res, HttpError.of('ORCA_NOT_LEADER', `the leader at ${leader} cannot be reached (${err.message}): retry in a moment`));
        } else res.destroy();
        resolve();
      });
      // The client went away: so does the request to the leader (a follow stream ends there too).
      res.on('close', () => {
        if (!res.writableFinished) upstream.destroy();
      });
      req.pipe(upstream);
    });
    return true;
  };
}
