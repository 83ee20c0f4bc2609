/**
 * Verification of a freshly opened database: the store-format marker, then every record once.
 * A store that fails here is reported as corrupt and never written to (SPEC §3.6).
 */

import { OrcaError } from '../core/errors.js';
import type { StoreDb } from './db.js';
import { FORMAT_KEY, parseEventKey, parseRevisionKey, PREFIX, STORE_FORMAT } from './keys.js';
import { storeCorrupt } from './open-errors.js';

export interface VerifiedContents {
  /** Number of event records. */
  eventCount: number;
  /** Highest event sequence number in use, -1 if none. */
  maxEventSeq: number;
}

/**
 * Checks the store-format marker, then parses every record. Throws ORCA_STORE_CORRUPT naming
 * `path` and the first bad record.
 *
 * The marker is written only when `isNew` (the directory did not exist or was empty before this
 * open) and the database holds no key at all. A directory that held files but yields no marker is
 * corrupt even if it looks empty: LevelDB drops unreadable log records silently, and starting
 * empty over them is what SPEC §3.6 forbids.
 *
 * Cost: one pass over the store (services × 20 revisions + up to ~1.1 × eventsKept events).
 */
export async function verifyContents(db: StoreDb, path: string, isNew: boolean): Promise<VerifiedContents> {
  const marker = await db.get(FORMAT_KEY);
  if (marker === undefined) {
    for await (const key of db.keys({ limit: 1 })) {
      throw storeCorrupt(path, `it holds data (first key ${JSON.stringify(key)}) but no store-format marker, so it is not an Orca store or it is damaged`);
    }
    if (!isNew) throw storeCorrupt(path, 'the directory holds files but no readable Orca data (no store-format marker)');
    await db.batch([{ type: 'put', key: FORMAT_KEY, value: JSON.stringify(STORE_FORMAT) }], { sync: true });
    return { eventCount: 0, maxEventSeq: -1 };
  }
  const format = parseRecord(path, FORMAT_KEY, marker);
  if (format !== STORE_FORMAT) {
    throw new OrcaError(
      'ORCA_STORE_CORRUPT',
      `store ${path} has store format ${JSON.stringify(format)}, but this Orca reads format ${STORE_FORMAT}: ` +
        `run the Orca version that wrote it, or move the directory aside to start a new store`,
    );
  }

  let eventCount = 0;
  let maxEventSeq = -1;
  for await (const [key, value] of db.iterator({})) {
    const record = parseRecord(path, key, value);
    if (key.startsWith(PREFIX.event)) {
      const parsed = parseEventKey(key);
      if (!parsed || !isObject(record)) throw badRecord(path, key);
      eventCount++;
      maxEventSeq = Math.max(maxEventSeq, parsed.seq);
    } else if (key.startsWith(PREFIX.revision)) {
      if (!parseRevisionKey(key) || !isObject(record) || typeof record.revision !== 'number') throw badRecord(path, key);
    } else if (key.startsWith(PREFIX.service)) {
      if (!isObject(record) || typeof record.name !== 'string' || typeof record.revision !== 'number') throw badRecord(path, key);
    } else if (key.startsWith(PREFIX.counter)) {
      if (!isObject(record) || typeof record.last !== 'number') throw badRecord(path, key);
    } else if (!key.startsWith(PREFIX.kv) && key !== FORMAT_KEY) {
      throw storeCorrupt(path, `unexpected key ${JSON.stringify(key)}`);
    }
  }
  return { eventCount, maxEventSeq };
}

/** JSON.parse, or ORCA_STORE_CORRUPT naming the record. */
export function parseRecord(path: string, key: string, value: string): unknown {
  try {
    return JSON.parse(value) as unknown;
  } catch (e) {
    throw storeCorrupt(path, `record ${JSON.stringify(key)} is not valid JSON`, e);
  }
}

function badRecord(path: string, key: string): OrcaError {
  return storeCorrupt(path, `record ${JSON.stringify(key)} does not have the expected shape`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
