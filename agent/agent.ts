import type { Clock, Rng } from '../core/clock.js';
import { DEFAULTS } from '../core/defaults.js';
import type { Logger } from '../core/log.js';
import type { Runtime, ObservedContainer } from '../runtime/types.js';
import { LABEL, parseInstanceLabels } from '../runtime/labels.js';
import { errorMessage, isOrcaError, OrcaError } from '../core/errors.js';
import type { VolumeRecord } from '../protocol/messages.js';
import type { EventRecord, Store } from '../store/types.js';
import { Controller } from '../controllers/controller.js';
import { Executor } from '../controllers/executor.js';
import type { NodeIdentity } from '../controllers/container/container-spec.js';
import type { SlotAssignment } from '../controllers/container/types.js';
import { HealthReconciler } from '../controllers/health/reconciler.js';
import { ProbeRunners } from '../controllers/health/runner.js';
import { isVerdict } from '../controllers/health/actions.js';
import { probeSpecsOf } from '../controllers/health/planner.js';
import { realProbeChecks, type ProbeChecks } from '../controllers/health/checks.js';
import { buildReports, type InstanceReport } from './reports.js';
import { InstanceLifecycle } from './lifecycle.js';
import { ContainerReconciler } from './container-reconciler.js';
import { AssignmentCache } from './assignments.js';
import { SlotMemory } from './slot-memory.js';
import { planResync } from './orphans.js';
import { DeathWatch, followRuntimeEvents } from './runtime-events.js';
import { startWatchdog } from './watchdog.js';
import { healClusterNetwork } from './cluster-network.js';
import { SecretCache } from './secret-cache.js';
import type { SecretFiles } from './secret-files.js';
import { InstanceSecrets } from './instance-secrets.js';
import type { SecretValue } from '../protocol/messages.js';

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
  onRecovery?: (service: string, seconds: number, detail?: import('./container-reconciler.js').RecoveryDetail) => void;
  /** Probe I/O; default: real HTTP, TCP and exec checks. */
  checks?: ProbeChecks;
  /**
   * Takes an instance out of the routes and waits (at most maxMs) for its in-flight requests
   * before it is stopped. The server's proxy provides it.
   */
  drain?: (instance: string, address: string, maxMs: number) => Promise<void>;
  /** Host directories this node allows host mounts under (`--allow-host-path`); none by default. */
  allowHostPaths?: readonly string[];
  /**
   * Secret delivery (SPEC §3.9): the node key that seals the cached values in the store, and where
   * instances' secret files live (a tmpfs). Without it, a slot that uses secrets is not created.
   */
  secrets?: { key: Buffer; files: SecretFiles };
}

/**
 * The node-local half of Orca, as wiring only: two controllers keyed by service — the container
 * reconciler (agent/container-reconciler.ts) and the health reconciler (controllers/health/) —
 * and what triggers them: assignment changes, Docker events (followRuntimeEvents) and the
 * watchdog's full resync (startWatchdog, planResync for orphans). They never call each other:
 * the container reconciler leaves what it listed (observedBy) and the instance lifecycle's
 * state; the health reconciler reads them and its verdicts go to the lifecycle, which the
 * container reconciler reads on the trigger the wiring sends. Slot memory (SlotMemory) and the
 * assignment cache (AssignmentCache) live in the agent's own store.
 *
 * It never reconciles before it has an assignment set (from the server, or cached in its
 * store from an earlier session), so an empty start can never remove running workloads.
 */
export class Agent {
  private readonly assignments: AssignmentCache;
  private readonly slots: SlotMemory;
  private readonly containerReconciler: ContainerReconciler;
  private readonly container: Controller;
  private readonly executor: Executor;
  private readonly lifecycle: InstanceLifecycle;
  /** The probe runners of the health reconciler (its observed state: counters, last answers). */
  private readonly probes: ProbeRunners;
  private readonly health: Controller;
  /** Each service's containers as the container reconciler last listed them (observed state). */
  private readonly observedBy = new Map<string, ObservedContainer[]>();
  /** Deaths and OOM kills read off the runtime's event stream (see DeathWatch). */
  private readonly deaths = new DeathWatch();
  /** Fingerprint (containersKey) of each service's containers as its last reconcile listed them, none included. */
  private readonly listedBy = new Map<string, string>();
  /** Watchdog passes since the last full one (see resyncAll). */
  private passesSinceFull = 0;
  private readonly log: Logger;
  private readonly secretValues: SecretCache | null;
  private readonly instanceSecrets: InstanceSecrets | null;
  private signal: AbortSignal | null = null;
  private started = false;
  private firstPass: Promise<void> | null = null;
  private resolveFirstPass: (() => void) | null = null;

