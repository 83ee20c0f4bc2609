import type { Clock, Rng } from '../core/clock.js';
import { DEFAULTS } from '../core/defaults.js';
import { isOrcaError } from '../core/errors.js';
import { instanceId } from '../core/ids.js';
import type { Logger } from '../core/log.js';
import type { ObservedContainer, Runtime } from '../runtime/types.js';
import { LABEL, parseInstanceLabels } from '../runtime/labels.js';
import type { EventRecord } from '../store/types.js';
import type { ReconcileResult, Reconciler } from '../controllers/controller.js';
import type { Executor } from '../controllers/executor.js';
import { planContainers } from '../controllers/container/planner.js';
import type { NodeIdentity } from '../controllers/container/container-spec.js';
import { slotKey } from '../controllers/container/types.js';
import { isHostPathRefused } from '../controllers/container/host-mounts.js';
import type { AssignmentCache } from './assignments.js';
import type { InstanceLifecycle } from './lifecycle.js';
import type { SlotMemory } from './slot-memory.js';

export interface ContainerReconcilerDeps {
  runtime: Runtime;
  clock: Clock;
  rng: Rng;
  log: Logger;
  identity: NodeIdentity;
  assignments: AssignmentCache;
  slots: SlotMemory;
  lifecycle: InstanceLifecycle;
  executor: Executor;
  /** The last readiness answer of an instance (the health reconciler's observed state). */
  lastReadiness: (instance: string) => string | undefined;
  /** The service's containers as just listed: the observed state other reconcilers read. */
  observed: (service: string, containers: ObservedContainer[]) => void;
  /**
   * The container's last run was OOM-killed although Docker's inspect may say otherwise (its
   * `oom` event came after the `die`; see DeathWatch). Absent: inspect is believed.
   */
  lateOomKilled?: (containerId: string) => boolean;
  record: (e: EventRecord) => void;
  onChange?: () => void;
  onRecovery?: (service: string, seconds: number, detail?: RecoveryDetail) => void;
}

/**
 * The container reconciler as this node runs it, keyed by service: lists the service's
 * containers, brings the instance lifecycle in step with them, plans with planContainers over the
 * assignments, slot memory, condemned and ready sets, and has the executor apply the plan. A
 * missing image is a terminal error kept for status and retried slowly; recovery times are
 * reported once a failed slot's replacement is ready. keys() are the assigned services; the
 * host's full resync adds the services observed here and removes orphans (see planResync).
 */
/** Which instance recovered a slot: the ready replacement, the one that failed, and why it failed. */
export interface RecoveryDetail {
  instance: string;
  failed: string;
  reason: string;
}

export class ContainerReconciler implements Reconciler {
  readonly name = 'container' as const;
  /** Slots whose instance failed and whose replacement is not ready yet: failed instance and when. */
  private readonly recovering = new Map<string, { instance: string; atMs: number; reason: string }>();
  /** Image and port pairs already checked against the image's EXPOSE list ("image port"). */
  private readonly portChecked = new Set<string>();
  /** Services whose last reconcile ended in a terminal error (an image missing): the error, for status. */
  readonly terminal = new Map<string, string>();

  constructor(private readonly deps: ContainerReconcilerDeps) {}

  keys(): string[] {
    return [...this.deps.assignments.services()];
  }

