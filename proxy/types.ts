import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';

/** Where the proxy reports requests; the server adapts its prom-client metrics to this. */
export interface ProxyMetrics {
  /** One finished request (or tunnel) per call; route is the service name, "-" when none matched. */
  request(route: string, status: number): void;
  /** Time from accepting the request to the upstream's response headers, retries included. */
  upstreamSeconds(route: string, seconds: number): void;
}

export interface ProxyOptions {
  log: Logger;
  clock: Clock;
  metrics?: ProxyMetrics;
  /** Connecting to a backend; a timeout moves on to the next backend, then answers 504. */
  connectTimeoutMs?: number;
  /** From sending the request to the upstream's complete response headers; then 504. */
  headersTimeoutMs?: number;
  /** Longest silence while the upstream streams its response body; then the response is cut. */
  idleTimeoutMs?: number;
  /** Connections open at once to one backend; further requests queue. */
  maxSocketsPerBackend?: number;
}

/**
 * Proxy defaults. They belong in core/defaults.ts with the others; they sit here until the proxy
 * is wired into the server (core/ is owned elsewhere).
 */
export const PROXY_DEFAULTS = {
  connectTimeoutMs: 5_000,
  headersTimeoutMs: 60_000,
  idleTimeoutMs: 60_000,
  maxSocketsPerBackend: 256,
  /** How long a client's idle keep-alive connection stays open (above common LB idle timeouts). */
  clientKeepAliveMs: 65_000,
  /** close() lets in-flight requests finish for this long, then cuts them. */
  closeGraceMs: 5_000,
  /** A backend that failed to connect is skipped by new requests for this long (nginx: fail_timeout). */
  failedBackendSkipMs: 2_000,
  /** At most one warning per backend in this window; the rest are counted in the next one. */
  warnIntervalMs: 1_000,
} as const;

/** Status recorded for a request whose client went away before its response was complete (nginx's 499). */
export const CLIENT_CLOSED = 499;
