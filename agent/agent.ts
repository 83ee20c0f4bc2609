import type { Clock, Rng, TimerHandle } from '../core/clock.js';
import { DEFAULTS } from '../core/defaults.js';
import { instanceId } from '../core/ids.js';
import type { Logger } from '../core/log.js';
import type { Runtime, ObservedContainer } from '../runtime/types.js';
import { LABEL, parseInstanceLabels } from '../runtime/labels.js';
import type { EventRecord, Store } from '../store/types.js';
import { isOrcaError } from '../core/errors.js';
import { WorkQueue, type HandlerResult } from '../controllers/work-queue.js';
import { Executor } from '../controllers/executor.js';
import { planContainers } from '../controllers/container/planner.js';
import type { NodeIdentity } from '../controllers/container/container-spec.js';
import { slotKey, type SlotAssignment } from '../controllers/container/types.js';
import { buildReports, type InstanceReport } from './reports.js';
import { InstanceLifecycle } from './lifecycle.js';
import { planResync } from './orphans.js';
import { followRuntimeEvents } from './runtime-events.js';
import { AssignmentCache } from './assignments.js';
import { SlotMemory } from './slot-memory.js';
import { Controller } from '../controllers/controller.js';
import { HealthReconciler } from '../controllers/health/reconciler.js';
import { ProbeRunners } from '../controllers/health/runner.js';
import { isVerdict } from '../controllers/health/actions.js';
import type { ProbeSpecs } from '../controllers/health/planner.js';
import { effectiveReadiness } from '../manifest/probes.js';
import type { ServiceSpec } from '../manifest/types.js';
import { realProbeChecks, type ProbeChecks } from '../controllers/health/checks.js';

export interface AgentDeps {
  runtime: Runtime;
  /** The agent's own store (`<data-dir>/agent.db`): assignment cache and slot memory. */
  store: Store;
  clock: Clock;
  rng: Rng;
  log: Logger;
  identity: NodeIdentity;
  watchdogIntervalMs: number;
  /** Receives every reconcile action (the reconciliation log). */
  record: (e: EventRecord) => void;
  /** Called after any action changed the node's instances. */
  onChange?: () => void;
  /** A failed slot has a ready replacement: seconds from the failure to then. */
  onRecovery?: (service: string, seconds: number) => void;
  /** Probe I/O; default: real HTTP, TCP and exec checks. */
  checks?: ProbeChecks;
  /**
   * Takes an instance out of the routes and waits (at most maxMs) for its in-flight requests
   * before it is stopped. The server's proxy provides it.
   */
  drain?: (instance: string, address: string, maxMs: number) => Promise<void>;
}

/**
 * The node-local half of Orca: keeps this node's containers matching its assignments.
 * Runs the container reconciler over a keyed work queue (key = service), triggered by
 * assignment changes, Docker events and the watchdog. Observed state is always re-read
 * from the runtime; nothing is trusted from memory but slot history.
 *
 * It never reconciles before it has an assignment set (from the server, or cached in its
 * store from an earlier session), so an empty start can never remove running workloads.
 */
export class Agent {
  private readonly assignments: AssignmentCache;
  private readonly slots: SlotMemory;
  /** Slots whose instance failed and whose replacement is not ready yet: failed instance and when. */
  private readonly recovering = new Map<string, { instance: string; atMs: number }>();
  /** Image and port pairs already checked against the image's EXPOSE list ("image port"). */
  private readonly portChecked = new Set<string>();
  /** Services whose last reconcile ended in a terminal error (an image missing): the error, for status. */
  private readonly terminal = new Map<string, string>();
  private readonly queue: WorkQueue;
  private readonly executor: Executor;
  private readonly lifecycle: InstanceLifecycle;
  /** The probe runners of the health reconciler (its observed state: counters, last answers). */
  private readonly probes: ProbeRunners;
  private readonly health: Controller;
  /** Each service's containers as the container reconciler last listed them (observed state). */
  private readonly observedBy = new Map<string, ObservedContainer[]>();
  private readonly log: Logger;
  private watchdogTimer: TimerHandle | null = null;
  private signal: AbortSignal | null = null;
  private started = false;
  private firstPass: Promise<void> | null = null;
  private resolveFirstPass: (() => void) | null = null;

