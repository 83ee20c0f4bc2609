/**
 * The Store over an abstract-level database (LevelDB on disk via `level`, or `memory-level`).
 * Key layout in keys.ts; open-time checks in verify.ts; revision rules in revisions.ts.
 *
 * Durability: desired-state writes (revisions, deletes, outcomes, kv) use `sync: true`, so an
 * acknowledged write survives kill -9 and power loss. Events use `sync: false`: LevelDB still hands
 * each write to the OS before resolving, so they survive kill -9 of the process but may lose the
 * last moments on power loss; that keeps the reconciliation log cheap.
 */

import { capEventRecord } from './event-cap.js';
import { DEFAULTS } from '../core/defaults.js';
import { errorMessage, OrcaError } from '../core/errors.js';
import type { StoreDb } from './db.js';
import {
  assertServiceName,
  counterKey,
  eventFloorKey,
  eventKey,
  kvKey,
  MAX_EVENT_MS,
  prefixRange,
  PREFIX,
  revisionKey,
  revisionPrefix,
  serviceKey,
} from './keys.js';
import { Mutex } from './mutex.js';
import { inspectLocation, openFailure, operationFailure, storeCorrupt, type LocationState } from './open-errors.js';
import { planRevision, type BatchOp, type ServiceState } from './revisions.js';
import type {
  EventQuery,
  EventRecord,
  NewRevision,
  RevisionOutcome,
  RevisionRecord,
  ServiceRecord,
  Store,
} from './types.js';
import { parseRecord, verifyContents } from './verify.js';

export interface LevelStoreOptions {
  /**
   * Makes the database (utf8 keys and values). Called once, by the first open(), which then opens
   * it in the same tick: abstract-level databases open themselves a microtask after construction,
   * with createIfMissing, which would defeat the never-create-over-existing-data check.
   */
  createDb: () => StoreDb;
  /** Directory of an on-disk database; enables the never-create-over-existing-data check. */
  location?: string;
  /** Revisions kept per service (≥ 1). Default DEFAULTS.revisionsKept (20). */
  revisionsKept?: number;
  /** Events kept in the ring (≥ 1). Default DEFAULTS.eventsKept. */
  eventsKept?: number;
}

type State = 'new' | 'opening' | 'open' | 'closing' | 'closed';

export class LevelStore implements Store {
  private readonly createDb: () => StoreDb;
  private database: StoreDb | undefined;
  private readonly location: string | undefined;
  /** For messages: the directory, or "(memory)". */
  readonly label: string;
  readonly revisionsKept: number;
  readonly eventsKept: number;
  /** Trim the event ring once it holds this many (amortises deletes over ~10 % of the cap). */
  private readonly eventsTrimAt: number;

  private state: State = 'new';
  private readonly writes = new Mutex();
  private eventCount = 0;
  private nextEventSeq = 0;

  /** Does no I/O. Throws ORCA_INTERNAL for a cap below 1. */
  constructor(opts: LevelStoreOptions) {
    this.createDb = opts.createDb;
    this.location = opts.location;
    this.label = opts.location ?? '(memory)';
    this.revisionsKept = positiveInt('revisionsKept', opts.revisionsKept ?? DEFAULTS.revisionsKept);
    this.eventsKept = positiveInt('eventsKept', opts.eventsKept ?? DEFAULTS.eventsKept);
    this.eventsTrimAt = this.eventsKept + Math.max(1, Math.floor(this.eventsKept / 10));
  }

