import type { Clock } from '../core/clock.js';
import { DEFAULTS } from '../core/defaults.js';
import type { ObservedContainer } from '../runtime/types.js';
import { parseInstanceLabels } from '../runtime/labels.js';
import type { Action } from '../controllers/actions.js';
import type { LifecycleHooks } from '../controllers/executor.js';
import type { ExitReason, SlotState } from '../controllers/container/types.js';
import { InstanceTracker } from '../controllers/instance/tracker.js';
import type { InstanceStateName } from '../controllers/instance/machine.js';
import type { ObservedInstance } from '../controllers/instance/sync.js';
import type { ServiceSpec } from '../manifest/types.js';
import { effectiveReadiness } from '../manifest/probes.js';
import type { InstanceGone } from './runtime-events.js';

const ms = (iso: string | null) => (iso ? Date.parse(iso) : NaN);

/** What the lifecycle tells its host. Must not throw. */
export interface LifecycleListener {
  /** An instance's shown state or readiness changed (routes and reports follow). */
  changed(): void;
}

/**
 * One xstate actor per instance of this node (SPEC §3.2). The executor tells it what it did,
 * every reconcile tells it what Docker shows (level-triggered sync), and its actors own the
 * start timeout. A replacement waiting out its crash-loop backoff is tracked in `backoff` (shown
 * as crashloop) until the executor creates it; when that is due is the container planner's
 * fact (slot memory `nextRetryAt` and its requeue), not the lifecycle's. Nothing is persisted:
 * after a restart the actors are rebuilt from Docker and the slot memory, the two sources of
 * truth.
 */
export class InstanceLifecycle implements LifecycleHooks {
  readonly tracker: InstanceTracker;
  private readonly serviceOf = new Map<string, string>();
  /** Where each instance's service port answers (advertise address and host port), from Docker. */
  private readonly addressOf = new Map<string, string>();
  /** Instances by service, so per-service work never walks the whole node. */
  private readonly byService = new Map<string, Set<string>>();

  constructor(
    private readonly clock: Clock,
    listener: LifecycleListener,
  ) {
    this.tracker = new InstanceTracker(clock);
    this.tracker.subscribe((instance) => {
      if (this.serviceOf.has(instance)) listener.changed();
    });
  }

  private track(service: string, slot: number, instance: string, readyOnStart: boolean, backoffUntil: number | null = null): void {
    this.serviceOf.set(instance, service);
    let set = this.byService.get(service);
    if (!set) this.byService.set(service, (set = new Set()));
    set.add(instance);
    this.tracker.track({
      instance,
      service,
      slot,
      backoffUntil,
      startTimeoutMs: DEFAULTS.instanceStartTimeoutMs,
      // Without a readiness probe (and no port to check) a running instance is ready.
      readyOnStart,
    });
  }

  creating(a: Extract<Action, { kind: 'container.create' }>): void {
    this.track(a.service, a.slot, a.instance, effectiveReadiness(a.assignment.spec) === undefined);
    this.tracker.send(a.instance, { type: 'CREATE' });
  }
  created(instance: string, containerId: string): void {
    this.tracker.send(instance, { type: 'CREATED', containerId });
  }
  createFailed(instance: string, error: string): void {
    this.tracker.send(instance, { type: 'CREATE_FAILED', error });
  }
  started(instance: string): void {
    this.tracker.send(instance, { type: 'STARTED' });
  }
  stopping(instance: string, reason: string): void {
    this.tracker.send(instance, { type: 'STOP', reason });
  }
  /** Gives up on a running instance (a liveness failure, Docker HEALTHCHECK unhealthy): it is stopped and replaced. */
  condemn(instance: string, reason: 'liveness' | 'unhealthy'): void {
    this.tracker.send(instance, { type: 'CONDEMN', reason });
  }
  removed(instance: string): void {
    this.tracker.send(instance, { type: 'REMOVED' });
    this.forget(instance);
  }

