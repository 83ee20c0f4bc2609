import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import { routeConflicts } from './route-conflicts.js';
import { errorMessage, fail, ok, OrcaError, type Result } from '../core/errors.js';
import { sleep } from '../core/clock.js';
import { checkStoredSpec, diffSpecs, formatManifestError, parseManifestText, specHash, type FieldChange } from '../manifest/index.js';
import type { ServiceSpec } from '../manifest/types.js';
import type { NewRevision, RevisionRecord, ServiceRecord, Store } from '../store/types.js';
import type { InstanceReport } from '../protocol/reports.js';
import { nodeSchedulingFlags, schedule } from './scheduler.js';
import { serviceStatus, type ServiceStatus } from './status.js';
import type { NodeLink } from './nodes.js';
import type { NodeAction } from '../controllers/node/actions.js';
import { planReschedules } from '../controllers/node/planner.js';
import { planLingering } from '../controllers/node/lingering.js';
import type { EventLog } from './event-log.js';
import type { SlotAssignment } from '../controllers/container/types.js';
import { applyAsks, placedHashes, rolloutRespread, runRebalance, type AskedMove, type MoveAsk, type RebalanceProgress } from './rebalance.js';
import type { SecretInfo, SecretStore, SetResult } from './secrets.js';
import { changeReason, sameVersions, unknownSecretErrors, usedSecrets, usersOf, versionsFor } from './secret-usage.js';

export interface ManifestFile {
  file: string;
  text: string;
}

export type ApplyAction = 'created' | 'configured' | 'unchanged';

export interface ApplyResult {
  service: string;
  action: ApplyAction;
  revision: number;
}

export interface ControlPlaneDeps {
  store: Store;
  clock: Clock;
  log: Logger;
  events: EventLog;
  /** Told the desired services after every change (the route reconciler). */
  onServices?: (services: ServiceRecord[]) => void;
  /** Every node the cluster knows (the node registry). */
  nodes: () => NodeLink[];
  /** Applies the slot.reschedule actions of a scheduling pass (the node executor). */
  reschedule: (actions: NodeAction[]) => void;
  /** The cluster's secrets (SPEC §3.9). */
  secrets: SecretStore;
  /**
   * Whether this server leads the control plane (SPEC §3.11): only the leader schedules and
   * sends assignments. Absent: always (one server).
   */
  leading?: () => boolean;
}

/** A secret as `orca secret ls` shows it: never its value. */
export interface SecretListing extends SecretInfo {
  /** Live services that use it, sorted. */
  usedBy: string[];
}

/** What `orca secret set` did: the secret's state, and the new revisions of the services that use a new value. */
export interface SecretSetResult {
  name: string;
  version: number;
  updated: string;
  change: SetResult['change'];
  rolled: Array<{ service: string; revision: number }>;
}

const PLACEMENT_KEY = 'placement';
/** Service → the instance hash its slots were last placed with: a new one is a rollout, spread again (server/rebalance.ts). */
const PLACED_HASHES_KEY = 'placement-hashes';
/** Slot → the node that holds its volumes (SPEC §3.8): kept across scale-downs, deletes and restarts until `orca delete --volumes`. */
const HOMES_KEY = 'volume-homes';
/** How long `orca delete --volumes` waits for a service's containers to be gone before it names the volumes still in use. */
const VOLUME_REMOVE_WAIT_MS = 60_000;
const VOLUME_REMOVE_RETRY_MS = 250;

/** A named volume as `orca volumes` lists it. */
export interface VolumeListing {
  name: string;
  node: string;
  service: string;
  volume: string;
  slot: number;
  /** Null when the node cannot be asked now (`stale`). */
  inUse: boolean | null;
  sizeBytes: number | null;
  /** From what the node last listed: it cannot be asked now (down or unreachable). */
  stale?: true;
}

/**
 * Desired state: applies manifests as revisions, deletes, rolls back, and hands every node
 * its assignments. Writes are serialised so "unchanged / configured" is decided against
 * exactly the state the write lands on.
 */