  /**
   * Opens and verifies the store. Idempotent while open. Throws ORCA_STORE_LOCKED (another process
   * holds it), ORCA_STORE_CORRUPT (existing data that cannot be read or verified; never replaced
   * by an empty store), ORCA_STORE_UNAVAILABLE (a new store cannot be created).
   */
  async open(): Promise<void> {
    if (this.state === 'open') return;
    if (this.state === 'opening' || this.state === 'closing') {
      throw new OrcaError('ORCA_INTERNAL', `store ${this.label}: open() while ${this.state}`);
    }
    this.state = 'opening';
    try {
      const before: LocationState = this.location === undefined ? 'missing' : await inspectLocation(this.location);
      try {
        this.database ??= this.createDb();
        await this.database.open({ createIfMissing: before !== 'populated' });
      } catch (e) {
        throw openFailure(this.label, before, e);
      }
      try {
        const contents = await verifyContents(this.db, this.label, before !== 'populated');
        this.eventCount = contents.eventCount;
        this.nextEventSeq = contents.maxEventSeq + 1;
      } catch (e) {
        await this.db.close().catch(() => undefined);
        // Existing data that cannot be read back is corrupt, whatever LevelDB calls the failure.
        if (e instanceof OrcaError) throw e;
        throw before === 'populated' ? storeCorrupt(this.label, errorMessage(e), e) : operationFailure(this.label, e);
      }
      this.state = 'open';
    } catch (e) {
      this.state = 'closed';
      throw e;
    }
  }

  /** Waits for queued writes, then closes. Idempotent. The store can be opened again. */
  async close(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'closing';
    await this.writes.idle();
    try {
      await this.db.close();
    } finally {
      this.state = 'closed';
    }
  }

  // ---- services and revisions ----------------------------------------------------------------

  /** The service's record, including a deleted one (then `deletedAt` is set); undefined if never created. */
  async getService(name: string): Promise<ServiceRecord | undefined> {
    return this.read(() => this.getJson<ServiceRecord>(serviceKey(name)));
  }

  async listServices(opts: { includeDeleted?: boolean } = {}): Promise<ServiceRecord[]> {
    return this.read(async () => {
      const all = await this.scan<ServiceRecord>(prefixRange(PREFIX.service));
      return all.map((e) => e.value).filter((s) => opts.includeDeleted === true || s.deletedAt === undefined);
    });
  }

  /**
   * One atomic, synced batch for all services. An empty list writes nothing and returns [].
   * Throws ORCA_CONFLICT (before writing anything) when two entries name the same service.
   */
  async commitRevisions(revisions: NewRevision[]): Promise<ServiceRecord[]> {
    this.ensureOpen();
    const names = new Set<string>();
    for (const r of revisions) {
      assertServiceName(r.spec.name);
      if (names.has(r.spec.name)) {
        throw new OrcaError('ORCA_CONFLICT', `service ${r.spec.name} appears more than once in one commit`);
      }
      names.add(r.spec.name);
    }
    if (revisions.length === 0) return [];
    return this.write(async () => {
      const ops: BatchOp[] = [];
      const out: ServiceRecord[] = [];
      for (const nr of revisions) {
        const plan = planRevision(await this.serviceState(nr.spec.name), nr, this.revisionsKept);
        ops.push(...plan.ops);
        out.push(plan.service);
      }
      await this.db.batch(ops, { sync: true });
      return out;
    });
  }

  /** Sets deletedAt and updatedAt to `at`; revisions stay. False (and no write) if not live. */
  async markDeleted(name: string, at: string): Promise<boolean> {
    this.ensureOpen();
    return this.write(async () => {
      const svc = await this.getJson<ServiceRecord>(serviceKey(name));
      if (!svc || svc.deletedAt !== undefined) return false;
      const deleted: ServiceRecord = { ...svc, updatedAt: at, deletedAt: at };
      await this.db.batch([{ type: 'put', key: serviceKey(name), value: JSON.stringify(deleted) }], { sync: true });
      return true;
    });
  }

  async listRevisions(name: string): Promise<RevisionRecord[]> {
    if (name.includes('!')) return [];
    return this.read(async () => (await this.scan<RevisionRecord>(prefixRange(revisionPrefix(name)))).map((e) => e.value));
  }

  async getRevision(name: string, revision: number): Promise<RevisionRecord | undefined> {
    if (name.includes('!') || !Number.isSafeInteger(revision) || revision < 1) return undefined;
    return this.read(() => this.getJson<RevisionRecord>(revisionKey(name, revision)));
  }

