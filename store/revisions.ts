/**
 * Pure planning of one service's part of a commitRevisions batch: no I/O, so the numbering,
 * supersede and prune rules are testable on their own.
 */

import { OrcaError } from '../core/errors.js';
import { counterKey, MAX_REVISION, revisionKey, serviceKey } from './keys.js';
import type { NewRevision, RevisionRecord, ServiceRecord } from './types.js';

export type BatchOp = { type: 'put'; key: string; value: string } | { type: 'del'; key: string };

/** What the store holds for one service before the commit. */
export interface ServiceState {
  service?: ServiceRecord;
  /** Highest revision ever issued for this name (0 if none); survives delete and pruning. */
  lastRevision: number;
  /** Kept revisions, oldest first. */
  revisions: RevisionRecord[];
}

export interface RevisionPlan {
  service: ServiceRecord;
  revision: RevisionRecord;
  ops: BatchOp[];
}

/**
 * Plans the writes for one new revision:
 * - its number is lastRevision + 1 (never reused);
 * - it becomes the service's current revision, with outcome 'pending';
 * - earlier revisions still 'pending' become 'superseded' (reason: "superseded by revision N");
 * - revisions beyond the newest `revisionsKept` are deleted;
 * - a deleted service comes back to life (deletedAt cleared, createdAt = nr.at).
 */
export function planRevision(state: ServiceState, nr: NewRevision, revisionsKept: number): RevisionPlan {
  const name = nr.spec.name;
  const number = state.lastRevision + 1;
  if (number > MAX_REVISION) throw new OrcaError('ORCA_INTERNAL', `service ${name}: revision numbers exhausted`);

  const revision: RevisionRecord = {
    service: name,
    revision: number,
    spec: nr.spec,
    specHash: nr.specHash,
    source: nr.source,
    ...(nr.rollbackOf === undefined ? {} : { rollbackOf: nr.rollbackOf }),
    ...(nr.reason === undefined ? {} : { reason: nr.reason }),
    ...secretVersionsOf(nr),
    createdAt: nr.at,
    outcome: 'pending',
  };

  const live = state.service !== undefined && state.service.deletedAt === undefined ? state.service : undefined;
  const service: ServiceRecord = {
    name,
    revision: number,
    spec: nr.spec,
    specHash: nr.specHash,
    ...secretVersionsOf(nr),
    createdAt: live?.createdAt ?? nr.at,
    updatedAt: nr.at,
  };

  const ops: BatchOp[] = [
    { type: 'put', key: serviceKey(name), value: JSON.stringify(service) },
    { type: 'put', key: counterKey(name), value: JSON.stringify({ last: number }) },
    { type: 'put', key: revisionKey(name, number), value: JSON.stringify(revision) },
  ];

  const keepOld = Math.max(0, revisionsKept - 1);
  const old = state.revisions;
  const pruned = old.slice(0, Math.max(0, old.length - keepOld));
  const kept = old.slice(pruned.length);
  for (const r of pruned) ops.push({ type: 'del', key: revisionKey(name, r.revision) });
  for (const r of kept) {
    if (r.outcome !== 'pending') continue;
    const superseded: RevisionRecord = { ...r, outcome: 'superseded', outcomeReason: `superseded by revision ${number}` };
    ops.push({ type: 'put', key: revisionKey(name, r.revision), value: JSON.stringify(superseded) });
  }

  // Hand back what a later read returns (JSON drops undefined fields and shares nothing with the caller).
  return {
    service: JSON.parse(JSON.stringify(service)) as ServiceRecord,
    revision: JSON.parse(JSON.stringify(revision)) as RevisionRecord,
    ops,
  };
}

/** `{ secretVersions }` when the revision uses a secret, else nothing (records without secrets keep their old shape). */
function secretVersionsOf(nr: NewRevision): { secretVersions?: NewRevision['secretVersions'] } {
  return nr.secretVersions && Object.keys(nr.secretVersions).length > 0 ? { secretVersions: { ...nr.secretVersions } } : {};
}