  /**
   * Makes every actor of a service agree with what Docker shows now: adopts containers it
   * does not know, moves known ones, marks vanished ones, tracks replacements waiting out a
   * backoff, and forgets instances whose container is gone for good.
   */
  sync(service: string, observed: ObservedContainer[], slots: Iterable<SlotState>, spec?: ServiceSpec): void {
    const seen = new Set<string>();
    const readyOnStart = spec ? effectiveReadiness(spec) === undefined : true;
    for (const c of observed) {
      const l = parseInstanceLabels(c.labels);
      if (!l || l.service !== service) continue;
      seen.add(l.instance);
      if (!this.serviceOf.has(l.instance)) this.track(service, l.slot, l.instance, readyOnStart);
      if (c.status === 'running' && c.hostIp && c.hostPort) this.addressOf.set(l.instance, `${c.hostIp.includes(':') ? `[${c.hostIp}]` : c.hostIp}:${c.hostPort}`);
      this.tracker.syncFromObserved(l.instance, observation(c, this.clock.now()));
      // Docker's own HEALTHCHECK stands in for liveness when the manifest has none.
      if (c.health === 'unhealthy' && spec && !spec.liveness && this.tracker.state(l.instance) === 'running') {
        this.condemn(l.instance, 'unhealthy');
      }
    }
    for (const s of slots) {
      if (s.nextInstance && s.nextRetryAt !== null && !this.serviceOf.has(s.nextInstance)) {
        this.track(service, s.slot, s.nextInstance, readyOnStart, s.nextRetryAt);
      }
      if (s.nextInstance) seen.add(s.nextInstance);
    }
    for (const instance of this.instancesOf(service)) {
      if (seen.has(instance)) continue;
      const state = this.tracker.state(instance);
      if (state === 'creating' || state === 'pending' || state === 'crashloop') continue;
      this.tracker.syncFromObserved(instance, { status: 'missing', exitCode: null, oomKilled: false, at: this.clock.now() });
      if (this.tracker.state(instance) === 'removed' || this.tracker.state(instance) === 'exited') this.forget(instance);
    }
  }

  /**
   * Instances of a service the lifecycle has given up on while their container may still be
   * there (tagged `condemned`: start timeout, liveness failure, Docker HEALTHCHECK unhealthy),
   * with the reason the machine recorded.
   */
  condemned(service: string): Map<string, ExitReason> {
    const out = new Map<string, ExitReason>();
    for (const instance of this.instancesOf(service)) {
      const why = this.tracker.condemned(instance);
      if (why !== null) out.set(instance, why);
    }
    return out;
  }

  /**
   * An event said the container died (how: exit code, OOM kill) or was removed: the instance
   * stops being ready now, and the change is told (routes follow). Unknown instance: no-op.
   */
  observedGone(gone: InstanceGone): void {
    if (!this.serviceOf.has(gone.instance)) return;
    if (gone.kind === 'die') this.tracker.send(gone.instance, { type: 'EXITED', code: gone.exitCode, oomKilled: gone.oomKilled, at: gone.timeMs });
    else this.tracker.send(gone.instance, { type: 'VANISHED', at: gone.timeMs });
  }

  /** Ready instances with a known address. */
  endpoints(): Array<{ service: string; instance: string; address: string }> {
    const out: Array<{ service: string; instance: string; address: string }> = [];
    for (const [instance, service] of this.serviceOf) {
      const address = this.addressOf.get(instance);
      if (address && this.tracker.ready(instance)) out.push({ service, instance, address });
    }
    return out;
  }

  address(instance: string): string | undefined {
    return this.addressOf.get(instance);
  }

  /** Instances of a service that are ready now (running.ready). */
  readySet(service: string): Set<string> {
    const out = new Set<string>();
    for (const instance of this.instancesOf(service)) if (this.tracker.ready(instance)) out.add(instance);
    return out;
  }

  state(instance: string): InstanceStateName | undefined {
    return this.tracker.state(instance);
  }

  ready(instance: string): boolean {
    return this.tracker.ready(instance);
  }

  stop(): void {
    this.tracker.clear();
    this.serviceOf.clear();
    this.byService.clear();
    this.addressOf.clear();
  }

  /** A copy, so callers may forget instances while they walk it. */
  private instancesOf(service: string): string[] {
    return [...(this.byService.get(service) ?? [])];
  }

  private forget(instance: string): void {
    this.tracker.forget(instance);
    this.addressOf.delete(instance);
    const service = this.serviceOf.get(instance);
    this.serviceOf.delete(instance);
    if (service !== undefined) {
      const set = this.byService.get(service);
      set?.delete(instance);
      if (set?.size === 0) this.byService.delete(service);
    }
  }
}

/** What Docker shows of one container, in the tracker's terms. */
function observation(c: ObservedContainer, now: number): ObservedInstance {
  const at = c.status === 'running' ? ms(c.startedAt) : c.status === 'exited' || c.status === 'dead' ? ms(c.finishedAt) : NaN;
  return {
    status: c.status,
    exitCode: c.exitCode,
    oomKilled: c.oomKilled,
    at: Number.isFinite(at) ? at : now,
    containerId: c.id,
    error: c.error,
  };
}