  async reconcile(service: string): Promise<ReconcileResult> {
    // Before the first assignment set (a fresh cache, a session not yet welcomed — or refused
    // because another agent holds this node name) nothing here is desired *or* undesired: a
    // Docker event must not make this agent remove containers it was never given.
    if (!this.deps.assignments.known) return { kind: 'done' };
    const desired = this.deps.assignments.of(service);
    const observed = this.withLateOoms(await this.deps.runtime.list({ [LABEL.cluster]: this.deps.identity.cluster, [LABEL.node]: this.deps.identity.node, [LABEL.service]: service }));
    const slots = this.deps.slots.ofService(service);
    const spec = desired[0]?.spec;
    this.deps.lifecycle.sync(service, observed, slots.values(), spec);
    this.deps.observed(service, observed);
    this.noteRecoveries(service, observed);
    const plan = planContainers({
      service,
      desired,
      observed,
      slots,
      condemned: this.deps.lifecycle.condemned(service),
      ready: this.deps.lifecycle.readySet(service),
      now: this.deps.clock.now(),
      lastReadiness: (instance) => this.deps.lastReadiness(instance),
      newInstanceId: (s, rev, slot) => instanceId(s, rev, slot, this.deps.rng),
    });
    // A slot no longer assigned here whose containers are all gone is forgotten: if it comes
    // back (scaled up again, rescheduled here) its old instance's removal is not a failure.
    const desiredSlots = new Set(desired.map((d) => d.slot));
    const observedSlots = new Set(observed.map((c) => parseInstanceLabels(c.labels)?.slot));
    for (const s of slots.values()) {
      if (!desiredSlots.has(s.slot) && !observedSlots.has(s.slot)) await this.deps.slots.forget(s);
    }
    if (plan.actions.length === 0) {
      this.clearTerminal(service);
      return plan.requeueAfterMs !== null ? { kind: 'after', ms: plan.requeueAfterMs } : { kind: 'done' };
    }
    for (const a of plan.actions) {
      if (a.kind === 'slot.update' && a.key.startsWith('failure:') && a.slot.lastExit) {
        this.recovering.set(slotKey(service, a.slot.slot), { instance: a.slot.lastExit.instance, atMs: Date.parse(a.slot.lastExit.at), reason: a.slot.lastExit.reason });
      }
    }
    if (spec?.port !== undefined && plan.actions.some((a) => a.kind === 'container.create')) await this.checkExposedPort(service, spec.image, spec.port);
    const result = await this.deps.executor.execute('container', plan.actions);
    if (result.applied > 0) this.deps.onChange?.();
    if (result.error) {
      const terminal = this.terminalError(service, result.error);
      if (!terminal) throw result.error;
      // Retrying a missing image every second changes nothing; status says why, and a slow
      // retry (or the next watchdog pass) picks the image up once someone builds it.
      if (this.terminal.get(service) !== terminal) {
        this.terminal.set(service, terminal);
        this.deps.log.warn({ service, error: terminal, retryInMs: DEFAULTS.terminalRetryMs }, 'terminal error; retrying slowly');
        this.deps.onChange?.();
      }
      return { kind: 'after', ms: DEFAULTS.terminalRetryMs };
    }
    this.clearTerminal(service);
    return { kind: 'requeue' };
  }

  /** The listing, with the exited containers a late `oom` showed to be OOM-killed marked so. */
  private withLateOoms(listed: ObservedContainer[]): ObservedContainer[] {
    const late = this.deps.lateOomKilled;
    if (!late) return listed;
    return listed.map((c) => (c.status === 'exited' && !c.oomKilled && late(c.id) ? { ...c, oomKilled: true } : c));
  }

  /**
   * Warns (once per image and port) when the service's port is not among the ports its image
   * EXPOSEs — a typo in `port` is the usual cause of an instance that never gets ready. Images
   * that expose nothing are not judged. Never throws.
   */
  private async checkExposedPort(service: string, image: string, port: number): Promise<void> {
    const key = `${image} ${port}`;
    if (this.portChecked.has(key)) return;
    let exposed: number[];
    try {
      exposed = await this.deps.runtime.imageExposedPorts(image);
    } catch {
      return; // a missing image is reported by the create itself; look again next time
    }
    this.portChecked.add(key);
    if (exposed.length === 0 || exposed.includes(port)) return;
    const message = `port ${port} is not among the ports image ${image} exposes (${exposed.join(', ')}): check the service's port`;
    this.deps.log.warn({ service, image, port, exposed }, 'service port not exposed by its image');
    this.deps.record({
      time: new Date(this.deps.clock.now()).toISOString(),
      reconciler: 'container',
      service,
      instance: null,
      node: this.deps.identity.node,
      action: 'image.port-check',
      reason: 'port-not-exposed',
      outcome: 'warning',
      durationMs: 0,
      message,
    });
  }

  /** The status text of an error that retrying soon cannot fix, or null for one worth retrying. */
  private terminalError(service: string, err: unknown): string | null {
    // The agent refuses a host mount outside its allowed directories: no container, whatever the server asked.
    if (isHostPathRefused(err)) return `${err.message} on node ${this.deps.identity.node}`;
    if (!isOrcaError(err, 'ORCA_IMAGE_MISSING')) return null;
    const image = this.deps.assignments.of(service)[0]?.spec.image ?? 'of the service';
    return `image ${image} not found on node ${this.deps.identity.node} (Orca never pulls images: build or load it on that host)`;
  }

  private clearTerminal(service: string): void {
    if (this.terminal.delete(service)) this.deps.onChange?.();
  }

  /** Reports recovery time for slots whose replacement is now ready. */
  private noteRecoveries(service: string, observed: ObservedContainer[]): void {
    if (!this.deps.onRecovery) return;
    for (const [key, r] of this.recovering) {
      if (!key.startsWith(`${service}/`)) continue;
      const slot = Number(key.slice(service.length + 1));
      const replacement = observed.find((c) => {
        const l = parseInstanceLabels(c.labels);
        return l !== undefined && l.slot === slot && l.instance !== r.instance && c.status === 'running' && this.deps.lifecycle.ready(l.instance);
      });
      if (!replacement) continue;
      this.recovering.delete(key);
      const instance = parseInstanceLabels(replacement.labels)?.instance ?? '';
      this.deps.onRecovery(service, Math.max(0, this.deps.clock.now() - r.atMs) / 1000, { instance, failed: r.instance, reason: r.reason });
    }
  }
}
