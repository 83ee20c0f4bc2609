/**
 * The Store on etcd v3 (SPEC §3.11 "Store on etcd"): what the LevelDB store keeps, in etcd under a
 * prefix (layout in etcd-keys.ts), so several servers can share it.
 *
 * - Every write is one etcd transaction (a commit of many services may take several, see
 *   commitRevisions), acknowledged by a majority of members before its promise resolves.
 * - Revision numbers never collide, even with two servers writing at once: a commit compares the
 *   service record's mod revision (and that of every revision record it rewrites) in its own
 *   transaction and, when another writer came first, reads again and retries (casAttempts). A
 *   retried transaction that had in fact been applied is recognised (the stored record is the one
 *   planned) and not applied twice.
 * - Fencing (for the leader election): while setFence() holds a key and a value, every write
 *   transaction also compares that key's value; when it differs nothing is written and the write
 *   rejects with ORCA_NOT_LEADER.
 * - Bounded: every call has a deadline (callTimeoutMs, then another member), every operation one
 *   more (opTimeoutMs: ORCA_STORE_UNAVAILABLE, transient); values at most maxValueBytes; listings
 *   paged and capped; the event ring trimmed as in the LevelDB store.
 */

import { randomBytes } from 'node:crypto';
import { CompareResult, CompareTarget, SortOrder, SortTarget, GRPCResourceExhastedError, isRecoverableError, type Etcd3, type ICompare, type IKeyValue, type IOptions, type IRangeRequest, type IRangeResponse, type IRequestOp, type ITxnRequest, type ITxnResponse } from 'etcd3';
import { sleep, systemClock, systemRng, type Clock, type Rng } from '../core/clock.js';
import { DEFAULTS } from '../core/defaults.js';
import { errorMessage, isOrcaError, OrcaError } from '../core/errors.js';
import { capEventRecord } from './event-cap.js';
import { ETCD_STORE_DEFAULTS, etcdClientOptions, etcdFailure, newEtcdClient, withDeadline, type EtcdLimits, type EtcdTls } from './etcd-client.js';
import { etcdEventFloorKey, etcdEventKey, keyAfter, MAX_EVENT_SEQ, prefixEnd, prefixProblem, STORE_DIR } from './etcd-keys.js';
import { assertServiceName, FORMAT_KEY, kvKey, MAX_EVENT_MS, PREFIX, revisionKey, revisionPrefix, serviceKey, STORE_FORMAT } from './keys.js';
import { kvJson } from './level-store.js';
import { Mutex } from './mutex.js';
import { storeCorrupt } from './open-errors.js';
import { planRevision, type BatchOp } from './revisions.js';
import type { EventQuery, EventRecord, NewRevision, RevisionOutcome, RevisionRecord, ServiceRecord, Store } from './types.js';
import { parseRecord } from './verify.js';

export interface EtcdStoreOptions {
  /** Client URLs of the members: http://H:P, or https://H:P with `tls`. */
  endpoints: string[];
  /** Where the cluster's keys live, e.g. `/orca/<cluster-id>` (see etcd-keys.ts). */
  prefix: string;
  tls?: EtcdTls;
  /** Revisions kept per service (≥ 1). Default DEFAULTS.revisionsKept (20). */
  revisionsKept?: number;
  /** Events kept in the ring (≥ 1). Default DEFAULTS.eventsKept. */
  eventsKept?: number;
  clock?: Clock;
  rng?: Rng;
  /** Overrides of ETCD_STORE_DEFAULTS (tests). */
  limits?: Partial<EtcdLimits>;
  /** Makes the client; default `new Etcd3(options)`. */
  createClient?: (options: IOptions) => Etcd3;
}

/** What the fence checks: this (whole, un-prefixed) etcd key holds this value. */
export interface StoreFence {
  key: string;
  value: string;
}

type State = 'new' | 'opening' | 'open' | 'closing' | 'closed';

interface Row {
  key: string;
  value: string;
  mod: string;
}

interface ServiceSnapshot {
  service?: ServiceRecord;
  serviceMod: string;
  revisions: Array<{ record: RevisionRecord; mod: string }>;
}

/** A write's compares, operations and the bytes its values take. */
interface TxnPart {
  compares: ICompare[];
  ops: IRequestOp[];
  bytes: number;
}

