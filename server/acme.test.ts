import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { silentLogger } from '../core/log.js';
import { memoryStore } from '../store/index.js';
import type { EventRecord, Store } from '../store/types.js';
import { issueCert, makeCa, type TestCa } from '../test/certs.js';
import { AcmeManager, type ChallengeBoard, type OrderFn } from './acme.js';
import { CertStore } from './certs.js';
import type { AcmeChallenge } from '../proxy/tls.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
let ca: TestCa;
beforeAll(async () => {
  ca = await makeCa('Fake ACME CA');
});

/** A CA that issues `lifetimeMs` certificates, or fails while `down`; counts orders and shows its challenge. */
function fakeCa(clock: ManualClock, lifetimeMs = 90 * DAY) {
  const ca$ = {
    orders: [] as string[],
    down: false,
    seen: [] as AcmeChallenge[][],
    order: (async (host: string, board: ChallengeBoard) => {
      ca$.orders.push(host);
      if (ca$.down) throw new Error('connect ECONNREFUSED 127.0.0.1:14000');
      board.add({ token: `tok-${ca$.orders.length}`, keyAuthorization: `tok-${ca$.orders.length}.thumb` });
      board.remove(`tok-${ca$.orders.length}`);
      const c = await issueCert(ca, [host], { notBefore: new Date(clock.now() - 1000), notAfter: new Date(clock.now() - 1000 + lifetimeMs) });
      return { cert: c.certPem, key: c.keyPem };
    }) as OrderFn,
  };
  return ca$;
}

async function setup(o: { store?: Store; key?: Buffer; clock?: ManualClock; hosts?: string[]; leading?: () => boolean; order: (clock: ManualClock) => OrderFn } ) {
  const clock = o.clock ?? new ManualClock();
  const store = o.store ?? memoryStore();
  if (!o.store) await store.open();
  const key = o.key ?? randomBytes(32);
  const certs = new CertStore(store, key);
  const events: EventRecord[] = [];
  const board: AcmeChallenge[] = [];
  const manager = new AcmeManager({
    clock,
    log: silentLogger(),
    certs,
    settings: { directory: 'https://ca.test/dir', retry: { initialMs: HOUR, maxMs: 24 * HOUR, factor: 2 }, checkEveryMs: 10 * 60_000 },
    hosts: () => o.hosts ?? ['web.example.com'],
    leading: o.leading ?? (() => true),
    challenges: { add: (c) => board.push(c), remove: () => undefined },
    record: (e) => events.push(e),
    order: o.order(clock),
  });
  return { clock, store, key, certs, events, board, manager };
}

async function settle(m: AcmeManager): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await new Promise<void>((r) => setImmediate(r));
    await m.idle();
  }
}