  constructor(private readonly deps: AgentDeps) {
    this.log = deps.log.child({ component: 'agent', node: deps.identity.node });
    this.assignments = new AssignmentCache(deps.store);
    this.slots = new SlotMemory(deps.store);
    this.secretValues = deps.secrets ? new SecretCache(deps.store, deps.secrets.key, this.log) : null;
    this.instanceSecrets = this.secretValues && deps.secrets ? new InstanceSecrets(this.secretValues, deps.secrets.files, this.log) : null;
    // When a crash-loop backoff ends is the container planner's fact: its reconcile asks to be
    // requeued then (slot memory nextRetryAt), and the replacement's create leaves `backoff`.
    this.lifecycle = new InstanceLifecycle(deps.clock, { changed: () => this.deps.onChange?.() });
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
          livenessFailed: (instance) => this.lifecycle.condemn(instance, 'liveness'),
        },
        record: deps.record,
        applied: (service, actions) => {
          if (actions.some(isVerdict)) this.container.trigger(service);
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
      allowHostPaths: deps.allowHostPaths ?? [],
      ...(this.instanceSecrets ? { secrets: this.instanceSecrets } : {}),
      drain: async (instance, graceSecs) => {
        const address = this.lifecycle.address(instance);
        if (!address || !this.deps.drain) return;
        // The STOP already made the instance unready; routes follow onChange.
        this.deps.onChange?.();
        await this.deps.drain(instance, address, Math.min(DEFAULTS.drainMaxMs, Math.max(1000, graceSecs * 1000)));
      },
    });
    this.containerReconciler = new ContainerReconciler({
      runtime: deps.runtime,
      clock: deps.clock,
      rng: deps.rng,
      log: this.log,
      identity: deps.identity,
      assignments: this.assignments,
      slots: this.slots,
      lifecycle: this.lifecycle,
      executor: this.executor,
      lastReadiness: (instance) => this.probes.lastReadiness(instance),
      // What the container reconciler saw is the health reconciler's observed state.
      lateOomKilled: (id) => this.deaths.lateOomKilled(id),
      observed: (service, containers) => {
        if (containers.length > 0) this.observedBy.set(service, containers);
        else this.observedBy.delete(service);
        this.listedBy.set(service, containersKey(containers));
        this.health.trigger(service);
      },
      record: deps.record,
      ...(deps.onChange ? { onChange: deps.onChange } : {}),
      ...(deps.onRecovery ? { onRecovery: deps.onRecovery } : {}),
    });
    // The watchdog (startWatchdog) is the container controller's resync: it also removes orphans.
    this.container = new Controller({
      reconciler: this.containerReconciler,
      clock: deps.clock,
      log: this.log,
      resyncMs: 0,
      concurrency: DEFAULTS.containerReconcileConcurrency,
      retry: { initialMs: DEFAULTS.queueRetryInitialMs, maxMs: DEFAULTS.queueRetryMaxMs },
    });
  }

  get node(): string {
    return this.deps.identity.node;
  }

  /**
   * Replaces the full assignment set of this node and persists it (so the agent keeps
   * healing across restarts while cut off), with the secret values that came with it (kept
   * sealed; see SecretCache). Services whose slots changed are reconciled.
   */
  async setAssignments(list: SlotAssignment[], secrets: readonly SecretValue[] = []): Promise<void> {
    // The values first: a reconcile the new set triggers finds them.
    await this.secretValues?.update(secrets, list);
    const first = !this.assignments.known;
    const changed = await this.assignments.replace(list);
    if (this.started) {
      if (first) await this.resyncAll();
      else for (const svc of changed) this.container.trigger(svc);
    }
  }

  /** Loads slot memory and cached assignments, then starts reconciling. */
  async start(signal: AbortSignal): Promise<void> {
    this.signal = signal;
    this.firstPass = new Promise((r) => (this.resolveFirstPass = r));
    await this.slots.load();
    await this.secretValues?.load();
    if (!this.assignments.known) {
      const cached = await this.assignments.cached();
      if (cached) {
        this.log.info({ services: new Set(cached.map((a) => a.service)).size }, 'using cached assignments');
        await this.setAssignments(cached);
      }
    }
    this.health.start(signal);
    this.container.start(signal);
    this.started = true;
    signal.addEventListener('abort', () => {
      this.lifecycle.stop();
      this.probes.stopAll();
    });
    // Docker events only say when to look; a re-opened stream is followed by a full resync.
    const deaths = this.deaths;
    void followRuntimeEvents(
      {
        runtime: this.deps.runtime,
        labels: this.ownLabels(),
        clock: this.deps.clock,
        log: this.log,
        reconnect: { initialMs: DEFAULTS.eventsReconnectInitialMs, maxMs: DEFAULTS.eventsReconnectMaxMs },
        onReopen: () => {
          deaths.reset();
          void this.resyncAll();
        },
        onEvent: (ev) => {
          const svc = ev.labels[LABEL.service];
          // A death takes the instance out of service at once, OOM flag and all: the lifecycle
          // marks it not ready and tells onChange, the host pushes the node's endpoints, and the
          // server's route reconciler is triggered by that push (a key on its work queue, not a
          // call) and swaps the table — within milliseconds, not after a Docker listing. The
          // reconcile queued here confirms the death against Docker's full view.
          const gone = deaths.see(ev);
          if (gone) this.lifecycle.observedGone(gone);
          if (svc) this.container.trigger(svc);
          if (ev.kind === 'die' || ev.kind === 'destroy' || ev.kind === 'start') this.deps.onChange?.();
        },
      },
      signal,
    );
    startWatchdog(this.deps.clock, this.deps.watchdogIntervalMs, signal, () => this.resyncAll({ periodic: true }));
    // Before its first assignment set (a fresh agent not yet welcomed, or one the server
    // refuses) the agent makes nothing on the Docker host, not even the cluster network.
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

  /** Resolves when the container controller's queue is empty (tests, benchmarks). */
  idle(): Promise<void> {
    return this.container.idle();
  }

  /** This node's instances, read from the runtime now. */
  async observe(): Promise<InstanceReport[]> {
    const containers = await this.deps.runtime.list(this.ownLabels());
    return buildReports(this.node, this.assignments.all(), containers, this.slots.all(), this.deps.clock.now(), this.lifecycle, this.containerReconciler.terminal).map((r) => ({
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

  /**
   * This node's named volumes of the cluster (SPEC §3.8), each with whether a container of its
   * slot (in any state: the engine counts a stopped one too) exists here and mounts it.
   */
  async volumes(): Promise<VolumeRecord[]> {
    const [vols, containers] = await Promise.all([this.deps.runtime.listVolumes(this.ownLabels()), this.deps.runtime.list(this.ownLabels())]);
    const used = new Set<string>();
    for (const c of containers) {
      const l = parseInstanceLabels(c.labels);
      if (l) used.add(`${l.service}/${l.slot}`);
    }
    const out: VolumeRecord[] = [];
    for (const v of vols) {
      const service = v.labels[LABEL.service];
      const volume = v.labels[LABEL.volume];
      const slot = Number(v.labels[LABEL.slot]);
      if (!service || !volume || !Number.isInteger(slot) || slot < 0) continue;
      out.push({ name: v.name, service, volume, slot, inUse: used.has(`${service}/${slot}`), sizeBytes: v.sizeBytes });
    }
    return out;
  }

  /**
   * Removes this node's volumes of a service (`orca delete SERVICE --volumes`): the ones the
   * engine refuses (a container still mounts them) are returned in `failed`. Refused whole
   * while the service is assigned here: its instances would need them.
   */
  async removeVolumes(service: string): Promise<{ removed: string[]; failed: Array<{ name: string; error: string }> }> {
    if (this.assignments.of(service).length > 0) throw new OrcaError('ORCA_CONFLICT', `service ${service} is assigned to node ${this.node}: its volumes stay`);
    const removed: string[] = [];
    const failed: Array<{ name: string; error: string }> = [];
    for (const v of await this.deps.runtime.listVolumes({ ...this.ownLabels(), [LABEL.service]: service })) {
      const started = this.deps.clock.now();
      let outcome = 'ok';
      try {
        await this.deps.runtime.removeVolume(v.name);
        removed.push(v.name);
      } catch (err) {
        failed.push({ name: v.name, error: errorMessage(err) });
        outcome = isOrcaError(err) ? `error: ${err.code}` : 'error';
      }
      const fields = { action: 'volume.remove', reason: 'delete-with-volumes', outcome, durationMs: this.deps.clock.now() - started, node: this.node, service, instance: null };
      this.log.info({ ...fields, volume: v.name }, 'reconcile action');
      this.deps.record({ time: new Date(this.deps.clock.now()).toISOString(), reconciler: 'container', ...fields, message: `volume ${v.name}` });
    }
    return { removed, failed };
  }

  /**
   * A full level-triggered pass: every assigned or observed service, orphans, and the cluster
   * network. The watchdog's periodic pass (`periodic`) is lighter on all but every
   * DEFAULTS.watchdogFullEvery-th: from its one listing of the node's containers it reconciles
   * only the services whose containers differ from what their last reconcile listed (or that were
   * never reconciled) — the rest were seen as they are and are already converged or waiting on
   * their own timer —, so an idle node costs one Docker listing per pass, not one per service.
   * Whatever the event stream missed still shows in that listing; a re-opened stream calls the
   * full pass.
   */
  async resyncAll(opts: { periodic?: boolean } = {}): Promise<void> {
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
    // Secret files of instances whose container is gone (removed behind Orca's back, a failed create).
    const swept = await this.instanceSecrets?.sweep(async () => {
      const now = await this.deps.runtime.list({ [LABEL.cluster]: this.deps.identity.cluster });
      return new Set(now.flatMap((c) => c.labels[LABEL.instance] ?? []));
    });
    if (swept?.length) this.log.info({ instances: swept }, 'removed the secret files of instances without a container');
    // Re-attached instances publish on new host ports: the reconcile below reads them, then routes follow.
    const reattached = await healClusterNetwork(this.deps, containers);
    const all = new Set([...this.assignments.services(), ...plan.services]);
    // Re-attached containers changed after the listing above (new host ports): all services then.
    const full = !opts.periodic || ++this.passesSinceFull >= DEFAULTS.watchdogFullEvery || reattached.size > 0;
    if (full) this.passesSinceFull = 0;
    const keys = full ? all : changedServices(all, containers, this.node, this.listedBy);
    for (const k of this.listedBy.keys()) if (!all.has(k)) this.listedBy.delete(k);
    for (const k of keys) this.container.trigger(k);
    await this.container.idle();
    if (reattached.size > 0) this.deps.onChange?.();
    this.resolveFirstPass?.();
    this.resolveFirstPass = null;
  }

  private ownLabels(): Record<string, string> {
    return { [LABEL.cluster]: this.deps.identity.cluster, [LABEL.node]: this.node };
  }
}

/** Content of a service's containers, order aside: equal keys, nothing changed in Docker's view. */
export function containersKey(containers: ObservedContainer[]): string {
  return containers
    .map((c) => JSON.stringify(c))
    .sort()
    .join('\n');
}

/** The services of `services` whose containers on this node differ from what their last reconcile listed. */
function changedServices(services: Set<string>, containers: ObservedContainer[], node: string, listedBy: Map<string, string>): string[] {
  const now = new Map<string, ObservedContainer[]>();
  for (const c of containers) {
    const svc = c.labels[LABEL.service];
    if (svc === undefined || c.labels[LABEL.node] !== node) continue;
    const list = now.get(svc) ?? [];
    list.push(c);
    now.set(svc, list);
  }
  return [...services].filter((s) => listedBy.get(s) !== containersKey(now.get(s) ?? []));
}