export class ControlPlane {
  private chain: Promise<unknown> = Promise.resolve();
  private placement = new Map<string, string>();
  private homes = new Map<string, string>();
  /** The last scheduling pass's unplaced slots (`service/slot` → why), for status. */
  private unplaced = new Map<string, string>();
  /**
   * Slots moved off a draining node keep running there until their new instance is ready
   * elsewhere (start-first drain): slot key → the node they are leaving.
   */
  private lingering = new Map<string, string>();
  /** What a lingering slot keeps running on the node it leaves: that node's assignment before the move. */
  private held = new Map<string, SlotAssignment>();
  /** Per node, the assignment set last sent. */
  private sent = new Map<string, SlotAssignment[]>();
  /** Service → the instance hash it was last placed with (PLACED_HASHES_KEY). */
  private placedHashes = new Map<string, string>();
  /** Moves `orca rebalance` asked of the next scheduling pass, each told what was made. */
  private asks: Array<{ ask: MoveAsk; made?: AskedMove | null }> = [];
  private rebalancing = false;
  private publishing: Promise<void> | null = null;
  private publishAgain = false;
  /**
   * Stored specs this version cannot schedule (written by an older version, or damaged), by
   * service name: the revision judged and why. They are left out of scheduling and routing,
   * shown `degraded` with the reason in status, and recorded once per revision as an event.
   */
  private unschedulable = new Map<string, { key: string; reason: string | null }>();

  constructor(private readonly deps: ControlPlaneDeps) {}

  /**
   * Loads the last placement, so a restarted server moves nothing that runs (a damaged one is
   * ignored), and gives every service that uses an older version of a secret its new revision
   * (a server stopped between storing a secret and committing those revisions finishes here).
   */
  async load(): Promise<void> {
    const saved = await this.deps.store.getKv<Record<string, string>>(PLACEMENT_KEY);
    if (saved && typeof saved === 'object') {
      this.placement = new Map(Object.entries(saved).filter((e): e is [string, string] => typeof e[1] === 'string'));
    }
    const hashes = await this.deps.store.getKv<Record<string, string>>(PLACED_HASHES_KEY);
    if (hashes && typeof hashes === 'object') {
      this.placedHashes = new Map(Object.entries(hashes).filter((e): e is [string, string] => typeof e[1] === 'string'));
    }
    const homes = await this.deps.store.getKv<Record<string, string>>(HOMES_KEY);
    if (homes && typeof homes === 'object') {
      this.homes = new Map(Object.entries(homes).filter((e): e is [string, string] => typeof e[1] === 'string'));
    }
    // Published by the server's first scheduling pass, once nodes and API are up.
    await this.serial(() => this.followSecrets(false));
  }

  /**
   * Why a stored service cannot be scheduled by this version, or null when it can. Judged once
   * per revision; never throws.
   */
  private whyUnschedulable(svc: ServiceRecord): string | null {
    const key = `${svc.revision}:${svc.specHash}`;
    const known = this.unschedulable.get(svc.name);
    if (known?.key === key) return known.reason;
    const r = checkStoredSpec(svc.spec);
    const reason = r.ok ? null : `stored spec of revision ${svc.revision} is not valid in this version (${r.problems.join('; ')}); apply a corrected manifest`;
    this.unschedulable.set(svc.name, { key, reason });
    if (reason !== null) {
      this.deps.log.warn({ service: svc.name, revision: svc.revision, reason }, 'stored service not scheduled');
      this.deps.events.record({
        time: new Date(this.deps.clock.now()).toISOString(),
        reconciler: 'control-plane',
        service: svc.name,
        instance: null,
        node: null,
        action: 'service.unschedulable',
        reason,
        outcome: 'skipped',
        durationMs: 0,
      });
    }
    return reason;
  }

