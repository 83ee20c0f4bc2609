import { realpath } from 'node:fs/promises';
import type { Clock } from '../core/clock.js';
import { errorMessage, isOrcaError, OrcaError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { clusterNetwork } from '../runtime/labels.js';
import type { ContainerSpec, Runtime } from '../runtime/types.js';
import type { EventRecord } from '../store/types.js';
import type { Action } from './actions.js';
import { secretsMount, slotVolumes, toContainerSpec, type NodeIdentity } from './container/container-spec.js';
import { resolveHostMounts } from './container/host-mounts.js';
import type { SlotAssignment, SlotState } from './container/types.js';

/** An instance's secrets on its node (SPEC §3.9; the agent's agent/instance-secrets.ts). */
export interface InstanceSecretsPort {
  /**
   * Writes the instance's files of the slot's `secrets` (its directory, or null when there are
   * none) and gives the values of its `secret_env`. Throws when a value is not on this node.
   */
  prepare(a: SlotAssignment, instance: string): Promise<{ dir: string | null; env: Record<string, string> }>;
  /** The create of that instance is over, made or failed (its directory is its container's now). */
  settled(instance: string): void;
  /** The instance's container is gone: its files go too. Never throws. */
  removed(instance: string): Promise<void>;
}

/** Whether a slot's instances need secrets delivered. */
export function usesSecrets(a: SlotAssignment): boolean {
  return (a.spec.secrets?.length ?? 0) > 0 || Object.keys(a.spec.secretEnv ?? {}).length > 0;
}

export interface ExecutorDeps {
  runtime: Runtime;
  clock: Clock;
  log: Logger;
  identity: NodeIdentity;
  /** Persists slot state (restart counts, backoff) for the agent. */
  saveSlot: (slot: SlotState) => Promise<void>;
  /** Receives one record per action (the reconciliation log). */
  record: (e: EventRecord) => void;
  /** Told what happened to each instance, for its lifecycle machine. */
  lifecycle?: LifecycleHooks;
  /**
   * Before a container is stopped: take the instance out of the routes and let its in-flight
   * requests finish (bounded). Must not throw.
   */
  drain?: (instance: string, graceSecs: number) => Promise<void>;
  /** Host directories this node allows host mounts under (`--allow-host-path`); none by default. */
  allowHostPaths?: readonly string[];
  /** Resolves a host path with its symlinks (fs.promises.realpath); injected for tests. */
  realpath?: (path: string) => Promise<string>;
  /** Delivers secrets into instances; without it a slot that uses secrets cannot be created. */
  secrets?: InstanceSecretsPort;
}

/** What the executor tells an instance's lifecycle, as it happens. None of these may throw. */
export interface LifecycleHooks {
  creating(a: Extract<Action, { kind: 'container.create' }>): void;
  created(instance: string, containerId: string): void;
  createFailed(instance: string, error: string): void;
  started(instance: string): void;
  stopping(instance: string, reason: string): void;
  removed(instance: string): void;
}

/** Actions that share a group run in plan order; slot memory writes are never concurrent. */
function groupOf(a: Action): string {
  if (a.kind === 'slot.update' || a.kind === 'rollout.halt') return `slot:${a.service}/${a.slot.slot}`;
  if (a.kind === 'container.create') return `slot:${a.service}/${a.slot}`;
  return `instance:${a.instance ?? a.key}`;
}

export interface ExecutionResult {
  /** Actions that changed something in the runtime. */
  applied: number;
  /** First failure, if any; later actions of the plan were not attempted. */
  error?: unknown;
}

/**
 * Applies a plan's actions through the Runtime. Every action is idempotent, so a plan
 * interrupted half-way is simply re-planned. An instance's actions stop at its first failure
 * (the work queue retries the key with backoff). Each action becomes one log line and one event.
 */
export class Executor {
  constructor(private readonly deps: ExecutorDeps) {}

  /**
   * Actions on different instances and slots run concurrently (two replicas start in the time
   * of one); actions on the same instance or slot run in plan order (stop before remove; a
   * failure is counted before its replacement is created).
   */
  async execute(reconciler: string, actions: Action[]): Promise<ExecutionResult> {
    const groups = new Map<string, Action[]>();
    for (const a of actions) {
      const k = groupOf(a);
      const g = groups.get(k) ?? [];
      g.push(a);
      groups.set(k, g);
    }
    const results = await Promise.all([...groups.values()].map((g) => this.executeInOrder(reconciler, g)));
    const applied = results.reduce((n, r) => n + r.applied, 0);
    const failed = results.find((r) => r.error !== undefined);
    return failed ? { applied, error: failed.error } : { applied };
  }

  private async executeInOrder(reconciler: string, actions: Action[]): Promise<ExecutionResult> {
    let applied = 0;
    for (const action of actions) {
      const started = this.deps.clock.now();
      let outcome = 'ok';
      let error: unknown;
      try {
        await this.apply(action);
        if (action.kind !== 'slot.update' && action.kind !== 'rollout.halt') applied++;
      } catch (err) {
        error = err;
        outcome = isOrcaError(err) ? `error: ${err.code}` : 'error';
      }
      const durationMs = this.deps.clock.now() - started;
      const fields = {
        key: action.key,
        action: action.kind,
        reason: action.reason,
        outcome,
        durationMs,
        service: action.service,
        instance: action.instance,
        node: this.deps.identity.node,
      };
      if (error) this.deps.log.warn({ ...fields, err: error }, 'reconcile action failed');
      else this.deps.log.info(fields, 'reconcile action');
      this.deps.record({
        time: new Date(this.deps.clock.now()).toISOString(),
        reconciler,
        service: action.service,
        instance: action.instance,
        node: this.deps.identity.node,
        action: action.kind,
        reason: action.reason,
        outcome,
        durationMs,
        ...(error ? { message: errorMessage(error) } : (action.kind === 'slot.update' || action.kind === 'rollout.halt') && action.message ? { message: action.message } : {}),
      });
      if (error) return { applied, error };
    }
    return { applied };
  }

  /**
   * The container's network exists before it is created (so it starts with its aliases); one
   * made here is recorded like the network reconciler's own create.
   */
  private async ensureNetwork(spec: ContainerSpec): Promise<void> {
    if (!spec.network) return;
    const started = this.deps.clock.now();
    if (!(await this.deps.runtime.ensureNetwork(spec.network.name, clusterNetwork(this.deps.identity.cluster).labels))) return;
    const durationMs = this.deps.clock.now() - started;
    const fields = { action: 'network.create', reason: 'missing-before-create', outcome: 'ok', durationMs, node: this.deps.identity.node };
    this.deps.log.info({ ...fields, key: `network:${spec.network.name}`, network: spec.network.name }, 'reconcile action');
    this.deps.record({ time: new Date(this.deps.clock.now()).toISOString(), reconciler: 'network', service: null, instance: null, ...fields });
  }

  /**
   * The slot's named volumes exist, labelled, before its container is created (the engine would
   * make a missing one without labels); each one made here is recorded as volume.create.
   */
  private async ensureVolumes(a: Extract<Action, { kind: 'container.create' }>): Promise<void> {
    for (const v of slotVolumes(a.assignment, this.deps.identity)) {
      const started = this.deps.clock.now();
      if (!(await this.deps.runtime.ensureVolume(v.name, v.labels))) continue;
      const durationMs = this.deps.clock.now() - started;
      const fields = { action: 'volume.create', reason: 'missing-before-create', outcome: 'ok', durationMs, node: this.deps.identity.node, service: a.service, instance: a.instance };
      this.deps.log.info({ ...fields, key: `volume:${v.name}`, volume: v.name }, 'reconcile action');
      this.deps.record({ time: new Date(this.deps.clock.now()).toISOString(), reconciler: 'container', ...fields, message: `volume ${v.name}` });
    }
  }

  private async apply(action: Action): Promise<void> {
    const rt = this.deps.runtime;
    const life = this.deps.lifecycle;
    switch (action.kind) {
      case 'container.create': {
        life?.creating(action);
        let id: string;
        const secrets = usesSecrets(action.assignment) ? this.deps.secrets : undefined;
        try {
          if (usesSecrets(action.assignment) && !secrets) throw new OrcaError('ORCA_INTERNAL', 'this agent cannot deliver secrets');
          // Files on the node's tmpfs first; values only in the files and secret_env's variables.
          const delivered = secrets ? await secrets.prepare(action.assignment, action.instance) : { dir: null, env: {} };
          const spec = toContainerSpec(action.assignment, action.instance, this.deps.identity, delivered.env);
          // A host path outside this node's allowed directories is refused before anything is made.
          if (spec.mounts) spec.mounts = await resolveHostMounts(spec.mounts, this.deps.allowHostPaths ?? [], this.deps.realpath ?? realpath);
          if (delivered.dir) spec.mounts = [...(spec.mounts ?? []), secretsMount(delivered.dir)];
          await this.ensureNetwork(spec);
          await this.ensureVolumes(action);
          id = await rt.create(spec);
        } catch (err) {
          life?.createFailed(action.instance, errorMessage(err));
          throw err;
        } finally {
          secrets?.settled(action.instance);
        }
        life?.created(action.instance, id);
        await this.deps.saveSlot(action.slotAfter);
        await rt.start(id);
        life?.started(action.instance);
        return;
      }
      case 'container.start':
        await rt.start(action.containerId);
        life?.started(action.instance);
        return;
      case 'container.stop':
        life?.stopping(action.instance, action.reason);
        await this.deps.drain?.(action.instance, action.graceSecs);
        return rt.stop(action.containerId, action.graceSecs);
      case 'container.remove':
        await rt.remove(action.containerId, action.force ? { force: true } : undefined);
        if (action.instance) {
          await this.deps.secrets?.removed(action.instance);
          life?.removed(action.instance);
        }
        return;
      case 'slot.update':
      case 'rollout.halt':
        return this.deps.saveSlot(action.slot);
    }
  }
}