  /**
   * Idempotent. Without `reason` any earlier reason is removed.
   * Throws ORCA_NOT_FOUND if the revision does not exist (never existed, or pruned).
   */
  async setRevisionOutcome(name: string, revision: number, outcome: RevisionOutcome, reason?: string): Promise<void> {
    this.ensureOpen();
    await this.write(async () => {
      const key = revisionKey(name, revision);
      const current = name.includes('!') ? undefined : await this.getJson<RevisionRecord>(key);
      if (!current) throw new OrcaError('ORCA_NOT_FOUND', `service ${name} has no revision ${revision}`);
      const next: RevisionRecord = { ...current, outcome };
      if (reason === undefined) delete next.outcomeReason;
      else next.outcomeReason = reason;
      await this.db.batch([{ type: 'put', key, value: JSON.stringify(next) }], { sync: true });
    });
  }

  // ---- events --------------------------------------------------------------------------------

  /**
   * Appends in one batch, ordered by `time` (ms) then by append order. Throws ORCA_INTERNAL, writing
   * nothing, if a time is not an ISO-8601 date at or after 1970. Past the cap the oldest are dropped.
   */
  async appendEvents(events: EventRecord[]): Promise<void> {
    this.ensureOpen();
    const times = events.map((e) => eventTimeMs(e.time));
    if (events.length === 0) return;
    await this.write(async () => {
      const ops: BatchOp[] = events.map((e, i) => ({
        type: 'put',
        key: eventKey(times[i] ?? 0, this.nextEventSeq++),
        value: JSON.stringify(capEventRecord(e)),
      }));
      await this.db.batch(ops, { sync: false });
      this.eventCount += ops.length;
      if (this.eventCount >= this.eventsTrimAt) await this.trimEvents();
    });
  }

  /**
   * Matching events among the newest `eventsKept`, the newest `limit` of them, oldest first.
   * `sinceMs` is inclusive; a `limit` of 0 or less returns [].
   */
  async listEvents(query: EventQuery = {}): Promise<EventRecord[]> {
    const limit = query.limit === undefined ? Infinity : Math.floor(query.limit);
    if (limit <= 0) return [];
    const since = query.sinceMs === undefined ? 0 : Math.min(MAX_EVENT_MS, Math.max(0, Math.ceil(query.sinceMs)));
    return this.read(async () => {
      const out: EventRecord[] = [];
      let seen = 0;
      const range = { gte: eventFloorKey(since), lt: prefixRange(PREFIX.event).lt, reverse: true };
      for await (const [key, value] of this.db.iterator(range)) {
        if (++seen > this.eventsKept) break;
        const event = parseRecord(this.label, key, value) as EventRecord;
        if (query.service !== undefined && event.service !== query.service) continue;
        out.push(event);
        if (out.length >= limit) break;
      }
      return out.reverse();
    });
  }

  // ---- kv ------------------------------------------------------------------------------------

  async getKv<T>(key: string): Promise<T | undefined> {
    return this.read(() => this.getJson<T>(kvKey(key)));
  }

  /**
   * Stores JSON.stringify(value) (so Dates come back as strings, undefined fields vanish).
   * Throws ORCA_INTERNAL for a value JSON cannot represent (undefined, a function, a BigInt, a cycle).
   */
  async putKv(key: string, value: unknown): Promise<void> {
    this.ensureOpen();
    const op: BatchOp = { type: 'put', key: kvKey(key), value: kvJson(key, value) };
    await this.write(() => this.db.batch([op], { sync: true }));
  }

  /** Under the write mutex: one process holds the database, so the check and the write cannot be split. */
  async createKv(key: string, value: unknown): Promise<boolean> {
    this.ensureOpen();
    const op: BatchOp = { type: 'put', key: kvKey(key), value: kvJson(key, value) };
    return this.write(async () => {
      if ((await this.db.get(op.key)) !== undefined) return false;
      await this.db.batch([op], { sync: true });
      return true;
    });
  }

  /** Idempotent: deleting a missing key succeeds. */
  async delKv(key: string): Promise<void> {
    this.ensureOpen();
    await this.write(() => this.db.batch([{ type: 'del', key: kvKey(key) }], { sync: true }));
  }

  /** Sorted by key in UTF-8 byte order (code-point order). An empty prefix lists everything. */
  async listKv<T>(prefix: string): Promise<Array<{ key: string; value: T }>> {
    return this.read(async () => {
      const full = kvKey(prefix);
      const entries = await this.scan<T>({ gte: full, lt: prefixRange(PREFIX.kv).lt }, full);
      return entries.map((e) => ({ key: e.key.slice(PREFIX.kv.length), value: e.value }));
    });
  }