describe('AcmeManager', () => {
  it('orders a missing certificate once, stores it sealed, answers the challenge, and records the event', async () => {
    const store = memoryStore();
    await store.open();
    let fake!: ReturnType<typeof fakeCa>;
    const s = await setup({ store, order: (c) => (fake = fakeCa(c)).order });
    s.manager.poke();
    await settle(s.manager);
    expect(fake.orders).toEqual(['web.example.com']);
    expect(s.board.map((c) => c.token)).toEqual(['tok-1']);
    expect((await s.certs.get('web.example.com'))?.issuer).toBe('Fake ACME CA');
    expect(await s.certs.order('web.example.com')).toBeUndefined();
    expect(s.events.map((e) => [e.reconciler, e.action, e.outcome])).toEqual([['acme', 'cert.obtain', 'ok']]);
    // Looked at again: nothing to order.
    s.manager.poke();
    await settle(s.manager);
    expect(fake.orders).toHaveLength(1);
    s.manager.stop();
  });

  it('a restarted server (or a new leader) never orders again what the store holds valid', async () => {
    const store = memoryStore();
    await store.open();
    const key = randomBytes(32);
    let first!: ReturnType<typeof fakeCa>;
    const a = await setup({ store, key, order: (c) => (first = fakeCa(c)).order });
    a.manager.poke();
    await settle(a.manager);
    a.manager.stop();
    expect(first.orders).toHaveLength(1);
    for (let restart = 0; restart < 5; restart++) {
      let again!: ReturnType<typeof fakeCa>;
      const b = await setup({ store, key, clock: a.clock, order: (c) => (again = fakeCa(c)).order });
      b.manager.poke();
      await settle(b.manager);
      b.manager.stop();
      expect(again.orders).toEqual([]);
    }
  });

  it('renews when a third of the lifetime is left, not before, with no restart', async () => {
    let fake!: ReturnType<typeof fakeCa>;
    const s = await setup({ order: (c) => (fake = fakeCa(c, 90 * DAY)).order });
    s.manager.poke();
    await settle(s.manager);
    const first = await s.certs.get('web.example.com');
    expect(fake.orders).toHaveLength(1);
    // 60 days in (minus a minute): not yet.
    await s.clock.advanceAsync(60 * DAY - 1000 - 60_000, 6 * HOUR);
    await settle(s.manager);
    expect(fake.orders).toHaveLength(1);
    await s.clock.advanceAsync(2 * 60_000, 60_000);
    await settle(s.manager);
    expect(fake.orders).toHaveLength(2);
    const second = await s.certs.get('web.example.com');
    expect(second?.version).toBe((first?.version ?? 0) + 1);
    expect(Date.parse(second?.notAfter ?? '')).toBeGreaterThan(Date.parse(first?.notAfter ?? ''));
    s.manager.stop();
  });

  it('a failed order backs off (1 h, 2 h, …), is shown failed with the reason, and succeeds once the CA is back; a restart keeps the backoff', async () => {
    const store = memoryStore();
    await store.open();
    const key = randomBytes(32);
    let fake!: ReturnType<typeof fakeCa>;
    const s = await setup({ store, key, order: (c) => (fake = fakeCa(c)).order });
    s.manager.poke();
    await settle(s.manager);
    // First attempt: the CA was up in the factory; make it down for the retries below.
    expect(fake.orders).toHaveLength(1);
    s.manager.stop();

    // A second host, CA down.
    let down!: ReturnType<typeof fakeCa>;
    const t = await setup({ store, key, clock: s.clock, hosts: ['web.example.com', 'api.example.com'], order: (c) => {
      down = fakeCa(c);
      down.down = true;
      return down.order;
    } });
    t.manager.poke();
    await settle(t.manager);
    expect(down.orders).toEqual(['api.example.com']);
    const failed = await t.certs.order('api.example.com');
    expect(failed).toMatchObject({ status: 'failed', failures: 1, reason: 'connect ECONNREFUSED 127.0.0.1:14000' });
    expect(Date.parse(failed?.nextAttemptAt ?? '')).toBe(t.clock.now() + HOUR);
    const rows = await t.certs.view([{ host: 'api.example.com', tls: 'acme' }], t.clock.now());
    expect(rows[0]).toMatchObject({ status: 'failed', reason: 'connect ECONNREFUSED 127.0.0.1:14000' });
    expect(t.events.at(-1)).toMatchObject({ action: 'cert.obtain', outcome: 'failed' });
    // Pokes (route changes, a crash-looping restart) do not retry before the backoff is over.
    for (let i = 0; i < 3; i++) t.manager.poke();
    await t.clock.advanceAsync(HOUR - 60_000, 10 * 60_000);
    await settle(t.manager);
    expect(down.orders).toHaveLength(1);
    t.manager.stop();
    let restarted!: ReturnType<typeof fakeCa>;
    const u = await setup({ store, key, clock: s.clock, hosts: ['web.example.com', 'api.example.com'], order: (c) => {
      restarted = fakeCa(c);
      restarted.down = true;
      return restarted.order;
    } });
    u.manager.poke();
    await settle(u.manager);
    expect(restarted.orders).toEqual([]);
    // The backoff is over: the second attempt fails too, then waits 2 h.
    await u.clock.advanceAsync(2 * 60_000, 60_000);
    await settle(u.manager);
    expect(restarted.orders).toEqual(['api.example.com']);
    expect(await u.certs.order('api.example.com')).toMatchObject({ failures: 2 });
    restarted.down = false;
    await u.clock.advanceAsync(2 * HOUR - 3 * 60_000, 10 * 60_000);
    await settle(u.manager);
    expect(restarted.orders).toHaveLength(1);
    await u.clock.advanceAsync(4 * 60_000, 60_000);
    await settle(u.manager);
    expect(restarted.orders).toHaveLength(2);
    expect(await u.certs.order('api.example.com')).toBeUndefined();
    expect((await u.certs.view([{ host: 'api.example.com', tls: 'acme' }], u.clock.now()))[0]).toMatchObject({ status: 'valid', reason: null });
    u.manager.stop();
  });

  it('does nothing while this server does not lead', async () => {
    let fake!: ReturnType<typeof fakeCa>;
    let leading = false;
    const s = await setup({ leading: () => leading, order: (c) => (fake = fakeCa(c)).order });
    s.manager.poke();
    await settle(s.manager);
    expect(fake.orders).toEqual([]);
    leading = true;
    s.manager.poke();
    await settle(s.manager);
    expect(fake.orders).toEqual(['web.example.com']);
    s.manager.stop();
  });
});