/** Services whose states one read-only transaction fetches (two ranges each, under etcd's 128 operations). */
const STATES_PER_READ = 50;
/** Keys a trim deletes at most at once. */
const MAX_TRIM_KEYS = 50_000;

export class EtcdStore implements Store {
  /** The key prefix (the election keeps its keys under it too). */
  readonly prefix: string;
  /** For messages: `etcd http://…,… prefix /orca/x`. */
  readonly label: string;
  readonly endpoints: readonly string[];
  readonly revisionsKept: number;
  readonly eventsKept: number;
  private readonly eventsTrimAt: number;
  private readonly base: string;
  private readonly limits: EtcdLimits;
  private readonly clock: Clock;
  private readonly rng: Rng;
  private readonly options: IOptions;
  private readonly createClient: (options: IOptions) => Etcd3;

  private etcd: Etcd3 | undefined;
  private state: State = 'new';
  private fence: StoreFence | null = null;
  private readonly writes = new Mutex();
  /** The etcd revision at open, this writer's id and sequence: its event keys (etcd-keys.ts). */
  private openRev = '0';
  private writer = '';
  private eventSeq = 0;
  /** Events in the ring, as far as this store knows (others may add some): a trim counts them. */
  private eventEstimate = 0;

  /** Does no I/O. Throws ORCA_INTERNAL for a bad prefix, no endpoint, or a cap below 1. */
  constructor(opts: EtcdStoreOptions) {
    const bad = prefixProblem(opts.prefix);
    if (bad) throw new OrcaError('ORCA_INTERNAL', `etcd store prefix ${JSON.stringify(opts.prefix)} ${bad}`);
    if (opts.endpoints.length === 0) throw new OrcaError('ORCA_INTERNAL', 'etcd store: no endpoint');
    this.prefix = opts.prefix;
    this.base = opts.prefix + STORE_DIR;
    this.endpoints = [...opts.endpoints];
    this.label = `etcd ${this.endpoints.join(',')} prefix ${this.prefix}`;
    this.revisionsKept = positiveInt('revisionsKept', opts.revisionsKept ?? DEFAULTS.revisionsKept);
    this.eventsKept = positiveInt('eventsKept', opts.eventsKept ?? DEFAULTS.eventsKept);
    this.eventsTrimAt = this.eventsKept + Math.max(1, Math.floor(this.eventsKept / 10));
    this.limits = { ...ETCD_STORE_DEFAULTS, ...opts.limits };
    this.clock = opts.clock ?? systemClock;
    this.rng = opts.rng ?? systemRng;
    this.options = etcdClientOptions([...this.endpoints], opts.tls, this.limits, this.clock);
    this.createClient = opts.createClient ?? newEtcdClient;
  }

  /**
   * The connection to etcd, for the leader election to share (closed by close()). Throws
   * ORCA_STORE_UNAVAILABLE unless the store is open.
   */
  get client(): Etcd3 {
    this.ensureOpen();
    return this.etcd as Etcd3;
  }

  /**
   * While set, every write transaction also checks that etcd key `f.key` (the whole key, not
   * under the prefix) holds `f.value`; when it does not, the write changes nothing and rejects
   * with ORCA_NOT_LEADER (transient). null: writes unfenced. Takes effect for writes that start
   * after the call.
   */
  setFence(f: StoreFence | null): void {
    if (f !== null && (typeof f.key !== 'string' || f.key.length === 0 || typeof f.value !== 'string')) {
      throw new OrcaError('ORCA_INTERNAL', 'a store fence needs a key and a value');
    }
    this.fence = f === null ? null : { key: f.key, value: f.value };
  }

