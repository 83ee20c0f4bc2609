import type { ServiceSpec } from '../manifest/types.js';

/** How a revision came to be: a manifest, a rollback, or a new value of a secret the spec uses. */
export type RevisionSource = 'apply' | 'rollback' | 'secret';

/**
 * Secret name → version, for every secret a spec uses (`secrets` and `secret_env`). Part of what
 * an instance is (its instance hash), so a new value makes a new revision and a rollout.
 */
export type SecretVersions = Record<string, number>;

/** How a revision's rollout ended (or that it has not yet). */
export type RevisionOutcome = 'pending' | 'rolled-out' | 'rollout-failed' | 'superseded';

export interface RevisionRecord {
  service: string;
  /** 1, 2, 3 … per service; never reused, even across delete and re-create. */
  revision: number;
  spec: ServiceSpec;
  specHash: string;
  source: RevisionSource;
  /** With source 'rollback': the revision it was copied from. */
  rollbackOf?: number;
  /** Why the revision was made, when the source alone does not say (`secret db-password changed (version 2)`). */
  reason?: string;
  /** The versions of the secrets the spec uses; absent when it uses none. */
  secretVersions?: SecretVersions;
  /** ISO-8601. */
  createdAt: string;
  outcome: RevisionOutcome;
  outcomeReason?: string;
}

export interface ServiceRecord {
  name: string;
  /** The current (desired) revision. */
  revision: number;
  spec: ServiceSpec;
  specHash: string;
  /** The versions of the secrets the spec uses; absent when it uses none. */
  secretVersions?: SecretVersions;
  createdAt: string;
  updatedAt: string;
  /** Set when the service was deleted; its history is kept. */
  deletedAt?: string;
}

/** One line of the reconciliation log (SPEC §4 `orca events -o json`). */
export interface EventRecord {
  /** ISO-8601 with milliseconds. */
  time: string;
  reconciler: string;
  service: string | null;
  instance: string | null;
  node: string | null;
  action: string;
  reason: string;
  outcome: string;
  durationMs: number;
  /** Free-form detail for humans (for example an OOM hint). */
  message?: string;
}

export interface NewRevision {
  spec: ServiceSpec;
  specHash: string;
  source: RevisionSource;
  rollbackOf?: number;
  reason?: string;
  /** Left out when empty. */
  secretVersions?: SecretVersions;
  /** ISO-8601. */
  at: string;
}

export interface EventQuery {
  /** Only events at or after this time (ms since epoch). */
  sinceMs?: number;
  service?: string;
  /** At most this many, the newest ones (returned oldest first). */
  limit?: number;
}

/**
 * Desired state and history. Every write is durable once its promise resolves
 * (an acknowledged write survives kill -9 of the process).
 */
export interface Store {
  /**
   * Opens the store; throws OrcaError ORCA_STORE_LOCKED / ORCA_STORE_CORRUPT with a message that says what to do
   * (ORCA_STORE_UNAVAILABLE if a new store cannot be created). Never starts empty over existing data.
   * Idempotent while open. Every other method rejects with ORCA_STORE_UNAVAILABLE unless the store is open.
   */
  open(): Promise<void>;
  /** Waits for writes already started, then closes. Idempotent; open() may be called again. */
  close(): Promise<void>;

  /** The record, including a deleted service's (check `deletedAt`); undefined if never created. */
  getService(name: string): Promise<ServiceRecord | undefined>;
  /** Live services sorted by name; deleted ones only with includeDeleted. */
  listServices(opts?: { includeDeleted?: boolean }): Promise<ServiceRecord[]>;
  /**
   * Writes a new revision for each spec and makes it current, all in one atomic batch.
   * Earlier revisions beyond the last `revisionsKept` (20) are pruned. A deleted service
   * comes back to life with the next revision number. Returns the new records in input order.
   * Each new revision has outcome 'pending'; earlier 'pending' revisions of that service become
   * 'superseded'. An empty list writes nothing. Rejects with ORCA_CONFLICT, writing nothing, when
   * two entries name the same service. Concurrent calls are serialised (numbers never collide).
   */
  commitRevisions(revisions: NewRevision[]): Promise<ServiceRecord[]>;
  /** Marks a service deleted (keeps history). Returns false (and writes nothing) if there was no live service. */
  markDeleted(name: string, at: string): Promise<boolean>;

  /** Revisions of a service, oldest first. */
  listRevisions(name: string): Promise<RevisionRecord[]>;
  getRevision(name: string, revision: number): Promise<RevisionRecord | undefined>;
  /** Idempotent; without `reason` an earlier reason is removed. Rejects with ORCA_NOT_FOUND for an unknown (or pruned) revision. */
  setRevisionOutcome(name: string, revision: number, outcome: RevisionOutcome, reason?: string): Promise<void>;

  /**
   * Appends to the reconciliation log, a capped ring (oldest dropped past `eventsKept`); each
   * record is capped in size as it is stored (store/event-cap.ts: 2 KiB per text field, 8 KiB per record). Events are
   * ordered by `time`, then by append order. Rejects with ORCA_INTERNAL, writing nothing, when a
   * `time` is not an ISO-8601 time.
   */
  appendEvents(events: EventRecord[]): Promise<void>;
  /** Matching events among the newest `eventsKept`, oldest first (see EventQuery). */
  listEvents(query?: EventQuery): Promise<EventRecord[]>;

  /** Small JSON values under a namespace (agent assignments, slot state, cluster metadata). */
  getKv<T>(key: string): Promise<T | undefined>;
  /** Stores the value as JSON (it comes back as JSON.parse gives it). Rejects with ORCA_INTERNAL for undefined and other non-JSON values. */
  putKv(key: string, value: unknown): Promise<void>;
  /**
   * Stores the value only if the key holds none: true if it did, false (writing nothing) if the
   * key already held a value. Atomic: of several servers racing on one shared store, one wins.
   * Rejects as putKv does for a value that is not JSON.
   */
  createKv(key: string, value: unknown): Promise<boolean>;
  /** Idempotent. */
  delKv(key: string): Promise<void>;
  /** Entries whose key starts with prefix, sorted by key. */
  listKv<T>(prefix: string): Promise<Array<{ key: string; value: T }>>;
}
