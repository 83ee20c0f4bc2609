/**
 * The messages between the proxy plane's primary (proxy/plane.ts, in the server) and its worker
 * processes (proxy/plane-worker.ts), over the cluster module's IPC channel (JSON). Both ends are
 * Orca's own code in processes the primary started; each side still checks a message's kind and
 * ignores what it does not know, so that a stray message (a future version, a bug) is dropped
 * rather than thrown.
 */
import type { Route } from './table.js';
import type { EdgeState } from './tls.js';

/** Which of the Proxy's listeners: its main one (listen), one more (listenAlso) or TLS (listenTls). */
export type ListenerKind = 'main' | 'also' | 'tls';

/** The Proxy options a worker is built with (numbers only: they cross a process boundary). */
export interface WorkerProxyOptions {
  maxConnections?: number;
  maxTunnels?: number;
}

export type ToWorker =
  | { t: 'init'; index: number; logLevel: string; options: WorkerProxyOptions; routes: Route[]; edge: EdgeState; flushMs: number }
  | { t: 'routes'; routes: Route[] }
  | { t: 'edge'; edge: EdgeState }
  | { t: 'listen'; id: number; kind: ListenerKind; host: string; port: number }
  | { t: 'unlisten'; id: number }
  | { t: 'drain'; id: number; address: string; maxMs: number }
  | { t: 'close' };

/** Requests by (route, status) with their count, and upstream times in microseconds by route. */
export interface MetricsBatch {
  requests: Array<[route: string, status: number, count: number]>;
  upstreamMicros: Array<[route: string, micros: number[]]>;
}

export type FromWorker =
  | { t: 'hello' }
  | { t: 'ready' }
  | { t: 'listening'; id: number; host: string; port: number }
  | { t: 'listen-failed'; id: number; error: string; code?: string }
  | { t: 'drained'; id: number }
  | ({ t: 'metrics' } & MetricsBatch)
  | { t: 'closed' };

const KINDS_TO_WORKER = new Set(['init', 'routes', 'edge', 'listen', 'unlisten', 'drain', 'close']);
const KINDS_FROM_WORKER = new Set(['hello', 'ready', 'listening', 'listen-failed', 'drained', 'metrics', 'closed']);

function kindOf(m: unknown, kinds: Set<string>): string | null {
  if (typeof m !== 'object' || m === null) return null;
  const t = (m as { t?: unknown }).t;
  return typeof t === 'string' && kinds.has(t) ? t : null;
}

/** The message, when it is one the worker knows (by kind); null otherwise. */
export function asToWorker(m: unknown): ToWorker | null {
  return kindOf(m, KINDS_TO_WORKER) ? (m as ToWorker) : null;
}

/** The message, when it is one the primary knows (by kind); null otherwise. */
export function asFromWorker(m: unknown): FromWorker | null {
  return kindOf(m, KINDS_FROM_WORKER) ? (m as FromWorker) : null;
}