  /** The live services this version can schedule (the others are reported, see whyUnschedulable). */
  private async schedulableServices(): Promise<ServiceRecord[]> {
    const all = await this.deps.store.listServices();
    return all.filter((s) => s.deletedAt !== undefined || this.whyUnschedulable(s) === null);
  }

  nodeLinks(): NodeLink[] {
    return [...this.deps.nodes()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Slots waiting for their replacement before leaving a draining node. */
  hasLingering(): boolean {
    return this.lingering.size > 0;
  }

  /**
   * A slot leaving a draining node (or a ready one, to spread) keeps running there, as that node
   * last ran it, until its replacement is ready (a slot.reschedule effect).
   */
  linger(key: string, from: string): void {
    this.lingering.set(key, from);
    const before = this.sent.get(from)?.find((a) => `${a.service}/${a.slot}` === key);
    if (before) this.held.set(key, before);
    else this.held.delete(key);
  }

  /**
   * `orca rebalance [SERVICE]` (server/rebalance.ts): spread moves one at a time, start-first,
   * told to `progress`; resolves with the last line. Throws OrcaError ORCA_NOT_FOUND for an
   * unknown service and ORCA_CONFLICT while another rebalance runs, before any progress.
   */
  async rebalance(service: string | undefined, signal: AbortSignal, progress: (p: RebalanceProgress) => Promise<void>): Promise<RebalanceProgress> {
    const live = (await this.deps.store.listServices()).filter((s) => !s.deletedAt && (service === undefined || s.name === service));
    if (service !== undefined && live.length === 0) throw new OrcaError('ORCA_NOT_FOUND', `service "${service}" not found`);
    if (this.rebalancing) throw new OrcaError('ORCA_CONFLICT', 'a rebalance is already running: wait for it to finish (orca events -f shows its moves)');
    this.rebalancing = true;
    try {
      const deps = {
        clock: this.deps.clock,
        log: this.deps.log.child({ op: 'rebalance' }),
        ask: (a: MoveAsk) => this.askPass(a),
        placedOn: (key: string) => this.placement.get(key),
        // A down node's last word is history: what ran there was rescheduled.
        reports: () => this.nodeLinks().flatMap((n) => (n.state() === 'down' ? [] : n.lastReports())),
        service: async (name: string) => {
          const s = await this.deps.store.getService(name);
          return s && !s.deletedAt ? s : undefined;
        },
        record: (e: Parameters<EventLog['record']>[0]) => this.deps.events.record(e),
      };
      const scope = {
        only: service === undefined ? null : new Set([service]),
        stay: live.filter((s) => Object.keys(s.spec.volumes ?? {}).length > 0).map((s) => s.name),
        maxMoves: live.reduce((n, s) => n + (Number.isInteger(s.spec.replicas) ? Math.max(0, s.spec.replicas) : 0), 0),
      };
      return await runRebalance(deps, scope, signal, progress);
    } finally {
      this.rebalancing = false;
    }
  }

  /** Has the next scheduling pass make one asked move; what it made (null: none, or this server does not schedule). */
  private async askPass(ask: MoveAsk): Promise<AskedMove | null> {
    const entry: { ask: MoveAsk; made?: AskedMove | null } = { ask };
    this.asks.push(entry);
    try {
      await this.publish();
    } finally {
      this.asks = this.asks.filter((x) => x !== entry);
    }
    return entry.made ?? null;
  }

  /** Parses manifests; every error of every file, formatted with file and place. */
  parse(files: ManifestFile[], seen = new Map<string, string>()): Result<ServiceSpec[]> {
    const errors: string[] = [];
    const specs: ServiceSpec[] = [];
    if (files.length === 0) return fail(['no manifest given']);
    for (const f of files) {
      const r = parseManifestText(f.text, f.file);
      if (!r.ok) {
        errors.push(...r.errors.map(formatManifestError));
        continue;
      }
      for (const p of r.value) {
        const other = seen.get(p.spec.name);
        if (other !== undefined) errors.push(`${f.file}: service "${p.spec.name}": also defined in ${other}`);
        seen.set(p.spec.name, f.file);
        specs.push(p.spec);
      }
    }
    return errors.length ? fail(errors) : ok(specs);
  }

  /** Applies specs atomically: every changed service gets a new revision, or nothing is written. */
  apply(files: ManifestFile[], dryRun: boolean): Promise<Result<ApplyResult[]>> {
    return this.serial(async () => {
      const fileOf = new Map<string, string>();
      const parsed = this.parse(files, fileOf);
      if (!parsed.ok) return parsed;
      const clashes = routeConflicts(
        parsed.value.map((spec) => ({ spec, file: fileOf.get(spec.name) ?? '?' })),
        // A stored spec this version cannot read must not block the apply that corrects it.
        await this.schedulableServices(),
      );
      if (clashes.length > 0) return fail(clashes);
      // Every secret a manifest names must exist: an instance could not start without it.
      const versions = await this.deps.secrets.versions();
      const unknown = unknownSecretErrors(
        parsed.value.map((spec) => ({ spec, file: fileOf.get(spec.name) ?? '?' })),
        new Set(versions.keys()),
      );
      if (unknown.length > 0) return fail(unknown);
      const results: ApplyResult[] = [];
      const writes: NewRevision[] = [];
      const at = new Date(this.deps.clock.now()).toISOString();
      for (const spec of parsed.value) {
        const hash = specHash(spec);
        const secretVersions = versionsFor(spec, versions);
        const existing = await this.deps.store.getService(spec.name);
        if (existing && !existing.deletedAt && existing.specHash === hash && sameVersions(existing.secretVersions, secretVersions)) {
          results.push({ service: spec.name, action: 'unchanged', revision: existing.revision });
          continue;
        }
        writes.push({ spec, specHash: hash, source: 'apply', at, secretVersions });
        results.push({
          service: spec.name,
          action: existing && !existing.deletedAt ? 'configured' : 'created',
          revision: existing ? existing.revision + 1 : 1,
        });
      }
      if (!dryRun && writes.length > 0) {
        const written = await this.deps.store.commitRevisions(writes);
        const byName = new Map(results.map((r) => [r.service, r]));
        for (const w of written) {
          const r = byName.get(w.name);
          if (r) r.revision = w.revision;
        }
        await this.publish();
      }
      return ok(results);
    });
  }

  /** Field-level differences between manifests and the stored desired state. */
  async diff(files: ManifestFile[]): Promise<Result<Array<{ service: string; changes: FieldChange[]; exists: boolean }>>> {
    const parsed = this.parse(files);
    if (!parsed.ok) return parsed;
    const out = [];
    for (const spec of parsed.value) {
      const existing = await this.deps.store.getService(spec.name);
      const live = existing && !existing.deletedAt ? existing.spec : undefined;
      out.push({ service: spec.name, changes: diffSpecs(live, spec), exists: live !== undefined });
    }
    return ok(out);
  }

  /** Deletes services (history kept). Unknown names are errors and nothing is deleted. */
  delete(names: string[]): Promise<Result<string[]>> {
    return this.serial(async () => {
      const missing: string[] = [];
      for (const n of names) {
        const s = await this.deps.store.getService(n);
        if (!s || s.deletedAt) missing.push(n);
      }
      if (missing.length) return fail(missing.map((n) => `service "${n}" not found`));
      const at = new Date(this.deps.clock.now()).toISOString();
      for (const n of names) await this.deps.store.markDeleted(n, at);
      await this.publish();
      return ok(names);
    });
  }

  /** Makes a new revision from an earlier one (default: the one before the current). */
  /** Fails with ORCA_NOT_FOUND (no such service or revision) or ORCA_CONFLICT (the revision cannot run in this version). */
  rollback(name: string, toRevision?: number): Promise<Result<ApplyResult & { from: number }, OrcaError>> {
    return this.serial(async () => {
      const svc = await this.deps.store.getService(name);
      if (!svc || svc.deletedAt) return fail(new OrcaError('ORCA_NOT_FOUND', `service "${name}" not found`));
      const revisions = await this.deps.store.listRevisions(name);
      const target =
        toRevision !== undefined
          ? revisions.find((r) => r.revision === toRevision)
          : [...revisions].reverse().find((r) => r.revision < svc.revision && r.specHash !== svc.specHash);
      if (!target) {
        return fail(
          new OrcaError(
            'ORCA_NOT_FOUND',
            toRevision !== undefined
              ? `service "${name}" has no revision ${toRevision} (kept: ${revisions.map((r) => r.revision).join(', ')})`
              : `service "${name}" has no earlier revision with a different spec to roll back to`,
          ),
        );
      }
      if (target.specHash === svc.specHash) {
        return ok({ service: name, action: 'unchanged' as const, revision: svc.revision, from: target.revision });
      }
      const check = checkStoredSpec(target.spec);
      if (!check.ok) {
        return fail(new OrcaError('ORCA_CONFLICT', `service "${name}": revision ${target.revision} is not valid in this version: ${check.problems.join('; ')}`));
      }
      // Only the current value of a secret exists: the earlier spec runs with it, if it still exists.
      const versions = await this.deps.secrets.versions();
      const missing = usedSecrets(target.spec).filter((n) => !versions.has(n));
      if (missing.length > 0) {
        const list = missing.map((n) => `"${n}"`).join(', ');
        return fail(new OrcaError('ORCA_CONFLICT', `service "${name}": revision ${target.revision} uses secret ${list}, which no longer exists: set it first (orca secret set ${missing[0]})`));
      }
      const at = new Date(this.deps.clock.now()).toISOString();
      const [written] = await this.deps.store.commitRevisions([
        { spec: target.spec, specHash: target.specHash, source: 'rollback', rollbackOf: target.revision, at, secretVersions: versionsFor(target.spec, versions) },
      ]);
      await this.publish();
      return ok({ service: name, action: 'configured' as const, revision: written?.revision ?? svc.revision + 1, from: target.revision });
    });
  }

  /** Every secret with the live services that use it; never a value. */
  async listSecrets(): Promise<SecretListing[]> {
    const services = await this.deps.store.listServices();
    return (await this.deps.secrets.list()).map((s) => ({ ...s, usedBy: usersOf(services, s.name) }));
  }

  /**
   * Stores a secret's value. A new value of a secret in use makes a new revision of every service
   * that uses it (rolled out with the service's own deploy strategy), with the reason in its
   * history. Throws OrcaError ORCA_USAGE for a bad name or value; never quotes the value.
   */
  setSecret(name: string, value: Buffer): Promise<SecretSetResult> {
    return this.serial(async () => {
      const at = new Date(this.deps.clock.now()).toISOString();
      const r = await this.deps.secrets.set(name, value, at);
      this.deps.log.info({ secret: name, version: r.info.version, change: r.change }, 'secret set');
      const rolled = r.change === 'updated' ? await this.followSecrets(true) : [];
      return { ...r.info, change: r.change, rolled };
    });
  }

  /** Removes a secret. Fails with ORCA_NOT_FOUND, or ORCA_CONFLICT naming the services that still use it. */
  removeSecret(name: string): Promise<Result<string, OrcaError>> {
    return this.serial(async () => {
      if (!(await this.deps.secrets.get(name))) return fail(new OrcaError('ORCA_NOT_FOUND', `secret "${name}" not found`));
      const users = usersOf(await this.deps.store.listServices(), name);
      if (users.length > 0) {
        const list = users.map((u) => `"${u}"`).join(', ');
        return fail(new OrcaError('ORCA_CONFLICT', `secret "${name}" is used by service ${list}: take it out of their secrets and secret_env and apply them first`));
      }
      await this.deps.secrets.remove(name, new Date(this.deps.clock.now()).toISOString());
      this.deps.log.info({ secret: name }, 'secret removed');
      return ok(name);
    });
  }

  /**
   * Gives every live service whose secret versions are behind the secrets' current versions a
   * new revision (source 'secret', the reason naming each changed secret), in one batch, and
   * publishes it when `publish`. Runs inside serial().
   */
  private async followSecrets(publish: boolean): Promise<Array<{ service: string; revision: number }>> {
    const versions = await this.deps.secrets.versions();
    const at = new Date(this.deps.clock.now()).toISOString();
    const writes: NewRevision[] = [];
    for (const svc of await this.deps.store.listServices()) {
      if (svc.deletedAt || usedSecrets(svc.spec).length === 0) continue;
      const secretVersions = versionsFor(svc.spec, versions);
      if (sameVersions(svc.secretVersions, secretVersions)) continue;
      writes.push({ spec: svc.spec, specHash: svc.specHash, source: 'secret', reason: changeReason(svc.secretVersions, secretVersions), at, secretVersions });
    }
    if (writes.length === 0) return [];
    const written = await this.deps.store.commitRevisions(writes);
    for (const [i, w] of written.entries()) {
      const reason = writes[i]?.reason ?? '';
      this.deps.log.info({ service: w.name, revision: w.revision, reason }, 'new revision for a new secret value');
      this.deps.events.record({ time: at, reconciler: 'control-plane', service: w.name, instance: null, node: null, action: 'revision.create', reason, outcome: `revision ${w.revision}`, durationMs: 0 });
    }
    if (publish) await this.publish();
    return written.map((w) => ({ service: w.name, revision: w.revision }));
  }

  async history(name: string): Promise<Result<{ current: number | null; revisions: RevisionRecord[] }>> {
    const revisions = await this.deps.store.listRevisions(name);
    if (revisions.length === 0) return fail([`service "${name}" not found`]);
    const svc = await this.deps.store.getService(name);
    return ok({ current: svc && !svc.deletedAt ? svc.revision : null, revisions });
  }

  /** Observed status of one or all services, read from the nodes now. */
  async status(service?: string): Promise<Result<ServiceStatus[]>> {
    const services = (await this.deps.store.listServices()).filter((s) => !service || s.name === service);
    if (service && services.length === 0) return fail([`service "${service}" not found`]);
    const reports = await this.observeAll();
    const out = services.map((s) => this.statusOf(s, reports));
    // One service asked for: say why, with its latest events beside the instances.
    if (service && out[0]) out[0].events = await this.deps.store.listEvents({ service, limit: 8 });
    return ok(out);
  }

  /**
   * The status of every service from what the nodes last pushed (their state reports; no node is
   * asked): the dashboard's live view, recomputed a few times a second for all its viewers at once.
   * The same rows as status(), from the reports the routes follow too.
   */
  async statusFromReports(): Promise<ServiceStatus[]> {
    const services = await this.deps.store.listServices();
    const reports = this.nodeLinks().flatMap((n) => {
      const state = n.state();
      if (state === 'down') return [];
      return state === 'unreachable' ? n.lastReports().map((r) => ({ ...r, ready: false })) : n.lastReports();
    });
    return services.map((s) => this.statusOf(s, reports));
  }

  /** A service's status; one this version cannot schedule is `degraded`, with the reason. */
  private statusOf(svc: ServiceRecord, reports: InstanceReport[]): ServiceStatus {
    const reason = svc.deletedAt === undefined ? this.whyUnschedulable(svc) : null;
    const unplaced = svc.deletedAt === undefined ? this.unplacedOf(svc.name) : [];
    if (reason === null) return serviceStatus(svc, reports, unplaced);
    let base: ServiceStatus;
    try {
      base = serviceStatus(svc, reports, unplaced);
    } catch {
      // A damaged spec may break even the status computation: report what is certain.
      base = { name: svc.name, revision: svc.revision, state: 'degraded', replicas: { desired: 0, running: 0, ready: 0 }, instances: [] };
    }
    return { ...base, state: 'degraded', reason };
  }

  /** The service's slots no node took in the last scheduling pass, and why. */
  private unplacedOf(service: string): Array<{ slot: number; reason: string }> {
    const out: Array<{ slot: number; reason: string }> = [];
    for (const [key, reason] of this.unplaced) {
      const i = key.lastIndexOf('/');
      const slot = Number(key.slice(i + 1));
      if (key.slice(0, i) === service && Number.isInteger(slot)) out.push({ slot, reason });
    }
    return out.sort((a, b) => a.slot - b.slot);
  }

  /**
   * Every named volume of the cluster, asked of each node now; a node that cannot be asked
   * (down, unreachable) contributes what it last listed, marked stale with inUse unknown.
   */
  async listVolumes(): Promise<VolumeListing[]> {
    const all = await Promise.all(
      this.nodeLinks().map(async (n) => {
        const r = await n.volumes();
        return r.volumes.map((v): VolumeListing => ({ ...v, node: n.name, ...(r.stale ? { inUse: null, stale: true as const } : {}) }));
      }),
    );
    return all.flat().sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.node < b.node ? -1 : 1));
  }

