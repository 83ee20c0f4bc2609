import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock, seededRng, flushMicrotasks } from '../core/clock.js';
import { silentLogger } from '../core/log.js';
import { FakeRuntime } from '../runtime/fake-runtime.js';
import { LABEL } from '../runtime/labels.js';
import { memoryStore } from '../store/index.js';
import type { EventRecord } from '../store/types.js';
import { Agent } from './agent.js';
import { aSpec, slotsOf } from '../test/builders.js';

const IMAGE = 'orca-test/busybox:1';
const NETWORK = 'orca-test';
const WATCHDOG_MS = 30_000;

const aborts: AbortController[] = [];
afterEach(() => {
  for (const a of aborts.splice(0)) a.abort();
});

async function world(prepare: (rt: FakeRuntime) => void = () => undefined) {
  const clock = new ManualClock();
  const rt = new FakeRuntime(clock);
  rt.addImage(IMAGE, { cmd: ['sleep', '3600'], listens: [80] });
  prepare(rt);
  const store = memoryStore();
  await store.open();
  const events: EventRecord[] = [];
  let changes = 0;
  const agent = new Agent({
    runtime: rt,
    store,
    clock,
    rng: seededRng(1),
    log: silentLogger(),
    identity: { cluster: 'test', node: 'n1', advertise: '127.0.0.1' },
    watchdogIntervalMs: WATCHDOG_MS,
    record: (e) => events.push(e),
    onChange: () => changes++,
    checks: {
      // A port answers while some container publishes it (a real connect would leave the test).
      tcp: async (_host, port) => ((await rt.list({})).some((c) => Object.values(c.ports).includes(port)) ? { ok: true, detail: 'open' } : { ok: false, detail: 'ECONNREFUSED' }),
      http: async () => ({ ok: false, detail: 'unused' }),
      exec: async () => ({ ok: false, detail: 'unused' }),
    },
  });
  const abort = new AbortController();
  aborts.push(abort);
  const settle = async (ms = 0) => {
    await flushMicrotasks(20);
    if (ms) await clock.advanceAsync(ms, 50);
    await agent.idle();
    await flushMicrotasks(20);
  };
  const running = async () => (await rt.list({ [LABEL.cluster]: 'test' })).filter((c) => c.status === 'running');
  const networkEvents = () => events.filter((e) => e.reconciler === 'network').map((e) => `${e.action} ${e.instance ?? '-'} ${e.reason} ${e.outcome}`);
  return { clock, rt, events, agent, abort, settle, running, networkEvents, changes: () => changes };
}