  /**
   * Connects and checks the store-format marker (written when the prefix holds nothing yet).
   * Throws ORCA_STORE_UNAVAILABLE naming the endpoints when etcd cannot be reached (within
   * opTimeoutMs), ORCA_STORE_CORRUPT when the prefix holds data that is not an Orca store of this
   * format. Idempotent while open.
   */
  async open(): Promise<void> {
    if (this.state === 'open') return;
    if (this.state === 'opening' || this.state === 'closing') {
      throw new OrcaError('ORCA_INTERNAL', `store ${this.label}: open() while ${this.state}`);
    }
    this.state = 'opening';
    const etcd = this.createClient(this.options);
    this.etcd = etcd;
    try {
      await withDeadline(this.clock, this.limits.opTimeoutMs, () => this.unreachable(`no answer within ${(this.limits.opTimeoutMs / 1000).toFixed(1)} s`), async () => {
        const res = await this.range({ key: this.k(FORMAT_KEY) });
        const marker = res.kvs[0];
        if (marker) this.checkFormat(marker.value.toString('utf8'));
        else await this.createFormat();
        this.openRev = res.header.revision;
        const count = await this.range({ ...this.dirRange(PREFIX.event), count_only: true });
        this.eventEstimate = Number(count.count);
      });
      this.writer = randomBytes(4).toString('hex');
      this.eventSeq = 0;
      this.state = 'open';
    } catch (e) {
      this.state = 'closed';
      this.etcd = undefined;
      etcd.close();
      if (isOrcaError(e) && e.code !== 'ORCA_STORE_UNAVAILABLE') throw e;
      const failure = etcdFailure(this.label, e);
      throw isOrcaError(e) ? e : new OrcaError(failure.code, this.unreachable(errorMessage(e).split('\n')[0]?.slice(0, 300) ?? ''), { transient: failure.transient, cause: e });
    }
  }

  /** Waits for queued writes, then closes the connection. Idempotent; open() may be called again. */
  async close(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'closing';
    await this.writes.idle();
    this.etcd?.close();
    this.etcd = undefined;
    this.state = 'closed';
  }

  // ---- services and revisions ----------------------------------------------------------------

  async getService(name: string): Promise<ServiceRecord | undefined> {
    return this.read('get service', async () => (await this.get<ServiceRecord>(serviceKey(name)))?.value);
  }

  async listServices(opts: { includeDeleted?: boolean } = {}): Promise<ServiceRecord[]> {
    return this.read('list services', async () => {
      const rows = await this.scan(PREFIX.service);
      return rows.map((r) => this.parse<ServiceRecord>(r)).filter((s) => opts.includeDeleted === true || s.deletedAt === undefined);
    });
  }

  /**
   * Each service's new revision and record in one transaction, compared against the records it
   * read. A commit whose writes do not fit one transaction (etcd's bounds: maxTxnOps operations,
   * maxTxnBytes of values; some thirty services, fewer with large specs) is written in several,
   * each whole services: an interrupted one leaves the first services at their new revision and
   * the rest as they were, and applying again finishes it. ORCA_CONFLICT (nothing written) when two
   * entries name one service; ORCA_CONFLICT (transient) when other writers kept winning.
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
    return this.write('commit revisions', async () => {
      const out: ServiceRecord[] = [];
      let rest = revisions;
      while (rest.length > 0) {
        const done = await this.commitSome(rest);
        out.push(...done);
        rest = rest.slice(done.length);
      }
      return out;
    });
  }

  async markDeleted(name: string, at: string): Promise<boolean> {
    this.ensureOpen();
    return this.write('mark deleted', () =>
      this.casLoop(`service ${name}`, async () => {
        const row = await this.get<ServiceRecord>(serviceKey(name));
        if (!row?.value || row.value.deletedAt !== undefined) return { done: false };
        const deleted = JSON.stringify({ ...row.value, updatedAt: at, deletedAt: at } satisfies ServiceRecord);
        return {
          part: { compares: [this.modIs(serviceKey(name), row.mod)], ops: [this.put(serviceKey(name), deleted)], bytes: deleted.length },
          landed: async () => (await this.get<ServiceRecord>(serviceKey(name)))?.raw === deleted,
          done: true,
        };
      }),
    );
  }

  async listRevisions(name: string): Promise<RevisionRecord[]> {
    if (name.includes('!')) return [];
    return this.read('list revisions', async () => (await this.scan(revisionPrefix(name))).map((r) => this.parse<RevisionRecord>(r)));
  }

  async getRevision(name: string, revision: number): Promise<RevisionRecord | undefined> {
    if (name.includes('!') || !Number.isSafeInteger(revision) || revision < 1) return undefined;
    return this.read('get revision', async () => (await this.get<RevisionRecord>(revisionKey(name, revision)))?.value);
  }

  async setRevisionOutcome(name: string, revision: number, outcome: RevisionOutcome, reason?: string): Promise<void> {
    this.ensureOpen();
    await this.write('set revision outcome', () =>
      this.casLoop(`revision ${revision} of ${name}`, async () => {
        const key = revisionKey(name, revision);
        const row = name.includes('!') || !Number.isSafeInteger(revision) || revision < 1 ? undefined : await this.get<RevisionRecord>(key);
        if (!row?.value) throw new OrcaError('ORCA_NOT_FOUND', `service ${name} has no revision ${revision}`);
        const next: RevisionRecord = { ...row.value, outcome };
        if (reason === undefined) delete next.outcomeReason;
        else next.outcomeReason = reason;
        const json = this.bounded(`revision ${revision} of ${name}`, JSON.stringify(next));
        if (json === row.raw) return { done: undefined };
        return { part: { compares: [this.modIs(key, row.mod)], ops: [this.put(key, json)], bytes: json.length }, landed: async () => false, done: undefined };
      }),
    );
  }

  // ---- events --------------------------------------------------------------------------------

  /**
   * Appends in transactions of at most maxTxnOps events, ordered by `time` (ms) then by append
   * order (etcd-keys.ts). ORCA_INTERNAL, writing nothing, if a time is not an ISO-8601 date at or
   * after 1970. Past the cap the oldest are dropped.
   */
  async appendEvents(events: EventRecord[]): Promise<void> {
    this.ensureOpen();
    const times = events.map((e) => eventTimeMs(e.time));
    if (events.length === 0) return;
    await this.write('append events', async () => {
      let part: TxnPart = { compares: [], ops: [], bytes: 0 };
      for (const [i, e] of events.entries()) {
        if (this.eventSeq >= MAX_EVENT_SEQ) this.eventSeq = 0;
        const value = JSON.stringify(capEventRecord(e));
        const key = etcdEventKey(times[i] ?? 0, this.openRev, this.eventSeq++, this.writer);
        if (part.ops.length >= this.limits.maxTxnOps || part.bytes + value.length > this.limits.maxTxnBytes) {
          await this.commitFenced(part);
          part = { compares: [], ops: [], bytes: 0 };
        }
        part.ops.push(this.put(key, value));
        part.bytes += value.length;
        this.eventEstimate++;
      }
      await this.commitFenced(part);
      if (this.eventEstimate >= this.eventsTrimAt) await this.trimEvents();
    });
  }

