import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryLevel } from 'memory-level';
import { afterEach, describe, expect, it } from 'vitest';
import { isOrcaError } from '../core/errors.js';
import { storeContract } from '../test/contract/store.contract.js';
import { levelStore, memoryStore } from './factories.js';
import { PREFIX } from './keys.js';
import { LevelStore } from './level-store.js';
import { Mutex } from './mutex.js';
import type { EventRecord, Store } from './types.js';

storeContract('memory-level', async (caps) => {
  let store: Store = memoryStore(caps);
  await store.open();
  return {
    get store() {
      return store;
    },
    cleanup: () => store.close(),
    async reopen() {
      await store.close();
      await store.open();
      return store;
    },
  };
});

storeContract('level (on disk)', async (caps) => {
  const dir = await mkdtemp(join(tmpdir(), 'orca-store-'));
  const path = join(dir, 'cluster.db');
  let store: Store = levelStore(path, caps);
  await store.open();
  return {
    get store() {
      return store;
    },
    async cleanup() {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
    async reopen() {
      await store.close();
      store = levelStore(path, caps);
      await store.open();
      return store;
    },
  };
});

function event(ms: number, action: string): EventRecord {
  return {
    time: new Date(ms).toISOString(),
    reconciler: 'container',
    service: 'web',
    instance: null,
    node: null,
    action,
    reason: 'r',
    outcome: 'ok',
    durationMs: 1,
  };
}

async function expectOrcaError(p: Promise<unknown>, code: Parameters<typeof isOrcaError>[1]): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isOrcaError(err, code), `expected ${code}, got ${String(err)}`).toBe(true);
}

describe('LevelStore', () => {
  const open: LevelStore[] = [];
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });

  async function memory(db = new MemoryLevel<string, string>(), eventsKept = 100): Promise<LevelStore> {
    const s = new LevelStore({ createDb: () => db, eventsKept });
    await s.open();
    open.push(s);
    return s;
  }

  it('trims the event ring in amortised steps, never above cap + 10 %', async () => {
    const db = new MemoryLevel<string, string>();
    const store = await memory(db, 100);
    let maxStored = 0;
    for (let i = 0; i < 500; i++) {
      await store.appendEvents([event(1_000 + i, `a${i}`)]);
      let stored = 0;
      for await (const _ of db.keys({ gte: PREFIX.event, lt: 'evt"' })) stored++;
      maxStored = Math.max(maxStored, stored);
    }
    expect(maxStored).toBeLessThanOrEqual(110);
    const listed = await store.listEvents();
    expect(listed).toHaveLength(100);
    expect(listed[0]?.action).toBe('a400');
  });

  it('rejects an event with an unusable time and writes none of its batch', async () => {
    const store = await memory();
    await expectOrcaError(store.appendEvents([event(5, 'ok'), { ...event(6, 'bad'), time: 'yesterday' }]), 'ORCA_INTERNAL');
    expect(await store.listEvents()).toEqual([]);
  });

  it('rejects values JSON cannot hold', async () => {
    const store = await memory();
    await expectOrcaError(store.putKv('k', undefined), 'ORCA_INTERNAL');
    await expectOrcaError(store.putKv('k', 1n), 'ORCA_INTERNAL');
    expect(await store.getKv('k')).toBeUndefined();
  });

  it('rejects service names that would break the key layout', async () => {
    const store = await memory();
    const spec = { name: 'a!b' } as unknown as Parameters<Store['commitRevisions']>[0][number]['spec'];
    await expectOrcaError(store.commitRevisions([{ spec, specHash: 'h', source: 'apply', at: '2026-01-01T00:00:00.000Z' }]), 'ORCA_INTERNAL');
  });

  it('is unavailable before open and after close; open after close works', async () => {
    const store = memoryStore();
    await expectOrcaError(store.getService('web'), 'ORCA_STORE_UNAVAILABLE');
    await store.open();
    await store.putKv('k', 1);
    await store.close();
    await expectOrcaError(store.getKv('k'), 'ORCA_STORE_UNAVAILABLE');
    await expectOrcaError(store.putKv('k', 2), 'ORCA_STORE_UNAVAILABLE');
    await store.open();
    expect(await store.getKv('k')).toBe(1);
    await store.close();
  });

  it('close waits for queued writes', async () => {
    const store = memoryStore();
    await store.open();
    const writes = Array.from({ length: 20 }, (_, i) => store.putKv(`k${i}`, i));
    await store.close();
    await Promise.all(writes);
    await store.open();
    expect(await store.listKv('k')).toHaveLength(20);
    await store.close();
  });

  it('constructors do no I/O', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'orca-store-'));
    try {
      levelStore(join(dir, 'cluster.db'));
      expect(await readdir(dir)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects caps below 1', () => {
    expect(() => memoryStore({ eventsKept: 0 })).toThrow(/eventsKept/);
    expect(() => memoryStore({ revisionsKept: 0.5 })).toThrow(/revisionsKept/);
  });
});

describe('Mutex', () => {
  it('runs in call order, one at a time, and a failure does not block the queue', async () => {
    const m = new Mutex();
    const log: string[] = [];
    let running = 0;
    const job = (name: string, fail = false) =>
      m.run(async () => {
        running++;
        expect(running).toBe(1);
        await new Promise((r) => setImmediate(r));
        log.push(name);
        running--;
        if (fail) throw new Error(name);
        return name;
      });
    const results = await Promise.allSettled([job('a'), job('b', true), job('c')]);
    expect(log).toEqual(['a', 'b', 'c']);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    await m.idle();
  });
});
