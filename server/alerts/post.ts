/**
 * One delivery attempt of an alert: a POST of a JSON body to a webhook, bounded in every way —
 * a deadline on the whole attempt (on the injected clock), no redirect followed, no response
 * body read (the status line decides; the connection is closed after the headers), response
 * headers bounded by maxHeaderSize, a new connection each time (no pool to go stale between
 * rare alerts). Never rejects.
 */
import http from 'node:http';
import https from 'node:https';
import type { Clock } from '../../core/clock.js';
import { errorMessage } from '../../core/errors.js';

export type AttemptResult = { ok: true; status: number } | { ok: false; reason: string; status?: number };

export type PostFn = (url: string, body: string, headers: Readonly<Record<string, string>>) => Promise<AttemptResult>;

const MAX_RESPONSE_HEADER_BYTES = 16 * 1024;

/** Builds the poster the dispatcher uses: `timeoutMs` per attempt, 2xx = delivered. */
export function httpPoster(clock: Clock, timeoutMs: number): PostFn {
  return (url, body, headers) => postOnce(url, body, headers, clock, timeoutMs);
}

export function postOnce(url: string, body: string, headers: Readonly<Record<string, string>>, clock: Clock, timeoutMs: number): Promise<AttemptResult> {
  return new Promise((resolve) => {
    let done = false;
    let req: http.ClientRequest | null = null;
    const finish = (r: AttemptResult): void => {
      if (done) return;
      done = true;
      clock.clearTimeout(timer);
      // Nothing more is read or sent: the answer is known (or will never come).
      req?.destroy();
      resolve(r);
    };
    const timer = clock.setTimeout(() => finish({ ok: false, reason: `no answer within ${timeoutMs / 1000} s` }), timeoutMs);
    try {
      const u = new URL(url);
      const mod = u.protocol === 'https:' ? https : http;
      req = mod.request(u, {
        method: 'POST',
        agent: false,
        maxHeaderSize: MAX_RESPONSE_HEADER_BYTES,
        headers: {
          ...headers,
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(body)),
          'user-agent': 'orca-alerts',
          connection: 'close',
        },
      });
      req.on('error', (err) => finish({ ok: false, reason: errorMessage(err) }));
      req.on('response', (res) => {
        res.on('error', () => undefined);
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) finish({ ok: true, status });
        else if (status >= 300 && status < 400) finish({ ok: false, status, reason: `HTTP ${status} (a redirect${res.headers.location ? ` to ${String(res.headers.location).slice(0, 200)}` : ''}: redirects are not followed; configure the final URL)` });
        else finish({ ok: false, status, reason: `HTTP ${status}` });
        res.destroy();
      });
      req.end(body);
    } catch (err) {
      finish({ ok: false, reason: errorMessage(err) });
    }
  });
}