  /**
   * `orca delete SERVICE --volumes`, after the delete: asks every node to remove the service's
   * volumes, again while an engine refuses one (its container is still stopping), until all are
   * gone or the wait is over. Returns what was removed and what was not, each with why; the
   * service's volume homes are forgotten once none is left. A down node's volumes (as it last
   * listed them) cannot be removed and are named.
   */
  async removeVolumes(service: string, waitMs = VOLUME_REMOVE_WAIT_MS): Promise<{ removed: string[]; failed: Array<{ name: string; node: string; error: string }> }> {
    const deadline = this.deps.clock.now() + waitMs;
    const removed: string[] = [];
    for (;;) {
      const failed: Array<{ name: string; node: string; error: string }> = [];
      for (const n of this.nodeLinks()) {
        try {
          const r = await n.removeVolumes(service);
          removed.push(...r.removed);
          failed.push(...r.failed.map((f) => ({ ...f, node: n.name })));
        } catch (err) {
          const known = (await n.volumes()).volumes.filter((v) => v.service === service);
          failed.push(...known.map((v) => ({ name: v.name, node: n.name, error: `node ${n.name} cannot be asked: ${errorMessage(err)}` })));
        }
      }
      if (failed.length === 0 || this.deps.clock.now() >= deadline) {
        if (failed.length === 0) await this.serial(() => this.forgetHomes(service));
        return { removed: [...new Set(removed)].sort(), failed };
      }
      await sleep(this.deps.clock, VOLUME_REMOVE_RETRY_MS);
    }
  }

