/**
 * Leader election on a real etcd member (SPEC §3.11): one leader among candidates, a standby
 * takes over when the leader resigns or its lease is lost, and a deposed leader's fence fails.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Etcd3 } from 'etcd3';
import { systemClock } from '../../core/clock.js';
import { silentLogger } from '../../core/log.js';
import { EtcdLeadership, type Fence } from '../../server/leadership.js';
import { startEtcd, type EtcdProcess } from '../etcd.js';
import { waitFor } from './harness.js';

describe('EtcdLeadership on a real etcd', () => {
  let etcd: EtcdProcess;
  const clients: Etcd3[] = [];
  const running: EtcdLeadership[] = [];

  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterAll(async () => {
    for (const l of running) await l.stop().catch(() => undefined);
    for (const c of clients) c.close();
    await etcd?.stop();
  });

  let n = 0;
  const candidate = (name: string, prefix: string, leaseSecs = 1) => {
    const client = new Etcd3({ hosts: etcd.endpoints });
    clients.push(client);
    const fence: { now: Fence | null } = { now: null };
    const roles: boolean[] = [];
    const l = new EtcdLeadership({
      client,
      prefix,
      self: { name, address: () => `http://127.0.0.1:${7000 + ++n}` },
      leaseSecs,
      clock: systemClock,
      log: silentLogger(),
      setFence: (f) => (fence.now = f),
    });
    l.onChange((leading) => roles.push(leading));
    running.push(l);
    return { l, fence, roles, client };
  };
  /** A write as the store fences it: it happens only while the fence's key holds its value. */
  const fencedPut = async (client: Etcd3, f: Fence, key: string) => {
    const r = await client.if(f.key, 'Value', '==', f.value).then(client.put(key).value('x')).commit();
    return r.succeeded;
  };

  it('elects exactly one; orca servers lists both, the leader first; a resigning leader hands over at once', async () => {
    const a = candidate('s1', '/orca/t1');
    await a.l.start();
    await waitFor(() => a.l.isLeader(), 5000, 's1 leads');
    const b = candidate('s2', '/orca/t1');
    await b.l.start();
    await new Promise((r) => setTimeout(r, 300));
    expect([a.l.isLeader(), b.l.isLeader()]).toEqual([true, false]);
    expect(b.l.leaderAddress()).toBe(a.l.leaderAddress());
    const members = await b.l.members();
    expect(members.map((m) => [m.name, m.role])).toEqual([
      ['s1', 'leader'],
      ['s2', 'standby'],
    ]);
    expect(await fencedPut(a.client, a.fence.now!, '/orca/t1/x')).toBe(true);

    const t0 = Date.now();
    const oldFence = a.fence.now!;
    await a.l.stop();
    await waitFor(() => b.l.isLeader(), 5000, 's2 takes over');
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(a.roles).toEqual([true, false]);
    expect(b.roles).toEqual([true]);
    // The old leader's fence fails: its key went with its lease.
    expect(await fencedPut(a.client, oldFence, '/orca/t1/y')).toBe(false);
    expect(await fencedPut(b.client, b.fence.now!, '/orca/t1/y')).toBe(true);
    expect((await b.l.members()).map((m) => [m.name, m.role])).toEqual([['s2', 'leader']]);
  });

  it('a leader whose lease is lost (revoked behind its back, as when it was paused past the lease) is fenced, steps down and campaigns again as a standby', async () => {
    const a = candidate('s1', '/orca/t2');
    await a.l.start();
    await waitFor(() => a.l.isLeader(), 5000, 's1 leads');
    const b = candidate('s2', '/orca/t2');
    await b.l.start();
    const f = a.fence.now!;
    const lease = JSON.parse(f.value).lease as string;
    // Another client revokes s1's lease: its keys go, as after a pause longer than the lease.
    const admin = new Etcd3({ hosts: etcd.endpoints });
    clients.push(admin);
    await admin.leaseClient.leaseRevoke({ ID: lease });
    await waitFor(() => b.l.isLeader(), 5000, 's2 takes over');
    expect(await fencedPut(a.client, f, '/orca/t2/x')).toBe(false);
    await waitFor(() => !a.l.isLeader(), 5000, 's1 steps down');
    await waitFor(async () => (await b.l.members()).length === 2, 5000, 's1 back as a standby');
    expect((await b.l.members()).map((m) => [m.name, m.role])).toEqual([
      ['s2', 'leader'],
      ['s1', 'standby'],
    ]);
    expect(a.l.isLeader()).toBe(false);
  });
});
