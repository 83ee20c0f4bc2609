/**
 * Ready-made stores. Constructors do no I/O; call open() (or use openLevelStore).
 */

import { createRequire } from 'node:module';
import { Level } from 'level';
import type { MemoryLevel as MemoryLevelClass } from 'memory-level';
import { LevelStore } from './level-store.js';

export interface StoreCaps {
  /** Default DEFAULTS.revisionsKept (20). */
  revisionsKept?: number;
  /** Default DEFAULTS.eventsKept. */
  eventsKept?: number;
}

/**
 * A store in LevelDB at `path` (for example `<data-dir>/cluster.db`). The directory is created
 * on open if missing; existing data is never replaced (see LevelStore.open). No I/O here.
 */
export function levelStore(path: string, caps: StoreCaps = {}): LevelStore {
  const createDb = () => new Level<string, string>(path, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
  return new LevelStore({ ...caps, createDb, location: path });
}

/** levelStore(path) then open(); throws what open() throws. */
export async function openLevelStore(path: string, caps: StoreCaps = {}): Promise<LevelStore> {
  const store = levelStore(path, caps);
  await store.open();
  return store;
}

/**
 * An in-memory store for tests. Data lives as long as the object: close() then open() finds it
 * again, as with a directory on disk.
 */
export function memoryStore(caps: StoreCaps = {}): LevelStore {
  // Loaded here, not at the top: the server and agent import this module for openLevelStore,
  // and memory-level (~0.7 MB of heap) would otherwise stay loaded in them for nothing.
  const { MemoryLevel } = createRequire(import.meta.url)('memory-level') as { MemoryLevel: typeof MemoryLevelClass };
  const createDb = () =>
    new MemoryLevel<string, string>({ keyEncoding: 'utf8', valueEncoding: 'utf8', storeEncoding: 'utf8' });
  return new LevelStore({ ...caps, createDb });
}
