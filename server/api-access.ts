import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import { NAME_RE } from '../manifest/index.js';
import type { Access, JoinRefusalReason } from './access.js';
import { HttpError, readJson, sendJson, type Target } from './http-util.js';
import { LogLimiter } from './log-limiter.js';

/** Join tokens, node credentials and `orca nodes rm` over the API (SPEC §3.10). */
export interface AccessApiDeps {
  access: Access;
  log: Logger;
  clock: Clock;
  /** The cluster CA's fingerprint a new token carries (sha256 of its DER, hex). */
  caHash: () => Promise<string>;
  /** True while the node has a live agent session. */
  live: (node: string) => boolean;
  /**
   * `orca nodes rm`: revokes the node's credential, ends its session, forgets its record and
   * reschedules its replicas. Null when the name is neither a node nor bound to a credential.
   */
  removeNode: (node: string) => Promise<{ node: string; credentialRevoked: boolean; sessionsClosed: number } | null>;
}

export type AccessHandler = (req: IncomingMessage, res: ServerResponse, url: Target, params: string[]) => Promise<void>;

/** A join request is small: a token and a node name. */
const JOIN_BODY_BYTES = 4096;
const JOIN_STATUS: Record<JoinRefusalReason, number> = { malformed: 400, unknown: 401, removed: 401, expired: 401, 'used-up': 401, 'name-taken': 409 };

/**
 * POST /v1/join, the one route that needs no bearer token: `{"token": "orca1…", "node": "n2"}`
 * → `{"node", "credential"}`. Answered over the same listener (TLS when the API is) as the agent
 * session, so an agent that pinned the CA sends the token only to the right server. A refusal
 * says why (400 malformed, 401 unknown / removed / expired / used up, 409 name taken) and is
 * logged without the token, at most one line per remote address and reason per window.
 */
export function joinHandler(deps: AccessApiDeps): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const limiter = new LogLimiter(deps.clock, 60_000);
  return async (req, res) => {
    const remote = req.socket.remoteAddress ?? 'unknown';
    const body = await readJson(req, JOIN_BODY_BYTES);
    const node = body.node;
    if (typeof node !== 'string' || !NAME_RE.test(node)) throw HttpError.of('ORCA_USAGE', 'node: must be a DNS label (lowercase letters, digits, \'-\'; at most 63)');
    const r = await deps.access.join(body.token, node, deps.live);
    if (!r.ok) {
      const l = limiter.allow(`${remote}:${r.errors.reason}`);
      if (l.log) deps.log.warn({ remote, node, reason: r.errors.reason, suppressed: l.suppressed }, 'join refused');
      const status = JOIN_STATUS[r.errors.reason];
      throw new HttpError(status, status === 409 ? 'ORCA_CONFLICT' : status === 400 ? 'ORCA_USAGE' : 'ORCA_UNAUTHORIZED', r.errors.message, [r.errors.message]);
    }
    deps.log.info({ remote, node, tokenId: r.value.tokenId }, 'node joined: credential issued');
    sendJson(res, 200, { node, credential: r.value.credential });
  };
}

/** The admin's routes: tokens and node removal. */
export function accessRoutes(deps: AccessApiDeps): Array<[string, RegExp, AccessHandler]> {
  return [
    ['GET', /^\/v1\/tokens$/, async (_req, res) => {
      sendJson(res, 200, { tokens: deps.access.listTokens() });
    }],
    ['POST', /^\/v1\/tokens$/, async (req, res) => {
      const body = await readJson(req, JOIN_BODY_BYTES);
      const ttlMs = body.ttlMs;
      const uses = body.uses;
      if (ttlMs !== undefined && (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs))) throw HttpError.of('ORCA_USAGE', 'ttlMs: must be a number of milliseconds');
      if (uses !== undefined && uses !== null && typeof uses !== 'number') throw HttpError.of('ORCA_USAGE', 'uses: must be a whole number or null');
      const made = await deps.access.createToken({
        ...(ttlMs !== undefined ? { ttlMs: ttlMs as number } : {}),
        uses: (uses as number | null | undefined) ?? null,
        caHash: await deps.caHash(),
      });
      deps.log.info({ tokenId: made.listing.id, expires: made.listing.expires, uses: made.listing.uses }, 'join token created');
      sendJson(res, 200, { token: made.token, ...made.listing });
    }],
    ['DELETE', /^\/v1\/tokens\/([^/]+)$/, async (_req, res, _url, [id]) => {
      if (!(await deps.access.removeToken(id ?? ''))) throw HttpError.of('ORCA_NOT_FOUND', `join token "${(id ?? '').slice(0, 40)}" not found`);
      deps.log.info({ tokenId: id }, 'join token removed');
      sendJson(res, 200, { removed: id });
    }],
    ['DELETE', /^\/v1\/nodes\/([^/]+)$/, async (_req, res, _url, [name]) => {
      const node = name ?? '';
      if (!NAME_RE.test(node)) throw HttpError.of('ORCA_USAGE', 'node: must be a DNS label');
      const r = await deps.removeNode(node);
      if (!r) throw HttpError.of('ORCA_NOT_FOUND', `node "${node}" not found`);
      sendJson(res, 200, r);
    }],
  ];
}