  private async forgetHomes(service: string): Promise<void> {
    let changed = false;
    for (const key of [...this.homes.keys()]) {
      if (key.slice(0, key.lastIndexOf('/')) === service) changed = this.homes.delete(key) || changed;
    }
    if (changed) await this.deps.store.putKv(HOMES_KEY, Object.fromEntries(this.homes));
  }

  /** Every node's instances, read from Docker through its agent now (unreachable nodes: their last report). */
  async observeAll(): Promise<InstanceReport[]> {
    const all = await Promise.all(
      this.nodeLinks().map(async (n) => {
        const reports = await n.observe();
        const state = n.state();
        // A down node's replicas were rescheduled; what it last said is history, not state.
        if (state === 'down') return [];
        // An unreachable node's last word is not a promise of service: nothing there is routed.
        return state === 'unreachable' ? reports.map((r) => ({ ...r, ready: false })) : reports;
      }),
    );
    return all.flat();
  }

  /** What every node last reported (cheap; for listings that must not wait on a slow node). */
  lastReports(): InstanceReport[] {
    return this.nodeLinks().flatMap((n) => n.lastReports());
  }

  async liveServices(): Promise<ServiceRecord[]> {
    return this.deps.store.listServices();
  }

  /**
   * Schedules every slot and sends each node its assignment set. Calls that arrive while one
   * runs are folded into one more pass after it.
   */
  async publish(): Promise<void> {
    if (this.publishing) {
      this.publishAgain = true;
      return this.publishing;
    }
    this.publishing = (async () => {
      do {
        this.publishAgain = false;
        await this.publishOnce();
      } while (this.publishAgain);
    })().finally(() => (this.publishing = null));
    return this.publishing;
  }

