import type { IncomingMessage } from 'node:http';
import { HttpError, isJsonContentType } from '../http-util.js';

/**
 * Headers a standby adds when it passes a request on to the leader (server/forward.ts): the Host
 * and scheme the browser used, so the leader checks Origin against what the browser saw. A
 * browser never sends them cross-site (custom headers need a CORS preflight this API never
 * grants), so a page of another site cannot use them to pass the check.
 */
export const FORWARDED_HOST = 'x-orca-forwarded-host';
export const FORWARDED_PROTO = 'x-orca-forwarded-proto';

function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? (v.length === 1 ? v[0] : undefined) : v;
}

/** The origin (scheme://host[:port]) the client addressed, or null without a usable Host header. */
export function ownOrigin(req: Pick<IncomingMessage, 'headers'>, tls: boolean): string | null {
  const forwarded = one(req.headers['x-orca-forwarded-by']) !== undefined;
  const host = forwarded ? one(req.headers[FORWARDED_HOST]) : req.headers.host;
  const proto = forwarded ? one(req.headers[FORWARDED_PROTO]) : tls ? 'https' : 'http';
  if (!host || !/^[A-Za-z0-9.\-:[\]]{1,300}$/.test(host) || (proto !== 'http' && proto !== 'https')) return null;
  return `${proto}://${host}`.toLowerCase();
}

/** True when the request carries an Origin header equal to its own origin. */
export function sameOrigin(req: Pick<IncomingMessage, 'headers'>, tls: boolean): boolean {
  const origin = one(req.headers.origin);
  const own = ownOrigin(req, tls);
  return origin !== undefined && own !== null && origin.toLowerCase() === own;
}

/**
 * Why a write authorised by the session cookie is refused, or null. A browser attaches the cookie
 * to whatever request a page makes of this origin; SameSite=Strict keeps it off requests another
 * site starts, and this check is the second wall: the request must say it comes from a page of
 * this origin (403 otherwise, also without Origin) and carry JSON (415 otherwise).
 */
export function cookieWriteProblem(req: Pick<IncomingMessage, 'headers' | 'method'>, tls: boolean): HttpError | null {
  if (req.method === 'GET' || req.method === 'HEAD') return null;
  if (!sameOrigin(req, tls)) return HttpError.of('ORCA_FORBIDDEN', 'cross-site request refused: a request signed in by the dashboard\'s cookie must come from the dashboard (its Origin header must be this server\'s)');
  if (!isJsonContentType(one(req.headers['content-type']))) return new HttpError(415, 'ORCA_USAGE', 'a request signed in by the dashboard\'s cookie must send Content-Type: application/json');
  return null;
}