  constructor(private readonly deps: AgentDeps) {
    this.log = deps.log.child({ component: 'agent', node: deps.identity.node });
    this.assignments = new AssignmentCache(deps.store);
    this.slots = new SlotMemory(deps.store);
    this.lifecycle = new InstanceLifecycle(deps.clock, (service, instance, state) => {
      // A replacement's crash-loop backoff ended: its service is due for another look.
      if (state === 'pending' && this.slots.isWaitingReplacement(service, instance)) this.queue.add(service);
      this.deps.onChange?.();
    });
    // The health reconciler: its own controller, keyed by service. It reads the observed state
    // the container reconciler leaves (observedBy, the lifecycle's condemned set), and its
    // verdicts reach the container reconciler only as lifecycle state and a trigger.
    this.probes = new ProbeRunners(deps.clock, deps.checks ?? realProbeChecks(deps.runtime), (service) => this.health.trigger(service), deps.log.child({ reconciler: 'health' }));
    this.health = new Controller({
      reconciler: new HealthReconciler({
        clock: deps.clock,
        log: deps.log.child({ reconciler: 'health' }),
        node: deps.identity.node,
        advertise: deps.identity.advertise,
        desired: (service) => probeSpecsOf(this.assignments.of(service)[0]?.spec),
        observed: (service) => this.observedBy.get(service) ?? [],
        condemned: (service) => new Set(this.lifecycle.condemned(service).keys()),
        services: () => new Set([...this.assignments.services(), ...this.observedBy.keys()]),
        runners: this.probes,
        effects: {
          setReady: (instance, ready) => this.lifecycle.tracker.send(instance, { type: ready ? 'READY' : 'UNREADY' }),
          livenessFailed: (instance) => this.lifecycle.stopping(instance, 'liveness'),
        },
        record: deps.record,
        applied: (service, actions) => {
          if (actions.some(isVerdict)) this.queue.add(service);
        },
      }),
      clock: deps.clock,
      log: deps.log.child({ component: 'agent', node: deps.identity.node, reconciler: 'health' }),
      resyncMs: deps.watchdogIntervalMs,
      retry: { initialMs: DEFAULTS.queueRetryInitialMs, maxMs: DEFAULTS.queueRetryMaxMs },
    });
    this.executor = new Executor({
      runtime: deps.runtime,
      clock: deps.clock,
      log: deps.log.child({ reconciler: 'container' }),
      identity: deps.identity,
      saveSlot: (s) => this.slots.save(s),
      record: deps.record,
      lifecycle: this.lifecycle,
      drain: async (instance, graceSecs) => {
        const address = this.lifecycle.address(instance);
        if (!address || !this.deps.drain) return;
        // The STOP already made the instance unready; routes follow onChange.
        this.deps.onChange?.();
        await this.deps.drain(instance, address, Math.min(DEFAULTS.drainMaxMs, Math.max(1000, graceSecs * 1000)));
      },
    });
    this.queue = new WorkQueue({
      clock: deps.clock,
      log: this.log,
      handler: (key) => this.reconcile(key),
      retry: { initialMs: DEFAULTS.queueRetryInitialMs, maxMs: DEFAULTS.queueRetryMaxMs },
    });
  }

  get node(): string {
    return this.deps.identity.node;
  }

  /**
   * Replaces the full assignment set of this node and persists it (so the agent keeps
   * healing across restarts while cut off). Services whose slots changed are reconciled.
   */
  async setAssignments(list: SlotAssignment[]): Promise<void> {
    const first = !this.assignments.known;
    const changed = await this.assignments.replace(list);
    if (this.started) {
      if (first) await this.resyncAll();
      else for (const svc of changed) this.queue.add(svc);
    }
  }

