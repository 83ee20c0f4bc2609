import { request } from 'node:http';
import { connect } from 'node:net';
import type { Runtime } from '../../runtime/types.js';
import { errorMessage, isOrcaError } from '../../core/errors.js';
import { listenVerdict } from '../../runtime/listeners.js';

export interface CheckResult {
  ok: boolean;
  /** Why it failed (or what passed), for logs and status. */
  detail: string;
}

/** The I/O of probes, behind a port so the health reconciler can be tested on a manual clock. */
export interface ProbeChecks {
  http(host: string, port: number, path: string, timeoutMs: number): Promise<CheckResult>;
  /**
   * A TCP check of the published host port. With `inside`, it first proves that something in
   * the container listens on the container port (Docker's forwarder accepts on the host either way).
   */
  tcp(host: string, port: number, timeoutMs: number, inside?: { containerId: string; containerPort: number }): Promise<CheckResult>;
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
    async tcp(host, port, timeoutMs, inside) {
      if (inside) {
        try {
          const verdict = listenVerdict(await runtime.listeners(inside.containerId), inside.containerPort);
          if (!verdict.ok) return verdict;
        } catch (err) {
          if (isOrcaError(err, 'ORCA_RUNTIME_NOT_FOUND')) return { ok: false, detail: errorMessage(err) };
          // This process may not read the container's sockets: connecting is all that is left.
        }
      }
      return connectCheck(host, port, timeoutMs);
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

/** Connects to host:port; passes once connected. */
function connectCheck(host: string, port: number, timeoutMs: number): Promise<CheckResult> {
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
}
