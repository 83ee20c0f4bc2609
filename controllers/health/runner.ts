import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/log.js';
import type { ProbeSpec } from '../../manifest/types.js';
import type { ProbeTarget } from './actions.js';
import type { CheckResult, ProbeChecks } from './checks.js';
import type { ProbeView } from './planner.js';
import { applyProbeResult, initialCounters, type ProbeCounters, type ProbeKind } from './probe-state.js';
import { ProbeWheel, type WheelEntry } from './probe-wheel.js';

/**
 * The probe runners of one node: the health reconciler's I/O half. Each runner checks one probe
 * of one container on the injected clock — first at the time the planner gave, then every
 * interval_secs, each check bounded by timeout_secs; all of them on one shared timer grid
 * (ProbeWheel: a check runs at most ⅛ of its interval early or late) — folds the answers into its counters
 * (applyProbeResult) and calls `verdictChanged(service)` when the counters' status changes.
 * A failed liveness probe stops checking (the instance is being replaced). What the runners show
 * (views) is the health planner's observed state; deciding what a verdict means is the planner's.
 */
export class ProbeRunners {
  /** Runners by `instance/containerId`, by service. */
  private readonly byService = new Map<string, Map<string, Runner[]>>();
  private readonly wheel: ProbeWheel;

  constructor(
    private readonly clock: Clock,
    private readonly checks: ProbeChecks,
    private readonly verdictChanged: (service: string) => void,
    private readonly log: Logger,
  ) {
    this.wheel = new ProbeWheel(clock);
  }

  start(target: ProbeTarget, kind: ProbeKind, spec: ProbeSpec, firstInMs: number): void {
    let targets = this.byService.get(target.service);
    if (!targets) this.byService.set(target.service, (targets = new Map()));
    const key = `${target.instance}/${target.containerId}`;
    const runners = targets.get(key) ?? [];
    if (runners.some((r) => r.kind === kind)) return;
    const r = new Runner(this.clock, this.wheel, kind, spec, target, this.checks, () => this.verdictChanged(target.service), this.log);
    runners.push(r);
    targets.set(key, runners);
    r.schedule(firstInMs);
  }

  stop(service: string, instance: string, containerId: string): void {
    const targets = this.byService.get(service);
    const key = `${instance}/${containerId}`;
    for (const r of targets?.get(key) ?? []) r.stop();
    targets?.delete(key);
    if (targets?.size === 0) this.byService.delete(service);
  }

  /** Marks a verdict as acted on. */
  reported(service: string, instance: string, containerId: string, kind: ProbeKind): void {
    const r = this.byService.get(service)?.get(`${instance}/${containerId}`)?.find((x) => x.kind === kind);
    if (r) r.reported = r.counters.status;
  }

  views(service: string): ProbeView[] {
    const out: ProbeView[] = [];
    for (const runners of this.byService.get(service)?.values() ?? []) for (const r of runners) out.push(r.view());
    return out;
  }

  services(): string[] {
    return [...this.byService.keys()];
  }

  /**
   * Resolves once every readiness probe running now has answered at least once, or after
   * maxMs: after a restart, adopted instances are ready again before anything relies on it.
   */
  async firstRound(maxMs: number): Promise<void> {
    const pending = this.all().filter((r) => r.kind === 'readiness' && !r.answered);
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
    for (const targets of this.byService.values()) {
      for (const [key, runners] of targets) {
        if (key.startsWith(`${instance}/`)) return runners.find((r) => r.kind === 'readiness')?.lastDetail;
      }
    }
    return undefined;
  }

  stopAll(): void {
    for (const r of this.all()) r.stop();
    this.byService.clear();
  }

  private all(): Runner[] {
    return [...this.byService.values()].flatMap((t) => [...t.values()].flat());
  }
}

class Runner {
  private timer: WheelEntry | null = null;
  private stopped = false;
  counters: ProbeCounters;
  reported: ProbeCounters['status'];
  lastDetail: string | undefined;
  answered = false;
  /** With spec.startIntervalSecs, until the probe first passes: when the next interval check is due (a failure counts then). */
  private countFailuresFrom = -Infinity;
  private passedOnce = false;
  private answer!: () => void;
  /** Resolves after the first check has been counted. */
  readonly firstAnswer = new Promise<void>((r) => (this.answer = r));

  constructor(
    private readonly clock: Clock,
    private readonly wheel: ProbeWheel,
    readonly kind: ProbeKind,
    private readonly spec: ProbeSpec,
    private readonly target: ProbeTarget,
    private readonly checks: ProbeChecks,
    private readonly changed: () => void,
    private readonly log: Logger,
  ) {
    this.counters = initialCounters(kind);
    this.reported = this.counters.status;
  }

  view(): ProbeView {
    const t = this.target;
    return {
      instance: t.instance,
      containerId: t.containerId,
      kind: this.kind,
      spec: this.spec,
      ...(t.servicePort !== undefined ? { servicePort: t.servicePort } : {}),
      ports: t.ports,
      counters: this.counters,
      ...(this.lastDetail !== undefined ? { lastDetail: this.lastDetail } : {}),
      reported: this.reported,
    };
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) this.wheel.cancel(this.timer);
    this.timer = null;
  }

  schedule(ms: number): void {
    this.scheduleAt(this.clock.now() + ms);
  }

  private scheduleAt(due: number, intervalMs = this.spec.intervalSecs * 1000): void {
    if (this.stopped) return;
    const entry = this.wheel.schedule(
      () => {
        this.timer = null;
        void this.run(entry.at);
      },
      due,
      intervalMs,
    );
    this.timer = entry;
  }

  /** One check; `slot` is the grid time it was due at (its timer may fire a little later). */
  private async run(slot: number): Promise<void> {
    if (this.stopped) return;
    const began = Math.min(slot, this.clock.now());
    const result = await this.check();
    if (this.stopped) return;
    const start = this.spec.startIntervalSecs;
    const quick = this.kind === 'readiness' && start !== undefined && !this.passedOnce;
    if (quick && !result.ok && began < this.countFailuresFrom) {
      // A look between interval checks that failed: counts for nothing; look again soon.
      this.scheduleAt(Math.min(began + start * 1000, this.countFailuresFrom), start * 1000);
      return;
    }
    if (quick) this.countFailuresFrom = began + this.spec.intervalSecs * 1000;
    if (result.ok) this.passedOnce = true;
    this.lastDetail = result.detail;
    const { counters, changed } = applyProbeResult(this.counters, result.ok, this.spec);
    this.counters = counters;
    this.answered = true;
    queueMicrotask(this.answer);
    const t = this.target;
    if (!result.ok) this.log.debug({ service: t.service, instance: t.instance, probe: this.kind, detail: result.detail, failures: counters.failures }, 'probe failed');
    if (changed) this.changed();
    if (changed === 'fail' && this.kind === 'liveness') return; // the instance is being replaced; no more probes for it
    // From the grid time this check was due at, not when its timer fired: a late timer (a busy
    // machine) does not push the probe off its grid. Quick looks before a first pass keep to a
    // grid of their own cadence.
    const every = quick && !this.passedOnce ? (start as number) : this.spec.intervalSecs;
    this.scheduleAt(began + every * 1000, every * 1000);
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
