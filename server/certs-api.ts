/**
 * The certificates' API (SPEC §3.12), behind the admin token like every /v1 route:
 *   GET /v1/certs          → {"certs":[{"host","issuer","notAfter","status","reason","source","next"?}]}
 *   PUT /v1/certs/<host>   {"cert": PEM, "key": PEM} → {"cert": row}: a manual certificate, checked
 *                          against the host (400 saying what is wrong; nothing stored then)
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../core/clock.js';
import { CERT_LIMITS, certHostProblem } from './cert-check.js';
import type { CertStore, WantedCert } from './certs.js';
import { HttpError, readJson, sendJson, type Target } from './http-util.js';

export interface CertApiDeps {
  certs: CertStore;
  /** The hosts routes ask certificates for (from the stored services). */
  wanted: () => Promise<WantedCert[]>;
  clock: Clock;
  /** A manual certificate was stored (the proxies get it). */
  changed?: (host: string) => void;
}

type Handler = (req: IncomingMessage, res: ServerResponse, url: Target, params: string[]) => Promise<void>;

/** The body: both PEM texts, in JSON (escaped), with room to spare. */
const BODY_BYTES = 2 * (CERT_LIMITS.certBytes + CERT_LIMITS.keyBytes) + 4096;

export function certRoutes(deps: CertApiDeps): Array<[string, RegExp, Handler]> {
  return [
    ['GET', /^\/v1\/certs$/, async (_req, res) => {
      sendJson(res, 200, { certs: await deps.certs.view(await deps.wanted(), deps.clock.now()) });
    }],
    ['PUT', /^\/v1\/certs\/([^/]+)$/, async (req, res, _url, [hostParam]) => {
      const host = (hostParam ?? '').toLowerCase();
      const bad = certHostProblem(host);
      if (bad) throw HttpError.of('ORCA_USAGE', `host: ${bad}`);
      const body = await readJson(req, BODY_BYTES);
      if (typeof body.cert !== 'string' || body.cert === '') throw HttpError.of('ORCA_USAGE', 'cert: must be the certificate chain in PEM');
      if (typeof body.key !== 'string' || body.key === '') throw HttpError.of('ORCA_USAGE', 'key: must be the private key in PEM');
      await deps.certs.put(host, body.cert, body.key, 'manual', new Date(deps.clock.now()));
      deps.changed?.(host);
      const rows = await deps.certs.view(await deps.wanted(), deps.clock.now());
      sendJson(res, 200, { cert: rows.find((r) => r.host === host) });
    }],
  ];
}