  /** Loads slot memory and cached assignments, then starts reconciling. */
  async start(signal: AbortSignal): Promise<void> {
    this.signal = signal;
    this.firstPass = new Promise((r) => (this.resolveFirstPass = r));
    await this.slots.load();
    if (!this.assignments.known) {
      const cached = await this.assignments.cached();
      if (cached) {
        this.log.info({ services: new Set(cached.map((a) => a.service)).size }, 'using cached assignments');
        await this.setAssignments(cached);
      }
    }
    this.health.start(signal);
    this.queue.start(signal);
    this.started = true;
    signal.addEventListener('abort', () => {
      if (this.watchdogTimer) this.deps.clock.clearTimeout(this.watchdogTimer);
      this.lifecycle.stop();
      this.probes.stopAll();
    });
    // Docker events only say when to look; a re-opened stream is followed by a full resync.
    void followRuntimeEvents(
      {
        runtime: this.deps.runtime,
        labels: this.ownLabels(),
        clock: this.deps.clock,
        log: this.log,
        reconnect: { initialMs: DEFAULTS.eventsReconnectInitialMs, maxMs: DEFAULTS.eventsReconnectMaxMs },
        onReopen: () => void this.resyncAll(),
        onEvent: (ev) => {
          const svc = ev.labels[LABEL.service];
          const instance = ev.labels[LABEL.instance];
          // A death takes the instance out of service at once (routes follow through onChange);
          // the reconcile this queues confirms it against Docker's full view.
          if (instance && (ev.kind === 'die' || ev.kind === 'destroy')) this.lifecycle.observedGone(instance, ev);
          if (svc) this.queue.add(svc);
          if (ev.kind === 'die' || ev.kind === 'destroy' || ev.kind === 'start') this.deps.onChange?.();
        },
      },
      signal,
    );
    this.scheduleWatchdog();
    if (this.assignments.known) await this.resyncAll();
  }

  /**
   * Resolves once every service present at start has been reconciled once and the readiness
   * of the instances found has been probed once (at most DEFAULTS.adoptProbeWaitMs).
   */
  async ready(): Promise<void> {
    await this.firstPass;
    await this.health.idle();
    await this.probes.firstRound(DEFAULTS.adoptProbeWaitMs);
  }

  /** Resolves when the work queue is empty (tests). */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  /** This node's instances, read from the runtime now. */
  async observe(): Promise<InstanceReport[]> {
    const containers = await this.deps.runtime.list(this.ownLabels());
    return buildReports(this.node, this.assignments.all(), containers, this.slots.all(), this.deps.clock.now(), this.lifecycle, this.terminal).map((r) => ({
      ...r,
      probe: r.id && r.containerId ? (this.probes.lastReadiness(r.id) ?? null) : null,
    }));
  }

  /**
   * Ready instances of this node and where they answer, from memory kept in step with
   * Docker (cheap enough to call on every change: this is what routes are built from).
   */
  endpoints(): Array<{ service: string; instance: string; address: string }> {
    return this.lifecycle.endpoints();
  }

  /** Output of one of this node's containers. */
  logs(containerId: string, opts: { tail?: number; follow?: boolean; signal?: AbortSignal }): AsyncIterable<string> {
    return this.deps.runtime.logs(containerId, opts);
  }

  /** Containers of this node, optionally of one service (for logs). */
  async containers(service?: string): Promise<ObservedContainer[]> {
    return this.deps.runtime.list({ ...this.ownLabels(), ...(service ? { [LABEL.service]: service } : {}) });
  }

  /** A full level-triggered pass: every assigned or observed service, and orphans. */
  async resyncAll(): Promise<void> {
    if (!this.assignments.known) return;
    let containers: ObservedContainer[];
    try {
      containers = await this.deps.runtime.list({ [LABEL.cluster]: this.deps.identity.cluster });
    } catch (err) {
      this.log.warn({ err }, 'resync: runtime list failed; will retry');
      if (!this.signal?.aborted) this.deps.clock.setTimeout(() => void this.resyncAll(), DEFAULTS.resyncRetryMs);
      return;
    }
    const plan = planResync(containers, this.node);
    if (plan.orphans.length > 0) await this.executor.execute('container', plan.orphans);
    const keys = new Set([...this.assignments.services(), ...plan.services]);
    for (const k of keys) this.queue.add(k);
    await this.queue.idle();
    this.resolveFirstPass?.();
    this.resolveFirstPass = null;
  }

  private ownLabels(): Record<string, string> {
    return { [LABEL.cluster]: this.deps.identity.cluster, [LABEL.node]: this.node };
  }

