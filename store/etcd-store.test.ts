/**
 * The store on a real etcd member (started here, on loopback ports): the whole Store contract,
 * then what only etcd has — the fence, two stores writing one prefix at once, the prefix layout,
 * bounds, and an unreachable etcd. In the vitest e2e project (it runs a real process).
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isOrcaError, type ErrorCode } from '../core/errors.js';
import type { ServiceSpec } from '../manifest/types.js';
import { storeContract } from '../test/contract/store.contract.js';
import { freePort, startEtcd, type EtcdProcess } from '../test/etcd.js';
import { EtcdStore, type EtcdStoreOptions } from './etcd-store.js';
import type { NewRevision } from './types.js';

let etcd: EtcdProcess;
let admin: Etcd3;
beforeAll(async () => {
  etcd = await startEtcd();
  admin = new Etcd3({ hosts: etcd.endpoints });
}, 60_000);
afterAll(async () => {
  admin?.close();
  await etcd?.stop();
});

const uniquePrefix = () => `/orca-test/${randomBytes(5).toString('hex')}`;

storeContract('etcd', async (caps) => {
  const prefix = uniquePrefix();
  const make = () => new EtcdStore({ endpoints: etcd.endpoints, prefix, ...caps });
  let store = make();
  await store.open();
  return {
    get store() {
      return store;
    },
    async cleanup() {
      await store.close();
      await admin.delete().prefix(prefix + '/').exec();
    },
    async reopen() {
      await store.close();
      store = make();
      await store.open();
      return store;
    },
  };
});

function spec(name: string, image = `${name}:1`): ServiceSpec {
  return {
    name,
    image,
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
const rev = (name: string, image: string, extra: Partial<NewRevision> = {}): NewRevision => ({ spec: spec(name, image), specHash: `h-${image}`, source: 'apply', at: '2026-11-27T20:00:00.000Z', ...extra });

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (e: unknown) => e,
  );
}
async function expectCode(p: Promise<unknown>, code: ErrorCode): Promise<unknown> {
  const err = await rejection(p);
  expect(isOrcaError(err, code), `expected ${code}, got ${String(err)}`).toBe(true);
  return err;
}

describe('EtcdStore on a real etcd', () => {
  const stores: EtcdStore[] = [];
  const prefixes: string[] = [];
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    for (const p of prefixes.splice(0)) await admin.delete().prefix(p + '/').exec();
  });
  async function open(o: Partial<EtcdStoreOptions> = {}): Promise<EtcdStore> {
    const prefix = o.prefix ?? uniquePrefix();
    if (!prefixes.includes(prefix)) prefixes.push(prefix);
    const s = new EtcdStore({ endpoints: etcd.endpoints, prefix, ...o });
    await s.open();
    stores.push(s);
    return s;
  }

  describe('fence', () => {
    it('a write whose fence key holds another value is refused with ORCA_NOT_LEADER and changes nothing', async () => {
      const store = await open();
      await store.commitRevisions([rev('web', 'web:1')]);
      await store.putKv('k', 1);
      const fenceKey = `${store.prefix}/election/me`;
      await admin.put(fenceKey).value('lease-2');
      store.setFence({ key: fenceKey, value: 'lease-1' });

      const writes: Array<[string, Promise<unknown>]> = [
        ['commitRevisions', store.commitRevisions([rev('web', 'web:2'), rev('api', 'api:1')])],
        ['markDeleted', store.markDeleted('web', '2026-11-27T21:00:00.000Z')],
        ['setRevisionOutcome', store.setRevisionOutcome('web', 1, 'rolled-out')],
        ['putKv', store.putKv('k', 2)],
        ['delKv', store.delKv('k')],
        ['createKv', store.createKv('new', 1)],
        ['appendEvents', store.appendEvents([{ time: '2026-11-27T20:00:00.000Z', reconciler: 'r', service: 'web', instance: null, node: null, action: 'a', reason: 'x', outcome: 'ok', durationMs: 1 }])],
      ];
      for (const [what, p] of writes) {
        const err = await rejection(p);
        expect(isOrcaError(err, 'ORCA_NOT_LEADER'), `${what}: ${String(err)}`).toBe(true);
        expect((err as { transient: boolean }).transient).toBe(true);
      }
      // Nothing changed.
      expect(await store.getService('web')).toMatchObject({ revision: 1, spec: { image: 'web:1' } });
      expect(await store.getService('web')).not.toHaveProperty('deletedAt');
      expect(await store.getService('api')).toBeUndefined();
      expect((await store.listRevisions('web')).map((r) => [r.revision, r.outcome])).toEqual([[1, 'pending']]);
      expect(await store.getKv('k')).toBe(1);
      expect(await store.getKv('new')).toBeUndefined();
      expect(await store.listEvents()).toEqual([]);
    });

    it('a missing fence key refuses too; the matching value lets writes through; null lifts the fence', async () => {
      const store = await open();
      const fenceKey = `${store.prefix}/election/me`;
      store.setFence({ key: fenceKey, value: 'lease-1' });
      await expectCode(store.putKv('k', 1), 'ORCA_NOT_LEADER');
      expect(await store.getKv('k')).toBeUndefined();

      await admin.put(fenceKey).value('lease-1');
      await store.putKv('k', 1);
      const [web] = await store.commitRevisions([rev('web', 'web:1')]);
      expect(web?.revision).toBe(1);
      expect(await store.getKv('k')).toBe(1);

      await admin.delete().key(fenceKey);
      await expectCode(store.putKv('k', 2), 'ORCA_NOT_LEADER');
      store.setFence(null);
      await store.putKv('k', 3);
      expect(await store.getKv('k')).toBe(3);
    });
  });

  describe('two stores on one prefix (two servers)', () => {
    it('concurrent commits from two stores never share a revision number', async () => {
      const a = await open();
      const b = await open({ prefix: a.prefix });
      const commits = Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? a : b).commitRevisions([rev('web', `web:${i}`)]));
      const numbers = (await Promise.all(commits)).map((r) => r[0]?.revision ?? 0).sort((x, y) => x - y);
      expect(numbers).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
      const revisions = await b.listRevisions('web');
      expect(revisions.map((r) => r.revision)).toEqual(numbers);
      // Exactly one pending (the newest); every earlier one superseded.
      expect(revisions.filter((r) => r.outcome === 'pending').map((r) => r.revision)).toEqual([12]);
      expect((await a.getService('web'))?.revision).toBe(12);
    });

    it('sees what the other wrote: services, kv, events in time order', async () => {
      const a = await open();
      const b = await open({ prefix: a.prefix });
      await a.commitRevisions([rev('web', 'web:1')]);
      await b.putKv('node/n1', { name: 'n1' });
      const ev = (s: number, action: string) => ({ time: new Date(Date.UTC(2026, 10, 27, 20, 0, s)).toISOString(), reconciler: 'r', service: 'web', instance: null, node: null, action, reason: 'x', outcome: 'ok', durationMs: 1 });
      await a.appendEvents([ev(1, 'a1'), ev(3, 'a3')]);
      await b.appendEvents([ev(2, 'b2')]);
      expect((await b.getService('web'))?.revision).toBe(1);
      expect(await a.getKv('node/n1')).toEqual({ name: 'n1' });
      expect((await a.listEvents()).map((e) => e.action)).toEqual(['a1', 'b2', 'a3']);
    });

    it('markDeleted from one and a commit from the other: the numbering goes on', async () => {
      const a = await open();
      const b = await open({ prefix: a.prefix });
      await a.commitRevisions([rev('web', 'web:1')]);
      const [deleted, [again]] = await Promise.all([a.markDeleted('web', '2026-11-27T21:00:00.000Z'), b.commitRevisions([rev('web', 'web:2')])]);
      expect(again?.revision).toBe(2);
      const now = await a.getService('web');
      // Whichever came second decided: deleted after the commit, or live at 2 after the delete.
      if (deleted && now?.deletedAt !== undefined) expect(now.revision).toBe(2);
      else expect(now).toMatchObject({ revision: 2 });
    });
  });

  describe('layout and bounds', () => {
    it('keeps every key under <prefix>/store/ and leaves other prefixes alone', async () => {
      const other = await open();
      await other.putKv('x', 'other');
      const store = await open();
      await store.commitRevisions([rev('web', 'web:1')]);
      await store.putKv('node/n1', 1);
      const keys = await admin.getAll().prefix(store.prefix + '/').keys();
      expect(keys.length).toBeGreaterThan(0);
      for (const k of keys) expect(k.startsWith(`${store.prefix}/store/`)).toBe(true);
      expect(await other.listKv('')).toEqual([{ key: 'x', value: 'other' }]);
      expect(await store.listKv('')).toEqual([{ key: 'node/n1', value: 1 }]);
    });

    it('a commit too large for one transaction is written in several, every service at its revision', async () => {
      const store = await open({ limits: { maxTxnOps: 8 } });
      const many = Array.from({ length: 25 }, (_, i) => rev(`s${i}`, `s${i}:1`));
      const out = await store.commitRevisions(many);
      expect(out.map((s) => [s.name, s.revision])).toEqual(many.map((r) => [r.spec.name, 1]));
      expect((await store.listServices()).length).toBe(25);
      const again = await store.commitRevisions(many.map((r) => ({ ...r, spec: spec(r.spec.name, `${r.spec.name}:2`) })));
      expect(again.every((s) => s.revision === 2)).toBe(true);
      expect((await store.listRevisions('s7')).map((r) => [r.revision, r.outcome])).toEqual([
        [1, 'superseded'],
        [2, 'pending'],
      ]);
    });

    it('lists past one page', async () => {
      const store = await open({ limits: { pageSize: 7 } });
      for (let i = 0; i < 30; i++) await store.putKv(`k/${String(i).padStart(2, '0')}`, i);
      expect((await store.listKv('k/')).map((e) => e.value)).toEqual(Array.from({ length: 30 }, (_, i) => i));
      await store.appendEvents(Array.from({ length: 30 }, (_, i) => ({ time: new Date(1_700_000_000_000 + i).toISOString(), reconciler: 'r', service: i % 3 === 0 ? 'web' : 'api', instance: null, node: null, action: `a${i}`, reason: 'x', outcome: 'ok', durationMs: 1 })));
      expect((await store.listEvents()).length).toBe(30);
      expect((await store.listEvents({ service: 'web', limit: 4 })).map((e) => e.action)).toEqual(['a18', 'a21', 'a24', 'a27']);
    });

    it('refuses a value larger than maxValueBytes, writing nothing', async () => {
      const store = await open({ limits: { maxValueBytes: 1024 } });
      await expectCode(store.putKv('big', 'x'.repeat(2000)), 'ORCA_INTERNAL');
      expect(await store.getKv('big')).toBeUndefined();
    });

    it('trims the event ring to eventsKept + 10 % at most', async () => {
      const store = await open({ eventsKept: 40 });
      for (let i = 0; i < 20; i++) {
        await store.appendEvents(Array.from({ length: 5 }, (_, j) => ({ time: new Date(1_700_000_000_000 + i * 5 + j).toISOString(), reconciler: 'r', service: null, instance: null, node: null, action: `a${i * 5 + j}`, reason: 'x', outcome: 'ok', durationMs: 1 })));
      }
      const stored = await admin.getAll().prefix(`${store.prefix}/store/evt!`).count();
      expect(stored).toBeLessThanOrEqual(44);
      const listed = await store.listEvents();
      expect(listed).toHaveLength(40);
      expect(listed[0]?.action).toBe('a60');
    });

    it('refuses a prefix that holds data but no store-format marker', async () => {
      const prefix = uniquePrefix();
      prefixes.push(prefix);
      await admin.put(`${prefix}/store/svc!web`).value('{}');
      const store = new EtcdStore({ endpoints: etcd.endpoints, prefix });
      const err = await expectCode(store.open(), 'ORCA_STORE_CORRUPT');
      expect(String(err)).toMatch(/no store-format marker/);
    });

    it('refuses a bad prefix at construction', () => {
      expect(() => new EtcdStore({ endpoints: etcd.endpoints, prefix: 'orca' })).toThrow(/must start with '\/'/);
      expect(() => new EtcdStore({ endpoints: etcd.endpoints, prefix: '/orca/' })).toThrow(/must not end/);
    });
  });

  describe('TLS to etcd', () => {
    it('opens with the CA and a client certificate; without the certificate, or trusting another CA, it is unavailable', async () => {
      const own = await startEtcd({ tls: true });
      const other = await startEtcd({ tls: true });
      try {
        const files = own.tls!;
        const pem = async (f: string) => readFile(f);
        const tls = { ca: await pem(files.ca), cert: await pem(files.cert), key: await pem(files.key) };
        expect(own.endpoints[0]).toMatch(/^https:\/\//);
        const store = new EtcdStore({ endpoints: own.endpoints, prefix: uniquePrefix(), tls });
        await store.open();
        await store.commitRevisions([rev('web', 'web:1')]);
        expect((await store.getService('web'))?.revision).toBe(1);
        await store.close();

        const noCert = new EtcdStore({ endpoints: own.endpoints, prefix: uniquePrefix(), tls: { ca: tls.ca }, limits: { opTimeoutMs: 2_000 } });
        await expectCode(noCert.open(), 'ORCA_STORE_UNAVAILABLE');
        const wrongCa = new EtcdStore({ endpoints: own.endpoints, prefix: uniquePrefix(), tls: { ...tls, ca: await pem(other.tls!.ca) }, limits: { opTimeoutMs: 2_000 } });
        await expectCode(wrongCa.open(), 'ORCA_STORE_UNAVAILABLE');
        const plain = new EtcdStore({ endpoints: own.endpoints.map((e) => e.replace('https:', 'http:')), prefix: uniquePrefix(), limits: { opTimeoutMs: 2_000 } });
        await expectCode(plain.open(), 'ORCA_STORE_UNAVAILABLE');
      } finally {
        await own.stop();
        await other.stop();
      }
    });
  });

  describe('an unreachable etcd', () => {
    it('open fails within a few seconds with ORCA_STORE_UNAVAILABLE naming the endpoints', async () => {
      const port = await freePort();
      const store = new EtcdStore({ endpoints: [`http://127.0.0.1:${port}`], prefix: '/orca/x' });
      const t0 = Date.now();
      const err = await expectCode(store.open(), 'ORCA_STORE_UNAVAILABLE');
      expect(Date.now() - t0).toBeLessThan(8_000);
      expect(String(err)).toContain(`127.0.0.1:${port}`);
      await expectCode(store.getKv('k'), 'ORCA_STORE_UNAVAILABLE');
    });

    it('calls on an open store whose etcd stopped answering (SIGSTOP) fail within a few seconds', async () => {
      const own = await startEtcd();
      try {
        const store = new EtcdStore({ endpoints: own.endpoints, prefix: uniquePrefix() });
        await store.open();
        await store.putKv('k', 1);
        own.member(0).pause();
        const t0 = Date.now();
        await expectCode(store.putKv('k', 2), 'ORCA_STORE_UNAVAILABLE');
        await expectCode(store.getKv('k'), 'ORCA_STORE_UNAVAILABLE');
        expect(Date.now() - t0).toBeLessThan(15_000);
        own.member(0).resume();
        await store.close();
      } finally {
        await own.stop();
      }
    });
  });
});