  /** As LevelStore.listEvents: matching events among the newest `eventsKept`, the newest `limit`, oldest first. */
  async listEvents(query: EventQuery = {}): Promise<EventRecord[]> {
    const limit = query.limit === undefined ? Infinity : Math.floor(query.limit);
    if (limit <= 0) return [];
    const since = query.sinceMs === undefined ? 0 : Math.min(MAX_EVENT_MS, Math.max(0, Math.ceil(query.sinceMs)));
    return this.read('list events', async () => {
      const out: EventRecord[] = [];
      let seen = 0;
      const low = this.k(etcdEventFloorKey(since));
      let high = this.dirRange(PREFIX.event).range_end;
      // Newest first, a page at a time: etcd sorts a whole range before it cuts a page, so each
      // page asks only for the keys below the last one seen.
      for (;;) {
        const page = this.limits.pageSize;
        const res = await this.rangePaged({ key: low, range_end: high, limit: page, sort_order: SortOrder.Descend, sort_target: SortTarget.Key });
        for (const kv of res.kvs) {
          if (++seen > this.eventsKept) return out.reverse();
          const event = this.parse<EventRecord>(this.row(kv));
          if (query.service !== undefined && event.service !== query.service) continue;
          out.push(event);
          if (out.length >= limit) return out.reverse();
        }
        const last = res.kvs.at(-1);
        if (!last || !res.more) return out.reverse();
        high = last.key;
      }
    });
  }

  // ---- kv ------------------------------------------------------------------------------------

  async getKv<T>(key: string): Promise<T | undefined> {
    return this.read('get kv', async () => (await this.get<T>(kvKey(key)))?.value);
  }

  /** ORCA_INTERNAL for a value JSON cannot represent, or one larger than maxValueBytes as JSON. */
  async putKv(key: string, value: unknown): Promise<void> {
    this.ensureOpen();
    const json = this.bounded(`kv ${key}`, kvJson(key, value));
    await this.write('put kv', () => this.commitFenced({ compares: [], ops: [this.put(kvKey(key), json)], bytes: json.length }));
  }

