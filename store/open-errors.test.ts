import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isOrcaError, type ErrorCode } from '../core/errors.js';
import type { ServiceSpec } from '../manifest/types.js';
import { levelStore } from './factories.js';
import type { LevelStore } from './level-store.js';

let root: string;
let path: string;
const opened: LevelStore[] = [];

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'orca-store-open-'));
  path = join(root, 'cluster.db');
});

afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
  await rm(root, { recursive: true, force: true });
});

function spec(name: string): ServiceSpec {
  return {
    name,
    image: `${name}:1`,
    env: {},
    replicas: 1,
    stopGraceSecs: 10,
    init: true,
    labels: {},
    resources: {},
    restart: { policy: 'always', backoffInitialSecs: 1, backoffMaxSecs: 60, resetAfterSecs: 60 },
    deploy: { strategy: 'start-first', readyTimeoutSecs: 60 },
  };
}

/** A real store at `path` with a few services, closed. With `compact`, reopened once so LevelDB moves the log into a table (.ldb). */
async function seed(compact = false): Promise<void> {
  const store = levelStore(path);
  await store.open();
  for (let i = 0; i < 50; i++) {
    await store.commitRevisions([{ spec: spec(`svc-${i}`), specHash: `h${i}`, source: 'apply', at: '2026-11-27T20:00:00.000Z' }]);
  }
  await store.close();
  if (compact) {
    const again = levelStore(path);
    await again.open();
    await again.close();
  }
}

/** Writes raw records with plain `level`, bypassing LevelStore. */
async function raw(entries: Record<string, string>): Promise<void> {
  const db = new Level<string, string>(path);
  await db.open();
  await db.batch(Object.entries(entries).map(([key, value]) => ({ type: 'put' as const, key, value })));
  await db.close();
}

async function openError(p = path): Promise<unknown> {
  const store = levelStore(p);
  try {
    await store.open();
    opened.push(store);
  } catch (e) {
    return e;
  }
  return undefined;
}

function expectCode(err: unknown, code: ErrorCode): asserts err is Error {
  expect(isOrcaError(err, code), `expected ${code}, got ${String(err)}`).toBe(true);
}

async function snapshot(dir: string, only?: (file: string) => boolean): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of (await readdir(dir)).sort()) {
    if (only && !only(f)) continue;
    // LevelDB appends to its info log and leaves an empty LOCK file even when it refuses to open.
    if (f === 'LOG' || f === 'LOG.old' || f === 'LOCK') continue;
    out[f] = (await readFile(join(dir, f))).toString('base64');
  }
  return out;
}

/** Every record, read with plain `level` (which also proves the lock was released). */
async function dump(): Promise<Array<[string, string]>> {
  const db = new Level<string, string>(path, { createIfMissing: false });
  await db.open({ createIfMissing: false });
  try {
    return await db.iterator().all();
  } finally {
    await db.close();
  }
}

async function garble(file: string): Promise<void> {
  const size = (await stat(file)).size;
  await writeFile(file, Buffer.alloc(Math.max(size, 64), 0x5a));
}

describe('opening a store', () => {
  it('creates a missing directory, parents included', async () => {
    const nested = join(root, 'a', 'b', 'cluster.db');
    expect(await openError(nested)).toBeUndefined();
    expect((await stat(nested)).isDirectory()).toBe(true);
  });

  it('creates a store in an existing empty directory', async () => {
    await mkdir(path);
    expect(await openError()).toBeUndefined();
  });

  it('is ORCA_STORE_LOCKED while another store holds it, and opens once that one closes', async () => {
    const first = levelStore(path);
    await first.open();
    const err = await openError();
    expectCode(err, 'ORCA_STORE_LOCKED');
    expect(err.message).toContain(path);
    expect(err.message).toContain('--data-dir');
    await first.close();
    expect(await openError()).toBeUndefined();
  });

  it('is ORCA_STORE_UNAVAILABLE when the directory cannot be created', async () => {
    await writeFile(join(root, 'file'), 'x');
    const err = await openError(join(root, 'file', 'cluster.db'));
    expectCode(err, 'ORCA_STORE_UNAVAILABLE');
  });
});