  // ---- internals -----------------------------------------------------------------------------

  private get db(): StoreDb {
    if (!this.database) throw new OrcaError('ORCA_STORE_UNAVAILABLE', `store ${this.label} is not open`);
    return this.database;
  }

  private ensureOpen(): void {
    if (this.state !== 'open') {
      throw new OrcaError('ORCA_STORE_UNAVAILABLE', `store ${this.label} is not open (state: ${this.state})`);
    }
  }

  private async read<T>(fn: () => Promise<T>): Promise<T> {
    this.ensureOpen();
    try {
      return await fn();
    } catch (e) {
      throw operationFailure(this.label, e);
    }
  }

  private write<T>(fn: () => Promise<T>): Promise<T> {
    return this.writes.run(async () => {
      // Writes queued before close() began still run: close() waits for them.
      if (this.state !== 'open' && this.state !== 'closing') this.ensureOpen();
      try {
        return await fn();
      } catch (e) {
        throw operationFailure(this.label, e);
      }
    });
  }

  private async getJson<T>(key: string): Promise<T | undefined> {
    const raw = await this.db.get(key);
    return raw === undefined ? undefined : (parseRecord(this.label, key, raw) as T);
  }

  /** Entries in range, in key order; with `mustStartWith`, stops at the first key without it. */
  private async scan<T>(
    range: { gte: string; lt: string },
    mustStartWith?: string,
  ): Promise<Array<{ key: string; value: T }>> {
    const out: Array<{ key: string; value: T }> = [];
    for await (const [key, value] of this.db.iterator(range)) {
      if (mustStartWith !== undefined && !key.startsWith(mustStartWith)) break;
      out.push({ key, value: parseRecord(this.label, key, value) as T });
    }
    return out;
  }

  /** Call only under the write mutex. */
  private async serviceState(name: string): Promise<ServiceState> {
    const service = await this.getJson<ServiceRecord>(serviceKey(name));
    const counter = await this.getJson<{ last: number }>(counterKey(name));
    const revisions = (await this.scan<RevisionRecord>(prefixRange(revisionPrefix(name)))).map((e) => e.value);
    // The counter is the authority; the newest kept revision guards against a lost counter.
    const lastKept = revisions.at(-1)?.revision ?? 0;
    return { service, lastRevision: Math.max(counter?.last ?? 0, lastKept, service?.revision ?? 0), revisions };
  }

  /** Drops the oldest events down to eventsKept. Call only under the write mutex. */
  private async trimEvents(): Promise<void> {
    const excess = this.eventCount - this.eventsKept;
    if (excess <= 0) return;
    const ops: BatchOp[] = [];
    for await (const key of this.db.keys({ ...prefixRange(PREFIX.event), limit: excess })) ops.push({ type: 'del', key });
    await this.db.batch(ops, { sync: false });
    this.eventCount -= ops.length;
  }
}

/** The JSON of a kv value; throws ORCA_INTERNAL for a value JSON cannot represent. */
export function kvJson(key: string, value: unknown): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (e) {
    throw new OrcaError('ORCA_INTERNAL', `kv ${key}: value is not JSON-serialisable`, { cause: e });
  }
  if (json === undefined) throw new OrcaError('ORCA_INTERNAL', `kv ${key}: value is not JSON-serialisable`);
  return json;
}

function positiveInt(name: string, n: number): number {
  if (!Number.isSafeInteger(n) || n < 1) throw new OrcaError('ORCA_INTERNAL', `${name} must be an integer ≥ 1, got ${n}`);
  return n;
}

/** Milliseconds since the epoch of an ISO-8601 time; throws ORCA_INTERNAL if unusable as a key. */
function eventTimeMs(time: string): number {
  const ms = Date.parse(time);
  if (!Number.isFinite(ms) || ms < 0 || ms > MAX_EVENT_MS) {
    throw new OrcaError('ORCA_INTERNAL', `event time is not a usable ISO-8601 time: ${JSON.stringify(time)}`);
  }
  return ms;
}