  private async reconcile(service: string): Promise<HandlerResult> {
    // Before the first assignment set (a fresh cache, a session not yet welcomed — or refused
    // because another agent holds this node name) nothing here is desired *or* undesired: a
    // Docker event must not make this agent remove containers it was never given.
    if (!this.assignments.known) return { kind: 'done' };
    const desired = this.assignments.of(service);
    const observed = await this.deps.runtime.list({ ...this.ownLabels(), [LABEL.service]: service });
    const slots = this.slots.ofService(service);
    const spec = desired[0]?.spec;
    this.lifecycle.sync(service, observed, slots.values(), spec);
    if (observed.length > 0) this.observedBy.set(service, observed);
    else this.observedBy.delete(service);
    this.health.trigger(service);
    this.noteRecoveries(service, observed);
    const plan = planContainers({
      service,
      desired,
      observed,
      slots,
      condemned: this.lifecycle.condemned(service),
      ready: this.lifecycle.readySet(service),
      now: this.deps.clock.now(),
      lastReadiness: (instance) => this.probes.lastReadiness(instance),
      newInstanceId: (s, rev, slot) => instanceId(s, rev, slot, this.deps.rng),
    });
    // A slot no longer assigned here whose containers are all gone is forgotten: if it comes
    // back (scaled up again, rescheduled here) its old instance's removal is not a failure.
    const desiredSlots = new Set(desired.map((d) => d.slot));
    const observedSlots = new Set(observed.map((c) => parseInstanceLabels(c.labels)?.slot));
    for (const s of slots.values()) {
      if (!desiredSlots.has(s.slot) && !observedSlots.has(s.slot)) await this.slots.forget(s);
    }
    if (plan.actions.length === 0) {
      this.clearTerminal(service);
      return plan.requeueAfterMs !== null ? { kind: 'after', ms: plan.requeueAfterMs } : { kind: 'done' };
    }
    for (const a of plan.actions) {
      if (a.kind === 'slot.update' && a.key.startsWith('failure:') && a.slot.lastExit) {
        this.recovering.set(slotKey(service, a.slot.slot), { instance: a.slot.lastExit.instance, atMs: Date.parse(a.slot.lastExit.at) });
      }
    }
    if (spec?.port !== undefined && plan.actions.some((a) => a.kind === 'container.create')) await this.checkExposedPort(service, spec.image, spec.port);
    const result = await this.executor.execute('container', plan.actions);
    if (result.applied > 0) this.deps.onChange?.();
    if (result.error) {
      const terminal = this.terminalError(service, result.error);
      if (!terminal) throw result.error;
      // Retrying a missing image every second changes nothing; status says why, and a slow
      // retry (or the next watchdog pass) picks the image up once someone builds it.
      if (this.terminal.get(service) !== terminal) {
        this.terminal.set(service, terminal);
        this.log.warn({ service, error: terminal, retryInMs: DEFAULTS.terminalRetryMs }, 'terminal error; retrying slowly');
        this.deps.onChange?.();
      }
      return { kind: 'after', ms: DEFAULTS.terminalRetryMs };
    }
    this.clearTerminal(service);
    return { kind: 'requeue' };
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
    this.log.warn({ service, image, port, exposed }, 'service port not exposed by its image');
    this.deps.record({
      time: new Date(this.deps.clock.now()).toISOString(),
      reconciler: 'container',
      service,
      instance: null,
      node: this.node,
      action: 'image.port-check',
      reason: 'port-not-exposed',
      outcome: 'warning',
      durationMs: 0,
      message,
    });
  }

  /** The status text of an error that retrying soon cannot fix, or null for one worth retrying. */
  private terminalError(service: string, err: unknown): string | null {
    if (!isOrcaError(err, 'ORCA_IMAGE_MISSING')) return null;
    const image = this.assignments.of(service)[0]?.spec.image ?? 'of the service';
    return `image ${image} not found on node ${this.node} (Orca never pulls images: build or load it on that host)`;
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
        return l !== undefined && l.slot === slot && l.instance !== r.instance && c.status === 'running' && this.lifecycle.ready(l.instance);
      });
      if (!replacement) continue;
      this.recovering.delete(key);
      this.deps.onRecovery(service, Math.max(0, this.deps.clock.now() - r.atMs) / 1000);
    }
  }

  private scheduleWatchdog(): void {
    if (this.signal?.aborted) return;
    this.watchdogTimer = this.deps.clock.setTimeout(() => {
      void this.resyncAll().finally(() => this.scheduleWatchdog());
    }, this.deps.watchdogIntervalMs);
  }
}

/** The probes a service's desired spec asks for, or null when it is not assigned here. */
function probeSpecsOf(spec: ServiceSpec | undefined): ProbeSpecs | null {
  if (!spec) return null;
  const readiness = effectiveReadiness(spec);
  return { ...(readiness ? { readiness } : {}), ...(spec.liveness ? { liveness: spec.liveness } : {}), ...(spec.port !== undefined ? { servicePort: spec.port } : {}) };
}
