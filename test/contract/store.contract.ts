/**
 * The behavioural contract of Store (store/types.ts). Every implementation runs it:
 *
 *   storeContract('memory-level', async (caps) => { … return { store, cleanup, reopen } });
 *
 * The factory returns an opened store. It must honour `caps.eventsKept` (the ring tests use a
 * small cap) and use the default revisionsKept (20). `reopen`, when given, closes the store and
 * returns a store opened over the same data (it may be the same object).
 */

import { afterEach, describe, expect, it } from 'vitest';
import { isOrcaError } from '../../core/errors.js';
import type { ServiceSpec } from '../../manifest/types.js';
import type { EventRecord, NewRevision, Store } from '../../store/types.js';

export interface StoreFixture {
  store: Store;
  cleanup(): Promise<void>;
  reopen?(): Promise<Store>;
}

export type StoreFactory = (caps?: { eventsKept?: number }) => Promise<StoreFixture>;

const T0 = Date.UTC(2026, 10, 27, 20, 0, 0);
/** ISO time `s` seconds after T0. */
const at = (s: number): string => new Date(T0 + s * 1000).toISOString();

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

function rev(name: string, image: string, when: string, extra: Partial<NewRevision> = {}): NewRevision {
  return { spec: spec(name, image), specHash: `hash-${image}`, source: 'apply', at: when, ...extra };
}

function event(seconds: number, service: string | null, action = 'container.create'): EventRecord {
  return {
    time: at(seconds),
    reconciler: 'container',
    service,
    instance: null,
    node: 'n1',
    action,
    reason: 'missing',
    outcome: 'ok',
    durationMs: 3,
  };
}

async function rejectsWith(p: Promise<unknown>, code: Parameters<typeof isOrcaError>[1]): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isOrcaError(err, code), `expected OrcaError ${code}, got ${String(err)}`).toBe(true);
}