  private async publishOnce(): Promise<void> {
    // A standby schedules nothing: the leader does, from the same store.
    if (this.deps.leading && !this.deps.leading()) return;
    const services = await this.schedulableServices();
    this.deps.onServices?.(services);
    const links = this.nodeLinks();
    const byName = new Map(links.map((n) => [n.name, n]));
    const nodes = links.map((n) => ({
      name: n.name,
      labels: n.labels(),
      capacity: n.capacity(),
      ...nodeSchedulingFlags(n.state()),
      down: n.state() === 'down',
      allowHostPaths: n.allowHostPaths(),
      protocol: n.protocol(),
    }));
    const stateOf = (n: string) => byName.get(n)?.state();
    // Moves orca rebalance asked for start from here; the scheduler keeps them (its step 1). A
    // service rolling out to a new instance hash is spread again (server/rebalance.ts).
    const asks = this.asks.splice(0);
    const asked = applyAsks(asks.map((a) => a.ask), { services, nodes, placement: this.placement, homes: this.homes, stateOf });
    const { assignments, placement, unplaced, moved } = schedule(services, nodes, asked.previous, this.homes, {
      respread: rolloutRespread(services, this.placedHashes),
    });
    // A slot with volumes placed for the first time makes its home there (where its volume will be).
    let homesChanged = false;
    for (const svc of services) {
      if (svc.deletedAt || Object.keys(svc.spec.volumes ?? {}).length === 0) continue;
      for (let slot = 0; slot < svc.spec.replicas; slot++) {
        const key = `${svc.name}/${slot}`;
        const at = placement.get(key);
        if (at !== undefined && !this.homes.has(key)) {
          this.homes.set(key, at);
          homesChanged = true;
        }
      }
    }
    if (homesChanged) await this.deps.store.putKv(HOMES_KEY, Object.fromEntries(this.homes));
    this.unplaced = new Map(unplaced.map((u) => [u.key, u.reason]));
    // The slots that moved are the node reconciler's slot.reschedule actions (recorded, and
    // lingering on a draining node, or a ready one they leave to spread: see linger()).
    this.deps.reschedule([...asked.actions, ...planReschedules(moved.map((m) => (m.cause === 'spread' ? { ...m, reason: 'rollout' as const } : m)), stateOf)]);
    this.placement = placement;
    const hashes = placedHashes(services);
    if (!sameEntries(hashes, this.placedHashes)) {
      this.placedHashes = hashes;
      await this.deps.store.putKv(PLACED_HASHES_KEY, Object.fromEntries(hashes));
    }
    if (unplaced.length) this.deps.log.warn({ unplaced }, 'no eligible node for some replica slots');
    await this.deps.store.putKv(PLACEMENT_KEY, Object.fromEntries(placement));

    // Slots lingering on a draining node stay assigned there until their replacement is ready.
    const { lingering, sets } = planLingering({
      lingering: this.lingering,
      placement,
      assignments: new Map(links.map((n) => [n.name, assignments.get(n.name) ?? []])),
      live: (name) => services.some((x) => x.name === name && !x.deletedAt),
      reports: this.lingering.size ? links.flatMap((n) => n.lastReports()) : [],
      held: this.held,
    });
    this.lingering = lingering;
    for (const key of [...this.held.keys()]) if (!lingering.has(key)) this.held.delete(key);
    this.sent = sets;
    await Promise.all(links.map((n) => n.setAssignments(sets.get(n.name) ?? [])));
    asks.forEach((a, i) => (a.made = asked.made[i] ?? null));
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }
}

function sameEntries(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}