  /** One transaction that compares the key's version with 0 (it does not exist). */
  async createKv(key: string, value: unknown): Promise<boolean> {
    this.ensureOpen();
    const json = this.bounded(`kv ${key}`, kvJson(key, value));
    return this.write('create kv', async () => {
      const part = { compares: [{ key: this.k(kvKey(key)), target: CompareTarget.Version, result: CompareResult.Equal, version: 0 }], ops: [this.put(kvKey(key), json)], bytes: json.length };
      // Refused: the key exists (if this very write went through and only its answer was lost,
      // etcd3 retried it: the caller reads the key and finds its own value).
      return this.commitFenced(part, false);
    });
  }

  async delKv(key: string): Promise<void> {
    this.ensureOpen();
    await this.write('delete kv', () => this.commitFenced({ compares: [], ops: [{ request_delete_range: { key: this.k(kvKey(key)) } }], bytes: 0 }));
  }

  /** Sorted by key in byte order; an empty prefix lists everything (at most maxListEntries). */
  async listKv<T>(prefix: string): Promise<Array<{ key: string; value: T }>> {
    return this.read('list kv', async () => {
      const rows = await this.scan(kvKey(prefix));
      return rows.map((r) => ({ key: r.key.slice(PREFIX.kv.length), value: this.parse<T>(r) }));
    });
  }

  // ---- commits -------------------------------------------------------------------------------

  /**
   * Commits as many of `revisions` (from the first) as fit one transaction; returns their
   * records. Reads the services' states, plans (revisions.ts), writes with compares, and on a
   * lost race reads again.
   */
  private async commitSome(revisions: NewRevision[]): Promise<ServiceRecord[]> {
    for (let attempt = 1; ; attempt++) {
      const part: TxnPart = { compares: [], ops: [], bytes: 0 };
      const planned: Array<{ service: ServiceRecord; json: string }> = [];
      let offset = 0;
      fill: while (offset < revisions.length) {
        const batch = revisions.slice(offset, offset + STATES_PER_READ);
        const states = await this.serviceStates(batch.map((r) => r.spec.name));
        for (const [i, nr] of batch.entries()) {
          const next = this.planOne(nr, states[i] as ServiceSnapshot);
          const fits = part.ops.length + next.part.ops.length <= this.limits.maxTxnOps && part.compares.length + next.part.compares.length <= this.limits.maxTxnOps - 1 && part.bytes + next.part.bytes <= this.limits.maxTxnBytes;
          if (!fits && planned.length > 0) break fill;
          if (!fits) throw new OrcaError('ORCA_INTERNAL', `service ${nr.spec.name}: its revision does not fit one etcd transaction (${next.part.ops.length} operations, ${next.part.bytes} bytes)`);
          part.compares.push(...next.part.compares);
          part.ops.push(...next.part.ops);
          part.bytes += next.part.bytes;
          planned.push({ service: next.service, json: next.json });
        }
        offset += batch.length;
      }
      if (await this.commitFenced(part, false)) return planned.map((p) => p.service);
      // Lost the race, or won it with an answer that got lost (a retried transaction): if every
      // record is the one planned, it is in.
      const now = await this.serviceStates(planned.map((p) => p.service.name));
      if (now.every((s, i) => s.service !== undefined && JSON.stringify(s.service) === planned[i]?.json)) return planned.map((p) => p.service);
      if (attempt >= this.limits.casAttempts) throw this.tooBusy(`service ${planned[0]?.service.name ?? '?'}`);
      await this.backoff(attempt);
    }
  }

  /** One service's share of a commit: the plan of revisions.ts, without the counter key, with compares. */
  private planOne(nr: NewRevision, s: ServiceSnapshot): { part: TxnPart; service: ServiceRecord; json: string } {
    const lastKept = s.revisions.at(-1)?.record.revision ?? 0;
    const plan = planRevision({ service: s.service, lastRevision: Math.max(s.service?.revision ?? 0, lastKept), revisions: s.revisions.map((r) => r.record) }, nr, this.revisionsKept);
    const mods = new Map(s.revisions.map((r) => [revisionKey(r.record.service, r.record.revision), r.mod]));
    const part: TxnPart = { compares: [this.modIs(serviceKey(nr.spec.name), s.serviceMod)], ops: [], bytes: 0 };
    let json = '';
    for (const op of plan.ops as BatchOp[]) {
      if (op.key.startsWith(PREFIX.counter)) continue;
      if (op.type === 'del') {
        part.ops.push({ request_delete_range: { key: this.k(op.key) } });
        continue;
      }
      this.bounded(op.key, op.value);
      if (op.key === serviceKey(nr.spec.name)) json = op.value;
      // A revision rewritten (superseded) must not have changed since it was read.
      const mod = mods.get(op.key);
      if (mod !== undefined) part.compares.push(this.modIs(op.key, mod));
      part.ops.push(this.put(op.key, op.value));
      part.bytes += op.value.length;
    }
    return { part, service: plan.service, json };
  }

