import type { Clock, TimerHandle } from '../core/clock.js';
import type { MetricsBatch } from './plane-messages.js';
import type { ProxyMetrics } from './types.js';

/** Where the plane's primary puts the metrics its workers report (the server's prom-client metrics). */
export interface PlaneMetrics extends ProxyMetrics {
  /** `count` finished requests of one route and status at once. */
  requests(route: string, status: number, count: number): void;
}

/** Upstream samples held at most before a batch is sent early (bounds a worker's buffer). */
export const MAX_BATCH_SAMPLES = 4_096;

/**
 * A worker's ProxyMetrics: counts requests by (route, status) and keeps upstream times (whole
 * microseconds) by route, and hands them to `send` as one batch at most `flushMs` after the first
 * one since the last batch, or at once when MAX_BATCH_SAMPLES times are held. Nothing is timed
 * while nothing happens (an idle worker sets no timer).
 */
export class MetricsBatcher implements ProxyMetrics {
  private requestCounts = new Map<string, Map<number, number>>();
  private upstream = new Map<string, number[]>();
  private samples = 0;
  private timer: TimerHandle | null = null;

  constructor(
    private readonly clock: Clock,
    private readonly flushMs: number,
    private readonly send: (batch: MetricsBatch) => void,
  ) {}

  request(route: string, status: number): void {
    let byStatus = this.requestCounts.get(route);
    if (!byStatus) this.requestCounts.set(route, (byStatus = new Map()));
    byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
    this.arm();
  }

  upstreamSeconds(route: string, seconds: number): void {
    let list = this.upstream.get(route);
    if (!list) this.upstream.set(route, (list = []));
    list.push(Math.max(0, Math.round(seconds * 1e6)));
    if (++this.samples >= MAX_BATCH_SAMPLES) this.flush();
    else this.arm();
  }

  /** Sends what is held now (nothing when nothing is). */
  flush(): void {
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = null;
    if (this.requestCounts.size === 0 && this.upstream.size === 0) return;
    const batch: MetricsBatch = { requests: [], upstreamMicros: [] };
    for (const [route, byStatus] of this.requestCounts) for (const [status, count] of byStatus) batch.requests.push([route, status, count]);
    for (const [route, micros] of this.upstream) batch.upstreamMicros.push([route, micros]);
    this.requestCounts = new Map();
    this.upstream = new Map();
    this.samples = 0;
    this.send(batch);
  }

  private arm(): void {
    if (!this.timer) this.timer = this.clock.setTimeout(() => this.flush(), this.flushMs);
  }
}

/** Adds a worker's batch to the primary's metrics. Malformed entries are skipped. */
export function applyMetricsBatch(metrics: PlaneMetrics, batch: Partial<MetricsBatch>): void {
  for (const entry of Array.isArray(batch.requests) ? batch.requests : []) {
    const [route, status, count] = Array.isArray(entry) ? entry : [];
    if (typeof route === 'string' && Number.isInteger(status) && Number.isInteger(count) && (count as number) > 0) metrics.requests(route, status as number, count as number);
  }
  for (const entry of Array.isArray(batch.upstreamMicros) ? batch.upstreamMicros : []) {
    const [route, micros] = Array.isArray(entry) ? entry : [];
    if (typeof route !== 'string' || !Array.isArray(micros)) continue;
    for (const us of micros) if (typeof us === 'number' && Number.isFinite(us) && us >= 0) metrics.upstreamSeconds(route, us / 1e6);
  }
}
