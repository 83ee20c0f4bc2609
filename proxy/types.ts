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
  /** Client side (the listening server); each defaults to PROXY_DEFAULTS, where they are described. */
  clientHeadersTimeoutMs?: number;
  clientRequestTimeoutMs?: number;
  clientKeepAliveMs?: number;
  timeoutCheckIntervalMs?: number;
  maxHeaderBytes?: number;
  maxHeaderCount?: number;
  maxConnections?: number;
  /** Tunnels (WebSocket upgrades). */
  tunnelIdleTimeoutMs?: number;
  maxTunnels?: number;
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
  /**
   * A client must send its whole request head within this (Node: server.headersTimeout), a new
   * connection its first head too; else 408 and the connection is closed (slowloris, idle sockets).
   */
  clientHeadersTimeoutMs: 10_000,
  /**
   * A client must send its whole request, head and body, within this (server.requestTimeout);
   * else 408 (or a cut connection once the response began). Bounds how long a slow upload holds a
   * backend connection. Traefik's readTimeout has the same default.
   */
  clientRequestTimeoutMs: 60_000,
  /** How often the two timeouts above are checked (server's connectionsCheckingInterval; Node's 30 s is too coarse). */
  timeoutCheckIntervalMs: 1_000,
  /** Request line and headers together, at most (server maxHeaderSize); more is 431. Node's default. */
  maxHeaderBytes: 16 * 1024,
  /** Header fields per request, at most; more is 431 (Apache's LimitRequestFields). */
  maxHeaderCount: 100,
  /** Client connections open at once (server.maxConnections); further ones are closed at accept. */
  maxConnections: 4_096,
  /** A tunnel with no byte either way for this long is closed (clients that ping stay open). */
  tunnelIdleTimeoutMs: 300_000,
  /** Tunnels open or being set up at once; further upgrade requests get 503. */
  maxTunnels: 1_024,
  /** close() lets in-flight requests finish for this long, then cuts them. */
  closeGraceMs: 5_000,
  /** A backend that failed to connect is skipped by new requests for this long (nginx: fail_timeout). */
  failedBackendSkipMs: 2_000,
  /** At most one warning per backend in this window; the rest are counted in the next one. */
  warnIntervalMs: 1_000,
} as const;

/** Status recorded for a request whose client went away before its response was complete (nginx's 499). */
export const CLIENT_CLOSED = 499;
