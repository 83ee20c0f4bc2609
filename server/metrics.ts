import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { EventRecord } from '../store/types.js';
import { DEFAULTS } from '../core/defaults.js';
import type { InstanceReport } from '../protocol/reports.js';
import type { NodeState } from './nodes.js';

/**
 * Prometheus metrics of SPEC §5. Reconcile counts and durations, restarts and recovery times
 * are pushed as they happen; instances and nodes per state are read at scrape time from what
 * the nodes show now (a gauge that is never stale).
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly actions: Counter<'reconciler' | 'action' | 'outcome'>;
  private readonly actionSeconds: Histogram<'reconciler' | 'action' | 'outcome'>;
  private readonly restarts: Counter<'service' | 'reason'>;
  private readonly recovery: Histogram<'service'>;
  /** Proxied requests by route and status not yet handed to prom-client (at the next scrape). */
  private proxyPending = new Map<string, Map<number, number>>();
  private readonly proxyUpstream: TallyHistogram;
  /** API requests refused for a missing or wrong token (every one; the log line is rate-limited). */
  readonly apiUnauthorized: Counter;

  constructor(sources: { instances: () => Promise<InstanceReport[]>; nodes: () => Array<{ state: NodeState }> }) {
    const registers = [this.registry];
    // The event-loop lag histogram samples on a timer of its own: prom-client's 10 ms default woke an
    // idle server 100 times a second (~0.3-0.9 % of a core by itself). A stall still shows in the
    // sample it delays.
    collectDefaultMetrics({ register: this.registry, prefix: 'orca_process_', eventLoopMonitoringPrecision: DEFAULTS.metricsLoopSampleMs });
    this.actions = new Counter({
      name: 'orca_reconcile_actions_total',
      help: 'Reconcile actions taken, by reconciler, action and outcome',
      labelNames: ['reconciler', 'action', 'outcome'],
      registers,
    });
    this.actionSeconds = new Histogram({
      name: 'orca_reconcile_action_duration_seconds',
      help: 'Duration of reconcile actions',
      labelNames: ['reconciler', 'action', 'outcome'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.restarts = new Counter({
      name: 'orca_restarts_total',
      help: 'Instances replaced after a failure, by service and reason',
      labelNames: ['service', 'reason'],
      registers,
    });
    this.recovery = new Histogram({
      name: 'orca_recovery_seconds',
      help: 'Time from an instance failure to its replacement being ready',
      labelNames: ['service'],
      buckets: [0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 5, 10, 30, 60, 120],
      registers,
    });
    // The proxy's two metrics are counted per request in plain numbers and shown through
    // prom-client at scrape time: its inc() and observe() validate and hash the labels on every
    // call, ~5 % of the proxy's CPU per request.
    const pending = (): Map<string, Map<number, number>> => {
      const p = this.proxyPending;
      this.proxyPending = new Map();
      return p;
    };
    new Counter({
      name: 'orca_proxy_requests_total',
      help: 'Proxied requests by route and status',
      labelNames: ['route', 'status'],
      registers,
      collect() {
        for (const [route, byStatus] of pending()) for (const [status, n] of byStatus) this.inc({ route, status: String(status) }, n);
      },
    });
    this.proxyUpstream = new TallyHistogram('orca_proxy_upstream_duration_seconds', 'Time to the upstream response headers', PROXY_UPSTREAM_BUCKETS);
    this.registry.registerMetric(this.proxyUpstream as unknown as Histogram);
    this.apiUnauthorized = new Counter({
      name: 'orca_api_unauthorized_total',
      help: 'API requests refused for a missing or wrong token',
      registers,
    });
    new Gauge({
      name: 'orca_instances',
      help: 'Instances by lifecycle state, as observed now',
      labelNames: ['state'],
      registers,
      async collect() {
        this.reset();
        for (const r of await sources.instances()) this.inc({ state: r.state });
      },
    });
    new Gauge({
      name: 'orca_nodes',
      help: 'Nodes by state',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        for (const n of sources.nodes()) this.inc({ state: n.state });
      },
    });
  }

  /** Counts one reconcile action (and a restart, when it replaced a failed instance). */
  observeAction(e: EventRecord): void {
    const labels = { reconciler: e.reconciler, action: e.action, outcome: e.outcome.startsWith('error') ? 'error' : e.outcome };
    this.actions.inc(labels);
    this.actionSeconds.observe(labels, e.durationMs / 1000);
    if (e.action === 'container.create' && labels.outcome === 'ok' && e.reason.startsWith('replace-after-')) {
      this.restarts.inc({ service: e.service ?? '', reason: e.reason.slice('replace-after-'.length) });
    }
  }

  /** Counts `count` proxied requests of one route and status. */
  proxyRequest(route: string, status: number, count = 1): void {
    let byStatus = this.proxyPending.get(route);
    if (!byStatus) this.proxyPending.set(route, (byStatus = new Map()));
    byStatus.set(status, (byStatus.get(status) ?? 0) + count);
  }

  /** One proxied request's time to its upstream response headers. */
  proxyUpstreamSeconds(route: string, seconds: number): void {
    this.proxyUpstream.observe(route, seconds);
  }

  observeRecovery(service: string, seconds: number): void {
    this.recovery.observe({ service }, seconds);
  }

  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

export const PROXY_UPSTREAM_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5];

/**
 * A histogram with one label, `route`, observed with a map lookup and a few additions, and shown
 * in prom-client's registry in the shape its own Histogram gives (metrics.test.ts compares the two
 * expositions). Registered with registerMetric, which reads name, help, type, aggregator and get().
 */
export class TallyHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private byRoute = new Map<string, { counts: number[]; sum: number; count: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
  ) {}

  observe(route: string, value: number): void {
    if (!Number.isFinite(value)) return;
    let t = this.byRoute.get(route);
    if (!t) this.byRoute.set(route, (t = { counts: this.bounds.map(() => 0), sum: 0, count: 0 }));
    const b = this.bounds;
    for (let i = 0; i < b.length; i++) {
      if (value <= (b[i] as number)) {
        (t.counts[i] as number)++;
        break;
      }
    }
    t.sum += value;
    t.count++;
  }

  reset(): void {
    this.byRoute = new Map();
  }

  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> }> {
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    const bucket = `${this.name}_bucket`;
    for (const [route, t] of this.byRoute) {
      let acc = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        acc += t.counts[i] as number;
        values.push({ labels: { le: this.bounds[i] as number, route }, value: acc, metricName: bucket });
      }
      values.push(
        { labels: { le: '+Inf', route }, value: t.count, metricName: bucket },
        { labels: { route }, value: t.sum, metricName: `${this.name}_sum` },
        { labels: { route }, value: t.count, metricName: `${this.name}_count` },
      );
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }
}
