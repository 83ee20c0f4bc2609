import { EventEmitter } from 'node:events';
import type { Etcd3 } from 'etcd3';
import { describe, expect, it } from 'vitest';
import { flushMicrotasks, ManualClock } from '../core/clock.js';
import { silentLogger } from '../core/log.js';
import { EtcdLeadership } from './leadership.js';

/**
 * EtcdLeadership on a fake etcd client (just what it calls: leases, puts, one range, a watch),
 * on a manual clock. The real election on real etcd is in test/e2e/etcd-store.test.ts and
 * test/e2e/ha.test.ts; this checks what a moment of trouble looks like from the API's side.
 */
function fakeEtcd() {
  const kv = new Map<string, string>();
  const leases: Array<EventEmitter & { id: string }> = [];
  /** Grants fail with this while set (a member just killed: its circuit is still open). */
  let failing: Error | null = null;
  let nextLease = 1;
  const client = {
    watch: () => ({ prefix: () => ({ create: async () => Object.assign(new EventEmitter(), { cancel: async () => undefined }) }) }),
    lease: () => {
      const lease = Object.assign(new EventEmitter(), {
        id: '',
        grant: async () => {
          if (failing) throw failing;
          lease.id ||= String(nextLease++);
          return lease.id;
        },
        revoke: async () => undefined,
      });
      leases.push(lease);
      return lease;
    },
    put: (key: string) => {
      let value = '';
      const b = {
        value: (v: string) => ((value = v), b),
        lease: () => b,
        exec: async () => {
          if (failing) throw failing;
          kv.set(key, value);
        },
      };
      return b;
    },
    getAll: () => {
      let prefix = '';
      const b = {
        prefix: (p: string) => ((prefix = p), b),
        sort: () => b,
        limit: () => b,
        exec: async () => ({ kvs: [...kv].filter(([k]) => k.startsWith(prefix)).sort(([a], [c]) => a.localeCompare(c)).map(([, v]) => ({ value: Buffer.from(v) })) }),
        strings: async () => Object.fromEntries([...kv].filter(([k]) => k.startsWith(prefix))),
      };
      return b;
    },
  };
  return {
    client: client as unknown as Etcd3,
    leases,
    kv,
    fail: (err: Error | null) => (failing = err),
  };
}

describe('EtcdLeadership', () => {
  it('answers "no leader yet" through a moment of trouble, and reports the store only once it has lasted a lease', async () => {
    const clock = new ManualClock();
    const etcd = fakeEtcd();
    const l = new EtcdLeadership({ client: etcd.client, prefix: '/orca/t', self: { name: 'a', address: () => 'http://127.0.0.1:1' }, leaseSecs: 5, clock, log: silentLogger(), setFence: () => undefined });
    await l.start();
    expect([l.isLeader(), l.leaderAddress(), l.problem()]).toEqual([true, 'http://127.0.0.1:1', null]);

    // The lease is lost (as when its keepalive met a member that had just been killed), and the
    // next campaigns meet a circuit breaker that is still open.
    etcd.fail(Object.assign(new Error('Execution prevented because the circuit breaker is open'), { isBrokenCircuitError: true }));
    for (const k of etcd.kv.keys()) etcd.kv.delete(k);
    (etcd.leases[0] as EventEmitter).emit('lost', new Error('lease expired'));
    await flushMicrotasks();
    // Not leading; not forwarding to itself either; and not yet "the store is down".
    expect([l.isLeader(), l.leaderAddress(), l.problem()]).toEqual([false, null, null]);
    await clock.advanceAsync(4_900, 100);
    expect(l.problem()).toBeNull();
    await clock.advanceAsync(200, 100);
    expect(l.problem()).toMatch(/^the lease was lost|^no server can lead/);

    // etcd answers again: the next campaign leads, and the trouble is gone.
    etcd.fail(null);
    await clock.advanceAsync(6_000, 100);
    expect([l.isLeader(), l.leaderAddress(), l.problem()]).toEqual([true, 'http://127.0.0.1:1', null]);
    await l.stop();
  });
});
