import { connect, isIPv6 } from 'node:net';
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
    http: httpCheck,
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
    sock.on('error', (err) => done({ ok: false, detail: errorMessage(err) }));
  });
}

/** Largest response head (status line and headers) an HTTP probe reads, as Node's own default. */
const MAX_HEAD_BYTES = 16 * 1024;
const STATUS_LINE = /^HTTP\/1\.[01] ([1-9]\d\d)(?: [^\r\n]*)?\r?\n/;

/**
 * HTTP GET on a plain socket: the request line and three headers out, the response's head in,
 * its status line judged (200–399 pass), the connection closed without reading the body — a
 * third of node:http's CPU per check, which is most of what an idle node does. The head must end
 * within MAX_HEAD_BYTES and the probe's timeout (for the whole check); anything else fails it.
 */
export function httpCheck(host: string, port: number, path: string, timeoutMs: number): Promise<CheckResult> {
  // The manifest allows any path starting with '/'; only what goes on a request line unescaped is sent.
  if (!/^\/[\x21-\x7e]*$/.test(path)) return Promise.resolve({ ok: false, detail: 'the probe path has characters a request line cannot carry (escape them, e.g. %20)' });
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    let head = '';
    let settled = false;
    // The timeout bounds the whole check, not each silence: a head dripped a byte at a time
    // must not hold the probe (and so the instance's verdict) open.
    const deadline = setTimeout(() => done({ ok: false, detail: `timed out after ${timeoutMs} ms` }), timeoutMs);
    const done = (r: CheckResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      sock.destroy();
      resolve(r);
    };
    sock.setEncoding('latin1');
    sock.on('connect', () => {
      const hostHeader = isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
      sock.write(`GET ${path} HTTP/1.1\r\nHost: ${hostHeader}\r\nUser-Agent: orca-probe\r\nConnection: close\r\n\r\n`);
    });
    sock.on('data', (chunk: string) => {
      head += chunk;
      const end = head.search(/\r?\n\r?\n/);
      if (end < 0) {
        if (head.length > MAX_HEAD_BYTES) done({ ok: false, detail: `the response head is longer than ${MAX_HEAD_BYTES} bytes` });
        return;
      }
      const m = STATUS_LINE.exec(head);
      if (!m || end > MAX_HEAD_BYTES) return done({ ok: false, detail: 'not an HTTP/1.x response' });
      const code = Number(m[1]);
      done({ ok: code >= 200 && code < 400, detail: `HTTP ${code}` });
    });
    sock.on('end', () => done({ ok: false, detail: head ? 'the connection closed before the response head ended' : 'socket hang up' }));
    sock.on('error', (err) => done({ ok: false, detail: errorMessage(err) }));
  });
}