  /** The service records and kept revisions of `names`, read at one etcd revision (read-only transactions). */
  private async serviceStates(names: string[]): Promise<ServiceSnapshot[]> {
    const out: ServiceSnapshot[] = [];
    for (let i = 0; i < names.length; i += STATES_PER_READ) {
      const chunk = names.slice(i, i + STATES_PER_READ);
      const success: IRequestOp[] = chunk.flatMap((name) => [{ request_range: { key: this.k(serviceKey(name)) } }, { request_range: this.dirRange(revisionPrefix(name)) }]);
      const res = await this.txn({ compare: [], success, failure: [] });
      chunk.forEach((_, j) => {
        const svc = res.responses[2 * j]?.response_range.kvs[0];
        const revs = res.responses[2 * j + 1]?.response_range;
        if (revs?.more) throw new OrcaError('ORCA_INTERNAL', `service ${chunk[j]}: more revisions than one read returns`);
        out.push({
          ...(svc ? { service: this.parse<ServiceRecord>(this.row(svc)) } : {}),
          serviceMod: svc?.mod_revision ?? '0',
          revisions: (revs?.kvs ?? []).map((kv) => ({ record: this.parse<RevisionRecord>(this.row(kv)), mod: kv.mod_revision })),
        });
      });
    }
    return out;
  }