describe('the cluster network, as the agent keeps it (FakeRuntime)', () => {
  it('is created once, labelled with the cluster, and not before the first assignment set; every instance is created on it with <service> and <instance-id>', async () => {
    const w = await world();
    await w.agent.start(w.abort.signal);
    await w.settle();
    // An agent that has not been welcomed (or is refused) makes nothing on the Docker host.
    expect(await w.rt.inspectNetwork(NETWORK)).toBeUndefined();
    await w.agent.setAssignments(slotsOf(aSpec({ name: 'web', image: IMAGE, replicas: 2, port: 80 })));
    await w.settle();
    await w.settle(3 * WATCHDOG_MS);
    expect(await w.rt.inspectNetwork(NETWORK)).toMatchObject({ driver: 'bridge', labels: { [LABEL.cluster]: 'test' } });
    const web = await w.running();
    expect(web).toHaveLength(2);
    for (const c of web) {
      expect(w.rt.networksOf(c.id)).toEqual({ [NETWORK]: ['web', c.labels[LABEL.instance]] });
      expect(w.rt.specOf(c.id)?.gatewayHosts).toEqual(['orca.internal']);
    }
    expect((await w.rt.inspectNetwork(NETWORK))?.containers.sort()).toEqual(web.map((c) => c.id).sort());
    expect(w.rt.networksCreated).toBe(1);
    expect(w.rt.calls.connect).toBe(0);
    expect(w.networkEvents()).toEqual(['network.create - missing ok']);
  });

  it('removed behind its back: made again within one watchdog cycle and every running instance re-attached with its aliases, not replaced; routes get the new ports', async () => {
    const w = await world();
    await w.agent.setAssignments(slotsOf(aSpec({ name: 'web', image: IMAGE, replicas: 2, port: 80 })));
    await w.agent.start(w.abort.signal);
    await w.settle();
    await w.settle(1000);
    const before = await w.running();
    expect(w.agent.endpoints()).toHaveLength(2);
    w.rt.removeNetworkBehindBack(NETWORK);
    await w.settle(WATCHDOG_MS / 2);
    expect(await w.rt.inspectNetwork(NETWORK)).toBeUndefined();
    const changesBefore = w.changes();
    await w.settle(WATCHDOG_MS / 2);
    const net = await w.rt.inspectNetwork(NETWORK);
    expect(net).toMatchObject({ driver: 'bridge', labels: { [LABEL.cluster]: 'test' } });
    const after = await w.running();
    expect(after.map((c) => c.id).sort()).toEqual(before.map((c) => c.id).sort());
    expect(net?.containers.sort()).toEqual(before.map((c) => c.id).sort());
    for (const c of after) expect(w.rt.networksOf(c.id)).toEqual({ [NETWORK]: ['web', c.labels[LABEL.instance]] });
    const instances = after.map((c) => c.labels[LABEL.instance]).sort();
    expect(w.networkEvents().slice(1).sort()).toEqual(['network.create - missing ok', ...instances.map((i) => `network.connect ${i} network-missing ok`)].sort());
    // Off the network nothing answered (not ready); back on it they publish on new host ports,
    // pass readiness there, and the endpoints say so.
    expect(w.changes()).toBeGreaterThan(changesBefore);
    await w.settle(5000);
    expect(w.agent.endpoints().map((e) => e.address).sort()).toEqual(after.map((c) => `127.0.0.1:${c.hostPort}`).sort());
    expect(after.map((c) => c.hostPort)).not.toEqual(expect.arrayContaining(before.map((c) => c.hostPort)));
  });

  it('a bridge network of that name not made by Orca is used as it is, and never relabelled or removed', async () => {
    const w = await world((rt) => rt.addNetwork(NETWORK, { labels: { owner: 'someone' } }));
    await w.agent.setAssignments(slotsOf(aSpec({ name: 'web', image: IMAGE, replicas: 1 })));
    await w.agent.start(w.abort.signal);
    await w.settle();
    await w.settle(2 * WATCHDOG_MS);
    const [c] = await w.running();
    expect(w.rt.networksOf(c!.id)).toEqual({ [NETWORK]: ['web', c!.labels[LABEL.instance]] });
    expect((await w.rt.inspectNetwork(NETWORK))?.labels).toEqual({ owner: 'someone' });
    expect(w.rt.networksCreated).toBe(0);
    expect(w.networkEvents()).toEqual([]);
    w.abort.abort();
    await w.settle(WATCHDOG_MS);
    expect(await w.rt.inspectNetwork(NETWORK)).toBeDefined();
  });

  it('a network of that name with another driver: no instance is created, the reason is in the reconciliation log, the network is left alone', async () => {
    const w = await world((rt) => rt.addNetwork(NETWORK, { driver: 'macvlan' }));
    await w.agent.setAssignments(slotsOf(aSpec({ name: 'web', image: IMAGE, replicas: 1 })));
    await w.agent.start(w.abort.signal);
    await w.settle();
    await w.settle(WATCHDOG_MS);
    expect(await w.rt.list({ [LABEL.cluster]: 'test' })).toEqual([]);
    expect((await w.rt.inspectNetwork(NETWORK))?.driver).toBe('macvlan');
    const failed = w.events.filter((e) => e.outcome === 'error: ORCA_RUNTIME_CONFLICT');
    expect(failed.map((e) => e.action)).toEqual(expect.arrayContaining(['container.create', 'network.create']));
    for (const e of failed) expect(e.message).toMatch(/network orca-test exists with driver macvlan.*needs a bridge network/);
  });

  it('stopping the agent leaves the network (and its containers) in place', async () => {
    const w = await world();
    await w.agent.setAssignments(slotsOf(aSpec({ name: 'web', image: IMAGE, replicas: 1 })));
    await w.agent.start(w.abort.signal);
    await w.settle();
    w.abort.abort();
    await w.settle(WATCHDOG_MS);
    expect((await w.rt.inspectNetwork(NETWORK))?.containers).toHaveLength(1);
  });
});
