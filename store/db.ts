/**
 * The slice of abstract-level that the store uses, with string keys and string (JSON) values.
 * Both `level` (ClassicLevel, on disk) and `memory-level` satisfy it.
 */

import type { BatchOp } from './revisions.js';

export interface RangeOptions {
  gt?: string;
  gte?: string;
  lt?: string;
  lte?: string;
  reverse?: boolean;
  /** -1 or absent: no limit. */
  limit?: number;
}

export interface StoreDb {
  open(options?: { createIfMissing?: boolean }): Promise<void>;
  close(): Promise<void>;
  get(key: string): Promise<string | undefined>;
  /** Atomic: every op or none. `sync: true` fsyncs before resolving (ignored by memory-level). */
  batch(ops: BatchOp[], options: { sync?: boolean }): Promise<void>;
  iterator(options: RangeOptions): AsyncIterable<[string, string]>;
  keys(options: RangeOptions): AsyncIterable<string>;
}
