import type { Clock, TimerHandle } from '../../core/clock.js';
import type { Logger } from '../../core/log.js';
import type { ProbeSpec } from '../../manifest/types.js';
import type { CheckResult, ProbeChecks } from './checks.js';
import { applyProbeResult, initialCounters, type ProbeCounters, type ProbeKind } from './probe-state.js';

/** One running instance to probe. */
export interface ProbeTarget {
  service: string;
  instance: string;
  containerId: string;
  /** The node's advertise address, where its ports are published. */
  host: string;
  /** Published container port → host port. */
  ports: Record<string, number>;
  /** ms since epoch the container started; initial delays count from here. */
  startedAtMs: number;
  readiness?: ProbeSpec;
  liveness?: ProbeSpec;
  /** The service port, the default probe port. */
  servicePort?: number;
}

export interface HealthEvents {
  /** A readiness probe crossed its threshold. */
  readiness(service: string, instance: string, ready: boolean, detail: string): void;
  /** A liveness probe failed failure_threshold times in a row. */
  livenessFailed(service: string, instance: string, detail: string): void;
}

/**
 * The health reconciler (runs in every agent): probes each running instance on the
 * injected clock and turns results into lifecycle events. Timers start at the container's
 * start plus initial_delay_secs, then every interval_secs; each check is bounded by
 * timeout_secs. Idempotent per service: syncService with the same targets changes nothing.
 */
export class HealthReconciler {
  private readonly runners = new Map<string, ProbeRunner[]>();
  private readonly byService = new Map<string, Set<string>>();

  constructor(
    private readonly clock: Clock,
    private readonly checks: ProbeChecks,
    private readonly events: HealthEvents,
    private readonly log: Logger,
  ) {}

  /** Makes the probed set of a service exactly `targets` (keyed by instance and container). */
  syncService(service: string, targets: ProbeTarget[]): void {
    const want = new Map(targets.map((t) => [`${t.instance}/${t.containerId}`, t]));
    const have = this.byService.get(service) ?? new Set<string>();
    for (const key of have) {
      if (want.has(key)) continue;
      for (const r of this.runners.get(key) ?? []) r.stop();
      this.runners.delete(key);
      have.delete(key);
    }
    for (const [key, t] of want) {
      if (have.has(key)) continue;
      const runners: ProbeRunner[] = [];
      if (t.readiness) runners.push(new ProbeRunner(this.clock, 'readiness', t.readiness, t, this.checks, this.events, this.log));
      if (t.liveness) runners.push(new ProbeRunner(this.clock, 'liveness', t.liveness, t, this.checks, this.events, this.log));
      for (const r of runners) r.start();
      this.runners.set(key, runners);
      have.add(key);
    }
    if (have.size > 0) this.byService.set(service, have);
    else this.byService.delete(service);
  }

  /**
   * Resolves once every readiness probe running now has answered at least once, or after
   * maxMs: after a restart, adopted instances are ready again before anything relies on it.
   */
  async firstRound(maxMs: number): Promise<void> {
    const pending = [...this.runners.values()].flat().filter((r) => r.kind === 'readiness' && !r.answered);
    if (pending.length === 0) return;
    await new Promise<void>((resolve) => {
      const timer = this.clock.setTimeout(resolve, maxMs);
      void Promise.all(pending.map((r) => r.firstAnswer)).then(() => {
        this.clock.clearTimeout(timer);
        resolve();
      });
    });
  }

  /** The last result of an instance's readiness probe, for humans. */
  lastReadiness(instance: string): string | undefined {
    for (const [key, runners] of this.runners) {
      if (!key.startsWith(`${instance}/`)) continue;
      return runners.find((r) => r.kind === 'readiness')?.lastDetail;
    }
    return undefined;
  }

  stop(): void {
    for (const rs of this.runners.values()) for (const r of rs) r.stop();
    this.runners.clear();
    this.byService.clear();
  }
}

class ProbeRunner {
  private timer: TimerHandle | null = null;
  private stopped = false;
  private counters: ProbeCounters;
  lastDetail: string | undefined;
  answered = false;
  private answer!: () => void;
  /** Resolves after the first check has been counted. */
  readonly firstAnswer = new Promise<void>((r) => (this.answer = r));

  constructor(
    private readonly clock: Clock,
    readonly kind: ProbeKind,
    private readonly spec: ProbeSpec,
    private readonly target: ProbeTarget,
    private readonly checks: ProbeChecks,
    private readonly events: HealthEvents,
    private readonly log: Logger,
  ) {
    this.counters = initialCounters(kind);
  }

  start(): void {
    const firstAt = this.target.startedAtMs + this.spec.initialDelaySecs * 1000;
    this.schedule(Math.max(0, firstAt - this.clock.now()));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimeout(() => void this.run(), ms);
  }

  private async run(): Promise<void> {
    if (this.stopped) return;
    const began = this.clock.now();
    const result = await this.check();
    if (this.stopped) return;
    this.lastDetail = result.detail;
    const { counters, changed } = applyProbeResult(this.counters, result.ok, this.spec);
    this.counters = counters;
    this.answered = true;
    queueMicrotask(this.answer);
    const t = this.target;
    if (!result.ok) this.log.debug({ service: t.service, instance: t.instance, probe: this.kind, detail: result.detail, failures: counters.failures }, 'probe failed');
    if (changed && this.kind === 'readiness') this.events.readiness(t.service, t.instance, changed === 'pass', result.detail);
    if (changed === 'fail' && this.kind === 'liveness') {
      this.events.livenessFailed(t.service, t.instance, `${describe(this.spec, t.servicePort)} failed ${counters.failures} times: ${result.detail}`);
      return; // the instance is being replaced; no more probes for it
    }
    this.schedule(Math.max(0, began + this.spec.intervalSecs * 1000 - this.clock.now()));
  }

  private check(): Promise<CheckResult> {
    const c = this.spec.check;
    const timeoutMs = Math.round(this.spec.timeoutSecs * 1000);
    if (c.kind === 'exec') return this.checks.exec(this.target.containerId, c.command, timeoutMs);
    const port = c.port ?? this.target.servicePort;
    const hostPort = port === undefined ? undefined : this.target.ports[String(port)];
    if (hostPort === undefined) return Promise.resolve({ ok: false, detail: `port ${port ?? '(none)'} is not published` });
    if (c.kind === 'http') return this.checks.http(this.target.host, hostPort, c.path, timeoutMs);
    return this.checks.tcp(this.target.host, hostPort, timeoutMs, { containerId: this.target.containerId, containerPort: port as number });
  }
}

function describe(spec: ProbeSpec, servicePort: number | undefined): string {
  const c = spec.check;
  if (c.kind === 'exec') return `exec ${c.command.join(' ')}`;
  const port = c.port ?? servicePort;
  return c.kind === 'http' ? `GET :${port}${c.path}` : `TCP :${port}`;
}
