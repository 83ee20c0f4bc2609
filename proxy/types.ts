import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import { DEFAULTS } from '../core/defaults.js';

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
  /**
   * Connections open at once to one backend; further requests queue in the proxy. Default: no
   * cap (each request in flight gets a connection of its own; maxConnections bounds them).
   */
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

/** The proxy's defaults: core/defaults.ts holds them (DEFAULTS.proxy); this is the proxy's name for them. */
export const PROXY_DEFAULTS = DEFAULTS.proxy;

/** Status recorded for a request whose client went away before its response was complete (nginx's 499). */
export const CLIENT_CLOSED = 499;
