import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/log.js';
import type { ObservedContainer } from '../../runtime/types.js';
import type { EventRecord } from '../../store/types.js';
import type { ReconcileResult, Reconciler } from '../controller.js';
import { isVerdict, type HealthAction } from './actions.js';
import { planHealth, type ProbeSpecs } from './planner.js';
import type { ProbeRunners } from './runner.js';

/** What the health reconciler applies its verdicts to (the host wires it to the instance lifecycle). */
export interface HealthEffects {
  /** A readiness verdict: the instance is (not) ready. */
  setReady(instance: string, ready: boolean): void;
  /** A liveness verdict: the instance is to be replaced. */
  livenessFailed(instance: string): void;
}

export interface HealthReconcilerDeps {
  clock: Clock;
  log: Logger;
  node: string;
  /** Where the node publishes ports when a container does not say. */
  advertise: string;
  /** The probes the service's desired spec asks for, or null when it is not assigned here. */
  desired: (service: string) => ProbeSpecs | null;
  /** The service's containers as last observed from Docker (by the container reconciler). */
  observed: (service: string) => readonly ObservedContainer[];
  /** Instances of the service the lifecycle has given up on. */
  condemned: (service: string) => ReadonlySet<string>;
  /** Every service there is to look at (assigned or observed here). */
  services: () => Iterable<string>;
  runners: ProbeRunners;
  effects: HealthEffects;
  /** The reconciliation log. */
  record: (e: EventRecord) => void;
  /** After actions were applied (the host turns verdicts into other reconcilers' triggers). */
  applied?: (service: string, actions: readonly HealthAction[]) => void;
}

/**
 * The health reconciler (SPEC §3.2), keyed by service: planHealth over the service's desired
 * probes, its running containers as observed, the runners' counters and now; the actions are
 * applied here (runners started and stopped, verdicts passed to the lifecycle and recorded).
 * Triggered by observed-state changes (the host: container reconciles, Docker events), by a
 * runner whose verdict changed, and by the periodic resync. Planning and applying are in memory.
 */
export class HealthReconciler implements Reconciler {
  readonly name = 'health' as const;

  constructor(private readonly deps: HealthReconcilerDeps) {}

  keys(): string[] {
    return [...new Set([...this.deps.services(), ...this.deps.runners.services()])];
  }

  reconcile(service: string): Promise<ReconcileResult> {
    const d = this.deps;
    const actions = planHealth({
      service,
      desired: d.desired(service),
      observed: d.observed(service),
      condemned: d.condemned(service),
      advertise: d.advertise,
      probes: d.runners.views(service),
      now: d.clock.now(),
    });
    for (const a of actions) this.apply(a);
    if (actions.length > 0) d.applied?.(service, actions);
    return Promise.resolve({ kind: 'done' });
  }

  private apply(a: HealthAction): void {
    const d = this.deps;
    switch (a.kind) {
      case 'probe.start':
        d.runners.start(a.target, a.probe, a.spec, a.firstInMs);
        break;
      case 'probe.stop':
        d.runners.stop(a.service, a.instance, a.containerId);
        break;
      case 'instance.ready':
      case 'instance.unready':
        d.runners.reported(a.service, a.instance, a.containerId, 'readiness');
        d.effects.setReady(a.instance, a.kind === 'instance.ready');
        break;
      case 'instance.liveness-failed':
        d.runners.reported(a.service, a.instance, a.containerId, 'liveness');
        d.effects.livenessFailed(a.instance);
        break;
    }
    if (!isVerdict(a)) {
      d.log.debug({ service: a.service, instance: a.instance, action: a.kind, reason: a.reason }, 'probe runner');
      return;
    }
    d.log.info({ service: a.service, instance: a.instance, action: a.kind, reason: a.reason, detail: a.message }, 'health change');
    d.record({
      time: new Date(d.clock.now()).toISOString(),
      reconciler: 'health',
      service: a.service,
      instance: a.instance,
      node: d.node,
      action: a.kind,
      reason: a.reason,
      outcome: 'ok',
      durationMs: 0,
      message: a.message,
    });
  }
}