export function storeContract(name: string, make: StoreFactory): void {
  describe(`Store contract: ${name}`, () => {
    let fixture: StoreFixture | undefined;

    async function setup(caps?: { eventsKept?: number }): Promise<StoreFixture> {
      fixture = await make(caps);
      return fixture;
    }

    afterEach(async () => {
      await fixture?.cleanup();
      fixture = undefined;
    });

    describe('services and revisions', () => {
      it('starts empty', async () => {
        const { store } = await setup();
        expect(await store.listServices({ includeDeleted: true })).toEqual([]);
        expect(await store.getService('web')).toBeUndefined();
        expect(await store.listRevisions('web')).toEqual([]);
        expect(await store.getRevision('web', 1)).toBeUndefined();
      });

      it('creates services at revision 1, returns them in input order, lists them by name', async () => {
        const { store } = await setup();
        const out = await store.commitRevisions([rev('web', 'web:1', at(0)), rev('api', 'api:1', at(0))]);
        expect(out.map((s) => [s.name, s.revision])).toEqual([
          ['web', 1],
          ['api', 1],
        ]);
        expect(out[0]).toEqual({ name: 'web', revision: 1, spec: spec('web'), specHash: 'hash-web:1', createdAt: at(0), updatedAt: at(0) });
        expect(await store.getService('web')).toEqual(out[0]);
        expect((await store.listServices()).map((s) => s.name)).toEqual(['api', 'web']);
        expect(await store.listRevisions('web')).toEqual([
          { service: 'web', revision: 1, spec: spec('web'), specHash: 'hash-web:1', source: 'apply', createdAt: at(0), outcome: 'pending' },
        ]);
      });

      it('an empty commit writes nothing', async () => {
        const { store } = await setup();
        expect(await store.commitRevisions([])).toEqual([]);
        expect(await store.listServices({ includeDeleted: true })).toEqual([]);
      });

      it('configures: next revision, createdAt kept, updatedAt moves; numbering is per service', async () => {
        const { store } = await setup();
        await store.commitRevisions([rev('web', 'web:1', at(0)), rev('api', 'api:1', at(0))]);
        const [web] = await store.commitRevisions([rev('web', 'web:2', at(5))]);
        expect(web).toMatchObject({ name: 'web', revision: 2, specHash: 'hash-web:2', createdAt: at(0), updatedAt: at(5) });
        expect(web?.spec.image).toBe('web:2');
        expect((await store.getService('api'))?.revision).toBe(1);
        expect((await store.listRevisions('web')).map((r) => r.revision)).toEqual([1, 2]);
        expect((await store.getRevision('web', 2))?.spec.image).toBe('web:2');
      });

      it('a new revision supersedes earlier pending ones and leaves finished ones alone', async () => {
        const { store } = await setup();
        await store.commitRevisions([rev('web', 'web:1', at(0))]);
        await store.setRevisionOutcome('web', 1, 'rolled-out');
        await store.commitRevisions([rev('web', 'web:2', at(1))]);
        await store.commitRevisions([rev('web', 'web:3', at(2))]);
        const outcomes = (await store.listRevisions('web')).map((r) => [r.revision, r.outcome]);
        expect(outcomes).toEqual([
          [1, 'rolled-out'],
          [2, 'superseded'],
          [3, 'pending'],
        ]);
      });

      it('records rollback revisions with their origin', async () => {
        const { store } = await setup();
        await store.commitRevisions([rev('web', 'web:1', at(0))]);
        await store.commitRevisions([rev('web', 'web:2', at(1))]);
        await store.commitRevisions([rev('web', 'web:1', at(2), { source: 'rollback', rollbackOf: 1 })]);
        expect(await store.getRevision('web', 3)).toMatchObject({ revision: 3, source: 'rollback', rollbackOf: 1, spec: spec('web', 'web:1') });
      });

      it('keeps the last 20 revisions per service', async () => {
        const { store } = await setup();
        for (let i = 1; i <= 25; i++) await store.commitRevisions([rev('web', `web:${i}`, at(i))]);
        const revisions = await store.listRevisions('web');
        expect(revisions.map((r) => r.revision)).toEqual(Array.from({ length: 20 }, (_, i) => i + 6));
        expect(await store.getRevision('web', 5)).toBeUndefined();
        expect((await store.getRevision('web', 6))?.spec.image).toBe('web:6');
        expect((await store.getService('web'))?.revision).toBe(25);
      });

      it('delete keeps history; re-create continues the numbering with a fresh createdAt', async () => {
        const { store } = await setup();
        await store.commitRevisions([rev('web', 'web:1', at(0))]);
        await store.commitRevisions([rev('web', 'web:2', at(1))]);
        expect(await store.markDeleted('web', at(2))).toBe(true);
        expect(await store.markDeleted('web', at(3))).toBe(false);
        expect(await store.markDeleted('nope', at(3))).toBe(false);

        expect(await store.listServices()).toEqual([]);
        const deleted = await store.listServices({ includeDeleted: true });
        expect(deleted).toEqual([expect.objectContaining({ name: 'web', revision: 2, deletedAt: at(2) })]);
        expect((await store.getService('web'))?.deletedAt).toBe(at(2));
        expect((await store.listRevisions('web')).map((r) => r.revision)).toEqual([1, 2]);

        const [back] = await store.commitRevisions([rev('web', 'web:1', at(4))]);
        expect(back).toEqual({ name: 'web', revision: 3, spec: spec('web', 'web:1'), specHash: 'hash-web:1', createdAt: at(4), updatedAt: at(4) });
        expect(await store.getService('web')).toEqual(back);
        expect((await store.listServices()).map((s) => s.name)).toEqual(['web']);
      });

      it('never reuses a revision number, even after pruning and delete', async () => {
        const { store } = await setup();
        for (let i = 1; i <= 22; i++) await store.commitRevisions([rev('web', `web:${i}`, at(i))]);
        await store.markDeleted('web', at(30));
        const [back] = await store.commitRevisions([rev('web', 'web:new', at(31))]);
        expect(back?.revision).toBe(23);
        expect((await store.listRevisions('web')).map((r) => r.revision)).toEqual(Array.from({ length: 20 }, (_, i) => i + 4));
      });

      it('is atomic: a batch naming a service twice is rejected with ORCA_CONFLICT and writes nothing', async () => {
        const { store } = await setup();
        await store.commitRevisions([rev('web', 'web:1', at(0))]);
        await rejectsWith(
          store.commitRevisions([rev('api', 'api:1', at(1)), rev('web', 'web:2', at(1)), rev('web', 'web:3', at(1))]),
          'ORCA_CONFLICT',
        );
        expect(await store.getService('api')).toBeUndefined();
        expect(await store.listRevisions('api')).toEqual([]);
        expect((await store.getService('web'))?.revision).toBe(1);
        expect((await store.listRevisions('web')).map((r) => r.outcome)).toEqual(['pending']);
        // and the numbering did not move
        expect((await store.commitRevisions([rev('web', 'web:2', at(2))]))[0]?.revision).toBe(2);
      });

      it('concurrent commits never share a revision number', async () => {
        const { store } = await setup();
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) => store.commitRevisions([rev('web', `web:${i}`, at(i))])),
        );
        const numbers = results.map((r) => r[0]?.revision).sort((a, b) => (a ?? 0) - (b ?? 0));
        expect(numbers).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        expect((await store.listRevisions('web')).map((r) => r.revision)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        expect((await store.getService('web'))?.revision).toBe(10);
      });

      it('sets revision outcomes with and without a reason; unknown revisions are ORCA_NOT_FOUND', async () => {
        const { store } = await setup();
        await store.commitRevisions([rev('web', 'web:1', at(0))]);
        await store.setRevisionOutcome('web', 1, 'rollout-failed', 'instance web-1-0 not ready after 60s');
        expect(await store.getRevision('web', 1)).toMatchObject({ outcome: 'rollout-failed', outcomeReason: 'instance web-1-0 not ready after 60s' });
        await store.setRevisionOutcome('web', 1, 'rolled-out');
        await store.setRevisionOutcome('web', 1, 'rolled-out');
        const r = await store.getRevision('web', 1);
        expect(r?.outcome).toBe('rolled-out');
        expect(r).not.toHaveProperty('outcomeReason');
        await rejectsWith(store.setRevisionOutcome('web', 2, 'rolled-out'), 'ORCA_NOT_FOUND');
        await rejectsWith(store.setRevisionOutcome('api', 1, 'rolled-out'), 'ORCA_NOT_FOUND');
      });
    });

    describe('events', () => {
      it('lists oldest first, ordered by time, then by append order within a millisecond', async () => {
        const { store } = await setup();
        await store.appendEvents([event(2, 'web', 'b'), event(1, 'web', 'a')]);
        await store.appendEvents([event(2, 'api', 'c'), event(3, null, 'd')]);
        expect((await store.listEvents()).map((e) => e.action)).toEqual(['a', 'b', 'c', 'd']);
        expect((await store.listEvents())[3]).toEqual(event(3, null, 'd'));
      });

      it('caps each record: a 1 MB reason is stored cut to 2 KiB, the record under 8 KiB', async () => {
        const { store } = await setup();
        await store.appendEvents([{ ...event(1, 'web', 'big'), reason: 'r'.repeat(1_000_000), message: 'm'.repeat(100_000) }]);
        const [stored] = await store.listEvents();
        expect(stored?.action).toBe('big');
        expect(stored?.reason.length).toBeLessThanOrEqual(2048);
        expect(stored?.reason.endsWith('…[cut]')).toBe(true);
        expect(JSON.stringify(stored).length).toBeLessThanOrEqual(8 * 1024);
      });

      it('filters by service and sinceMs (inclusive) and keeps the newest `limit`, oldest first', async () => {
        const { store } = await setup();
        await store.appendEvents(Array.from({ length: 10 }, (_, i) => event(i, i % 2 === 0 ? 'web' : 'api', `a${i}`)));
        expect((await store.listEvents({ service: 'web' })).map((e) => e.action)).toEqual(['a0', 'a2', 'a4', 'a6', 'a8']);
        expect((await store.listEvents({ sinceMs: T0 + 7000 })).map((e) => e.action)).toEqual(['a7', 'a8', 'a9']);
        expect((await store.listEvents({ limit: 3 })).map((e) => e.action)).toEqual(['a7', 'a8', 'a9']);
        expect((await store.listEvents({ service: 'api', limit: 2 })).map((e) => e.action)).toEqual(['a7', 'a9']);
        expect((await store.listEvents({ service: 'web', sinceMs: T0 + 3000, limit: 2 })).map((e) => e.action)).toEqual(['a6', 'a8']);
        expect(await store.listEvents({ limit: 0 })).toEqual([]);
        expect(await store.listEvents({ service: 'db' })).toEqual([]);
      });

      it('is a capped ring: only the newest eventsKept are listed', async () => {
        const { store } = await setup({ eventsKept: 50 });
        for (let batch = 0; batch < 20; batch++) {
          await store.appendEvents(Array.from({ length: 10 }, (_, i) => event(batch * 10 + i, 'web', `a${batch * 10 + i}`)));
        }
        const all = await store.listEvents();
        expect(all).toHaveLength(50);
        expect(all[0]?.action).toBe('a150');
        expect(all.at(-1)?.action).toBe('a199');
        expect((await store.listEvents({ limit: 1000 })).length).toBe(50);
      });
    });

    describe('kv', () => {
      it('gets, puts, overwrites and deletes JSON values', async () => {
        const { store } = await setup();
        expect(await store.getKv('cluster/id')).toBeUndefined();
        await store.putKv('cluster/id', { id: 'c1', nodes: ['n1'], n: 1, ok: true });
        expect(await store.getKv('cluster/id')).toEqual({ id: 'c1', nodes: ['n1'], n: 1, ok: true });
        await store.putKv('cluster/id', 'plain');
        expect(await store.getKv<string>('cluster/id')).toBe('plain');
        await store.putKv('zero', 0);
        expect(await store.getKv('zero')).toBe(0);
        await store.delKv('cluster/id');
        await store.delKv('cluster/id');
        await store.delKv('never');
        expect(await store.getKv('cluster/id')).toBeUndefined();
      });

      it('createKv stores only when the key holds nothing; of racing creates one wins', async () => {
        const { store } = await setup();
        expect(await store.createKv('admin', { hash: 'a' })).toBe(true);
        expect(await store.createKv('admin', { hash: 'b' })).toBe(false);
        expect(await store.getKv('admin')).toEqual({ hash: 'a' });
        const results = await Promise.all(Array.from({ length: 8 }, (_, i) => store.createKv('race', i)));
        expect(results.filter((r) => r)).toHaveLength(1);
        expect(await store.getKv('race')).toBe(results.indexOf(true));
        await store.delKv('admin');
        expect(await store.createKv('admin', 'again')).toBe(true);
        await rejectsWith(store.createKv('bad', undefined), 'ORCA_INTERNAL');
        expect(await store.getKv('bad')).toBeUndefined();
      });

      it('lists by prefix, sorted by key', async () => {
        const { store } = await setup();
        await store.putKv('slot/web/2', 2);
        await store.putKv('slot/web/1', 1);
        await store.putKv('slot/api/1', 'a');
        await store.putKv('slots', 'not me');
        await store.putKv('assign/n1', { n: 1 });
        expect(await store.listKv('slot/web/')).toEqual([
          { key: 'slot/web/1', value: 1 },
          { key: 'slot/web/2', value: 2 },
        ]);
        expect((await store.listKv('slot/')).map((e) => e.key)).toEqual(['slot/api/1', 'slot/web/1', 'slot/web/2']);
        expect((await store.listKv('')).map((e) => e.key)).toEqual(['assign/n1', 'slot/api/1', 'slot/web/1', 'slot/web/2', 'slots']);
        expect(await store.listKv('nothing/')).toEqual([]);
      });

      it('keeps kv apart from services', async () => {
        const { store } = await setup();
        await store.putKv('web', 1);
        expect(await store.getService('web')).toBeUndefined();
        await store.commitRevisions([rev('web', 'web:1', at(0))]);
        expect((await store.listKv('')).map((e) => e.key)).toEqual(['web']);
      });
    });

    describe('close and reopen', () => {
      it('close is idempotent', async () => {
        const { store } = await setup();
        await store.close();
        await store.close();
      });

      it('keeps everything across close and reopen, numbering and event order included', async (ctx) => {
        const fx = await setup({ eventsKept: 50 });
        if (!fx.reopen) {
          ctx.skip();
          return;
        }
        await fx.store.commitRevisions([rev('web', 'web:1', at(0)), rev('api', 'api:1', at(0))]);
        await fx.store.commitRevisions([rev('web', 'web:2', at(1))]);
        await fx.store.setRevisionOutcome('web', 2, 'rolled-out');
        await fx.store.markDeleted('api', at(2));
        await fx.store.putKv('slot/web/0', { instance: 'web-2-0' });
        await fx.store.appendEvents([event(5, 'web', 'before-1'), event(5, 'web', 'before-2')]);

        const store = await fx.reopen();
        expect((await store.getService('web'))?.revision).toBe(2);
        expect((await store.getRevision('web', 2))?.outcome).toBe('rolled-out');
        expect((await store.getService('api'))?.deletedAt).toBe(at(2));
        expect(await store.getKv('slot/web/0')).toEqual({ instance: 'web-2-0' });

        // Same millisecond as before the reopen: must neither overwrite nor reorder.
        await store.appendEvents([event(5, 'web', 'after-1')]);
        expect((await store.listEvents()).map((e) => e.action)).toEqual(['before-1', 'before-2', 'after-1']);

        const [api] = await store.commitRevisions([rev('api', 'api:2', at(6))]);
        expect(api?.revision).toBe(2);
        const [web] = await store.commitRevisions([rev('web', 'web:3', at(6))]);
        expect(web?.revision).toBe(3);
      });

      it('the event ring cap holds across reopen', async (ctx) => {
        const fx = await setup({ eventsKept: 50 });
        if (!fx.reopen) {
          ctx.skip();
          return;
        }
        await fx.store.appendEvents(Array.from({ length: 40 }, (_, i) => event(i, 'web', `a${i}`)));
        const store = await fx.reopen();
        await store.appendEvents(Array.from({ length: 40 }, (_, i) => event(40 + i, 'web', `a${40 + i}`)));
        const all = await store.listEvents();
        expect(all).toHaveLength(50);
        expect(all[0]?.action).toBe('a30');
        expect(all.at(-1)?.action).toBe('a79');
      });
    });
  });
}