  /**
   * Runs `step` until its transaction goes through: step reads and returns the write (or only
   * `done` when there is nothing to write); on a lost race it runs again, at most casAttempts
   * times. Returns the last `done`.
   */
  private async casLoop<T>(what: string, step: () => Promise<{ part?: TxnPart; landed?: () => Promise<boolean>; done: T }>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const s = await step();
      if (!s.part) return s.done;
      if (await this.commitFenced(s.part, false)) return s.done;
      if (s.landed && (await s.landed())) return s.done;
      if (attempt >= this.limits.casAttempts) throw this.tooBusy(what);
      await this.backoff(attempt);
    }
  }

  /**
   * One transaction: `part`'s compares and, while a fence is set, the fence's. True when it went
   * through; false when one of part's compares failed (only when `mustSucceed` is false).
   * ORCA_NOT_LEADER when the fence did not hold.
   */
  private async commitFenced(part: TxnPart, mustSucceed = true): Promise<boolean> {
    if (part.ops.length === 0) return true;
    const fence = this.fence;
    const compare = [...part.compares];
    const failure: IRequestOp[] = [];
    if (fence) {
      compare.push({ key: Buffer.from(fence.key), target: CompareTarget.Value, result: CompareResult.Equal, value: Buffer.from(fence.value) });
      failure.push({ request_range: { key: Buffer.from(fence.key) } });
    }
    const res: ITxnResponse = await this.txn({ compare, success: part.ops, failure });
    if (res.succeeded) return true;
    if (fence) {
      const held = res.responses[0]?.response_range.kvs[0]?.value.toString('utf8');
      if (held !== fence.value) {
        throw new OrcaError('ORCA_NOT_LEADER', `this server does not lead the control plane (its leadership key ${fence.key} ${held === undefined ? 'is gone' : 'is held by another'}): nothing was written`, { transient: true });
      }
    }
    if (mustSucceed) throw new OrcaError('ORCA_INTERNAL', `store ${this.label}: an unconditional write was refused`);
    return false;
  }

  // ---- events --------------------------------------------------------------------------------

  /** Drops the oldest events down to eventsKept (one range delete). Call only under the write mutex. */
  private async trimEvents(): Promise<void> {
    const all = this.dirRange(PREFIX.event);
    const count = Number((await this.range({ ...all, count_only: true })).count);
    const excess = Math.min(count - this.eventsKept, MAX_TRIM_KEYS);
    if (excess <= 0) {
      this.eventEstimate = count;
      return;
    }
    const oldest = await this.range({ ...all, limit: excess, keys_only: true });
    const last = oldest.kvs.at(-1);
    if (last) await this.commitFenced({ compares: [], ops: [{ request_delete_range: { key: all.key, range_end: keyAfter(last.key) } }], bytes: 0 });
    this.eventEstimate = count - oldest.kvs.length;
  }

  // ---- internals -----------------------------------------------------------------------------

  private kv() {
    if (!this.etcd) throw new OrcaError('ORCA_STORE_UNAVAILABLE', `store ${this.label} is not open`);
    return this.etcd.kv;
  }

  private callOptions() {
    return { deadline: this.clock.now() + this.limits.callTimeoutMs };
  }

  private range(req: IRangeRequest): Promise<IRangeResponse> {
    return this.retrying(() => this.kv().range(req, this.callOptions()));
  }

  /**
   * A transaction, sent again while etcd cannot take it (see retrying). Safe for every write of
   * this store: each is either idempotent (the same keys and values again) or guarded by compares
   * whose failure the caller resolves by reading (a transaction that had gone through is found).
   */
  private txn(req: ITxnRequest): Promise<ITxnResponse> {
    return this.retrying(() => this.kv().txn(req, this.callOptions()));
  }

  /**
   * Calls fn again, with a growing pause (50 ms … 500 ms), while it fails with what a moment can
   * fix — no member reachable, a member without a leader (an election after one died), a
   * deadline, a circuit opened on a dead member — for at most opTimeoutMs from the first call.
   * etcd3 already tried the other members at once; this waits out an election.
   */
  private async retrying<T>(fn: () => Promise<T>): Promise<T> {
    const until = this.clock.now() + this.limits.opTimeoutMs;
    for (let pause = 50; ; pause = Math.min(500, pause * 2)) {
      try {
        return await fn();
      } catch (e) {
        const passing = e instanceof Error && !(e instanceof GRPCResourceExhastedError) && (isRecoverableError(e) || (e as { isBrokenCircuitError?: boolean }).isBrokenCircuitError === true || /no leader|leader changed|timed out/i.test(e.message));
        if (!passing || this.state === 'closed' || this.clock.now() + pause >= until) throw e;
        await sleep(this.clock, pause);
      }
    }
  }

  /** A range whose answer may be too large for one message: the page is halved until it fits. */
  private async rangePaged(req: IRangeRequest): Promise<IRangeResponse> {
    let limit = Number(req.limit ?? this.limits.pageSize);
    for (;;) {
      try {
        return await this.range({ ...req, limit });
      } catch (e) {
        if (!(e instanceof GRPCResourceExhastedError) || limit <= 1) throw e;
        limit = Math.floor(limit / 2);
      }
    }
  }

  /** The whole etcd key of a store key. */
  private k(key: string): Buffer {
    return Buffer.from(this.base + key, 'utf8');
  }

  /** The range of every store key starting with `start`. */
  private dirRange(start: string): { key: Buffer; range_end: Buffer } {
    const key = this.k(start);
    return { key, range_end: prefixEnd(key) };
  }

  private put(key: string, value: string): IRequestOp {
    return { request_put: { key: this.k(key), value: Buffer.from(value, 'utf8') } };
  }

  /** Compares a key's mod revision ('0': the key does not exist). */
  private modIs(key: string, mod: string): ICompare {
    return { key: this.k(key), target: CompareTarget.Mod, result: CompareResult.Equal, mod_revision: mod };
  }

  private async get<T>(key: string): Promise<{ value: T; raw: string; mod: string } | undefined> {
    const kv = (await this.range({ key: this.k(key) })).kvs[0];
    if (!kv) return undefined;
    const r = this.row(kv);
    return { value: this.parse<T>(r), raw: r.value, mod: r.mod };
  }

  /** Every row whose store key starts with `start`, in key order, a page at a time (at most maxListEntries). */
  private async scan(start: string): Promise<Row[]> {
    const range = this.dirRange(start);
    const out: Row[] = [];
    let from = range.key;
    for (;;) {
      const res = await this.rangePaged({ key: from, range_end: range.range_end, limit: this.limits.pageSize });
      for (const kv of res.kvs) out.push(this.row(kv));
      if (out.length > this.limits.maxListEntries) {
        throw new OrcaError('ORCA_INTERNAL', `store ${this.label}: more than ${this.limits.maxListEntries} entries under ${start}`);
      }
      const last = res.kvs.at(-1);
      if (!last || !res.more) return out;
      from = keyAfter(last.key);
    }
  }

  /** A key-value of a range answer: the store key (after `<prefix>/store/`), the value as text, the mod revision. */
  private row(kv: IKeyValue): Row {
    const key = kv.key.toString('utf8');
    return { key: key.startsWith(this.base) ? key.slice(this.base.length) : key, value: kv.value.toString('utf8'), mod: kv.mod_revision };
  }

  private parse<T>(r: Row): T {
    return parseRecord(this.label, r.key, r.value) as T;
  }

  private bounded(what: string, json: string): string {
    const bytes = Buffer.byteLength(json, 'utf8');
    if (bytes > this.limits.maxValueBytes) {
      throw new OrcaError('ORCA_INTERNAL', `${what}: the value is ${bytes} bytes, more than the etcd store takes (${this.limits.maxValueBytes})`);
    }
    return json;
  }

  private checkFormat(raw: string): void {
    const format = parseRecord(this.label, FORMAT_KEY, raw);
    if (format !== STORE_FORMAT) {
      throw new OrcaError(
        'ORCA_STORE_CORRUPT',
        `store ${this.label} has store format ${JSON.stringify(format)}, but this Orca reads format ${STORE_FORMAT}: ` +
          `run the Orca version that wrote it, or start with another --store-prefix`,
      );
    }
  }

  /** Writes the marker into an empty prefix (once, whoever comes first); refuses a prefix that holds other data. */
  private async createFormat(): Promise<void> {
    const any = await this.range({ ...this.dirRange(''), limit: 1, keys_only: true });
    const first = any.kvs[0];
    if (first) {
      throw storeCorrupt(this.label, `it holds data (first key ${JSON.stringify(first.key.toString('utf8').slice(0, 200))}) but no store-format marker, so it is not an Orca store or it is damaged`);
    }
    const key = this.k(FORMAT_KEY);
    const res = await this.txn({
      compare: [{ key, target: CompareTarget.Version, result: CompareResult.Equal, version: 0 }],
      success: [{ request_put: { key, value: Buffer.from(JSON.stringify(STORE_FORMAT)) } }],
      failure: [{ request_range: { key } }],
    });
    if (!res.succeeded) this.checkFormat(res.responses[0]?.response_range.kvs[0]?.value.toString('utf8') ?? 'null');
  }

  private unreachable(detail: string): string {
    return `cannot open the store on etcd at ${this.endpoints.join(', ')} (prefix ${this.prefix}): ${detail}; is etcd running and reachable there? check --store (and --etcd-ca, --etcd-cert, --etcd-key for a TLS etcd)`;
  }

  private ensureOpen(): void {
    if (this.state !== 'open') {
      throw new OrcaError('ORCA_STORE_UNAVAILABLE', `store ${this.label} is not open (state: ${this.state})`);
    }
  }

  private async read<T>(what: string, fn: () => Promise<T>): Promise<T> {
    this.ensureOpen();
    try {
      return await withDeadline(this.clock, this.limits.opTimeoutMs, () => `${what} on ${this.label}`, fn);
    } catch (e) {
      throw etcdFailure(`${what} on ${this.label}`, e);
    }
  }

  private write<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return this.writes.run(async () => {
      // Writes queued before close() began still run: close() waits for them.
      if (this.state !== 'open' && this.state !== 'closing') this.ensureOpen();
      try {
        return await withDeadline(this.clock, this.limits.opTimeoutMs, () => `${what} on ${this.label}`, fn);
      } catch (e) {
        throw etcdFailure(`${what} on ${this.label}`, e);
      }
    });
  }

  private backoff(attempt: number): Promise<void> {
    return sleep(this.clock, Math.min(200, 5 * attempt) * (0.5 + this.rng.next()));
  }

  private tooBusy(what: string): OrcaError {
    return new OrcaError('ORCA_CONFLICT', `${what}: other servers kept changing it (${this.limits.casAttempts} attempts); try again`, { transient: true });
  }
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
