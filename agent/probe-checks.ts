import { request } from 'node:http';
import { connect } from 'node:net';
import type { Runtime } from '../runtime/types.js';
import { errorMessage } from '../core/errors.js';

export interface CheckResult {
  ok: boolean;
  /** Why it failed (or what passed), for logs and status. */
  detail: string;
}

/** The I/O of probes, behind a port so the health reconciler can be tested on a manual clock. */
export interface ProbeChecks {
  http(host: string, port: number, path: string, timeoutMs: number): Promise<CheckResult>;
  tcp(host: string, port: number, timeoutMs: number): Promise<CheckResult>;
  exec(containerId: string, command: string[], timeoutMs: number): Promise<CheckResult>;
}

/**
 * Real probes. HTTP GET and TCP connect go to the node's advertise address and the
 * published host port (never a container IP); exec runs inside the container.
 * Timeouts use the sockets' own timers.
 */
export function realProbeChecks(runtime: Runtime): ProbeChecks {
  return {
    http(host, port, path, timeoutMs) {
      return new Promise((resolve) => {
        const req = request({ host, port, path, method: 'GET', timeout: timeoutMs, agent: false, headers: { 'user-agent': 'orca-probe' } }, (res) => {
          res.resume();
          const code = res.statusCode ?? 0;
          resolve({ ok: code >= 200 && code < 400, detail: `HTTP ${code}` });
        });
        req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
        req.on('error', (err) => resolve({ ok: false, detail: errorMessage(err) }));
        req.end();
      });
    },
    tcp(host, port, timeoutMs) {
      return new Promise((resolve) => {
        const sock = connect({ host, port });
        sock.setTimeout(timeoutMs);
        const done = (r: CheckResult) => {
          sock.destroy();
          resolve(r);
        };
        sock.on('connect', () => done({ ok: true, detail: 'connected' }));
        sock.on('timeout', () => done({ ok: false, detail: `timed out after ${timeoutMs} ms` }));
        sock.on('error', (err) => done({ ok: false, detail: errorMessage(err) }));
      });
    },
    async exec(containerId, command, timeoutMs) {
      try {
        const r = await runtime.exec(containerId, command, timeoutMs);
        if (r.timedOut) return { ok: false, detail: `timed out after ${timeoutMs} ms` };
        return { ok: r.exitCode === 0, detail: `exit ${r.exitCode}${r.output ? `: ${r.output.trim().slice(0, 200)}` : ''}` };
      } catch (err) {
        return { ok: false, detail: errorMessage(err) };
      }
    },
  };
}
