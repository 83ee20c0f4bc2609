import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../../core/clock.js';
import { HttpError, isJsonContentType, readJson, sendJson, type Target } from '../http-util.js';
import { tokenMatches } from '../token.js';
import { PUBLIC_ASSETS, UI_HEADERS, type Asset } from './assets.js';
import { sameOrigin } from './guard.js';
import { clearedCookie, cookieValue, issueSession, SESSION_COOKIE, sessionCookie, sessionKey, sessionValid } from './session.js';
import type { UiStreams } from './stream.js';

/** A sign-in body larger than this is refused (413): it holds one token. */
export const LOGIN_BODY_BYTES = 4 * 1024;

export interface UiDeps {
  /** The admin token: the one credential that signs in, and what the session key is derived from. */
  token: string;
  clock: Clock;
  /** The API is served over TLS: the cookie is Secure. */
  tls: boolean;
  /** The dashboard's files (loadAssets); empty: the dashboard answers 404 saying so. */
  assets: Map<string, Asset>;
  streams: UiStreams;
  /** Counts and logs a sign-in with a wrong token, as a wrong bearer token is. */
  refused: (req: IncomingMessage, path: string) => void;
}

export interface Ui {
  /** Answers a request under /ui. */
  handle(req: IncomingMessage, res: ServerResponse, url: Target): Promise<void>;
  /** True when the request carries a valid session cookie. */
  signedIn(req: IncomingMessage): boolean;
}

/**
 * The dashboard's routes (SPEC §6): its pages and files, sign-in and sign-out, and its live
 * stream. Everything but the sign-in page and what it loads needs the session cookie.
 */
export function createUi(deps: UiDeps): Ui {
  const key = sessionKey(deps.token);
  const signedIn = (req: IncomingMessage) => sessionValid(key, cookieValue(req.headers.cookie, SESSION_COOKIE), deps.clock.now());

  const sendAsset = (req: IncomingMessage, res: ServerResponse, name: string) => {
    const a = deps.assets.get(name);
    if (!a) throw HttpError.of('ORCA_NOT_FOUND', deps.assets.size === 0 ? 'the dashboard\'s files (ui/) are not installed with this server' : `no such dashboard file: ${name}`);
    res.writeHead(200, { ...UI_HEADERS, 'content-type': a.type, 'content-length': a.body.length });
    res.end(req.method === 'HEAD' ? undefined : a.body);
  };
  /** Sign-in and sign-out take JSON only, and only from a page of this origin when the browser says where it comes from. */
  const checkForm = (req: IncomingMessage) => {
    if (!isJsonContentType(req.headers['content-type'])) throw new HttpError(415, 'ORCA_USAGE', 'send {"token": "…"} as JSON (Content-Type: application/json)');
    if (req.headers.origin !== undefined && !sameOrigin(req, deps.tls)) throw HttpError.of('ORCA_FORBIDDEN', 'cross-site request refused');
  };
  const unauthorized = () => HttpError.of('ORCA_UNAUTHORIZED', 'sign in first: the dashboard needs a session (POST /ui/login with the admin token)');

  return {
    signedIn,
    async handle(req, res, url) {
      const path = url.pathname;
      const read = req.method === 'GET' || req.method === 'HEAD';
      if (path === '/ui' || path === '/ui/' || path === '/ui/index.html') {
        if (!read) throw new HttpError(405, 'ORCA_USAGE', `${req.method} not allowed on ${path}`);
        if (signedIn(req)) return sendAsset(req, res, 'index.html');
        res.writeHead(302, { ...UI_HEADERS, location: '/ui/login', 'content-length': 0 });
        res.end();
        return;
      }
      if (path === '/ui/login' && req.method === 'POST') {
        checkForm(req);
        const body = await readJson(req, LOGIN_BODY_BYTES);
        const token = typeof body.token === 'string' ? body.token : undefined;
        // The admin token only: a node credential holds an agent session, never the dashboard.
        if (!token || token.length > 4096 || !tokenMatches(token, deps.token)) {
          deps.refused(req, path);
          throw HttpError.of('ORCA_UNAUTHORIZED', 'wrong token');
        }
        const session = issueSession(key, deps.clock.now());
        res.setHeader('set-cookie', sessionCookie(session.value, deps.tls));
        res.setHeader('cache-control', 'no-store');
        sendJson(res, 200, { ok: true });
        return;
      }
      if (path === '/ui/logout') {
        if (req.method !== 'POST') throw new HttpError(405, 'ORCA_USAGE', `${req.method} not allowed on ${path}`);
        checkForm(req);
        res.setHeader('set-cookie', clearedCookie(deps.tls));
        res.setHeader('cache-control', 'no-store');
        sendJson(res, 200, { ok: true });
        return;
      }
      if (!read) throw new HttpError(405, 'ORCA_USAGE', `${req.method} not allowed on ${path}`);
      if (path === '/ui/login') return sendAsset(req, res, 'login.html');
      if (path === '/ui/stream') {
        if (req.method !== 'GET') throw new HttpError(405, 'ORCA_USAGE', `${req.method} not allowed on ${path}`);
        if (!signedIn(req)) throw unauthorized();
        await deps.streams.open(req, res);
        return;
      }
      const name = path.slice('/ui/'.length);
      if (!PUBLIC_ASSETS.has(name) && !signedIn(req)) throw unauthorized();
      sendAsset(req, res, name);
    },
  };
}