describe('refusing to start over unreadable data (ORCA_STORE_CORRUPT)', () => {
  /**
   * Opening fails with ORCA_STORE_CORRUPT naming the path, the reason and what to do; nothing is
   * created or rewritten over the old data; the lock is released. `level` 'files': LevelDB itself
   * refuses, so every file stays byte for byte. 'records': LevelDB opens (and may move its log into
   * a table, as any open does) but the records fail verification, so the records stay as they were.
   * 'tables': LevelDB opens but a table is unreadable; the tables stay byte for byte.
   */
  async function expectCorrupt(reason: RegExp, level: 'files' | 'records' | 'tables'): Promise<void> {
    const read = () =>
      level === 'files' ? snapshot(path) : level === 'tables' ? snapshot(path, (f) => f.endsWith('.ldb')) : dump();
    const before = await read();
    const err = await openError();
    expectCode(err, 'ORCA_STORE_CORRUPT');
    expect(err.message).toContain(path);
    expect(err.message).toMatch(reason);
    expect(err.message).toMatch(/move the directory aside/i);
    expect(await read()).toEqual(before);
  }

  it('a directory of files that are not a LevelDB', async () => {
    await mkdir(path);
    await writeFile(join(path, 'notes.txt'), 'hello');
    await expectCorrupt(/does not exist|create_if_missing/, 'files');
  });

  it('a path that is a regular file', async () => {
    await writeFile(path, 'x');
    const err = await openError();
    expectCode(err, 'ORCA_STORE_CORRUPT');
    expect(err.message).toMatch(/not a directory/);
  });

  it('garbage over CURRENT', async () => {
    await seed();
    await garble(join(path, 'CURRENT'));
    await expectCorrupt(/.+/, 'files');
  });

  it('garbage over the MANIFEST', async () => {
    await seed();
    const manifest = (await readdir(path)).find((f) => f.startsWith('MANIFEST-'));
    expect(manifest).toBeDefined();
    await garble(join(path, manifest ?? ''));
    await expectCorrupt(/.+/, 'files');
  });

  it('garbage over a table file (.ldb)', async () => {
    await seed(true);
    const tables = (await readdir(path)).filter((f) => f.endsWith('.ldb'));
    expect(tables.length).toBeGreaterThan(0);
    for (const t of tables) await garble(join(path, t));
    await expectCorrupt(/corruption|sstable|magic/i, 'tables');
  });

  it('garbage over the write-ahead log when all data lives there', async () => {
    await seed();
    const logs = (await readdir(path)).filter((f) => f.endsWith('.log'));
    expect(logs.length).toBeGreaterThan(0);
    for (const l of logs) await garble(join(path, l));
    // LevelDB drops unreadable log records silently; the missing format marker gives it away.
    await expectCorrupt(/marker|corrupt/i, 'records');
  });

  it('data without the store-format marker', async () => {
    await raw({ 'svc!web': '{}' });
    await expectCorrupt(/marker/, 'records');
  });

  it('a store format this version does not read', async () => {
    await raw({ 'meta!format': '2' });
    const err = await openError();
    expectCode(err, 'ORCA_STORE_CORRUPT');
    expect(err.message).toMatch(/format 2/);
  });

  it('a record that is not JSON', async () => {
    await seed();
    await raw({ 'svc!web': '{"name": "web", revis' });
    await expectCorrupt(/svc!web.*not valid JSON/, 'records');
  });

  it('a record of the wrong shape', async () => {
    await seed();
    await raw({ 'ctr!web': '"seven"' });
    await expectCorrupt(/ctr!web/, 'records');
  });

  it('a key outside the layout', async () => {
    await seed();
    await raw({ 'zzz!x': '1' });
    await expectCorrupt(/unexpected key/, 'records');
  });
});
