import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock, seededRng, flushMicrotasks } from '../core/clock.js';
import { silentLogger } from '../core/log.js';
import { FakeRuntime } from '../runtime/fake-runtime.js';
import { LABEL } from '../runtime/labels.js';
import { DEFAULTS } from '../core/defaults.js';
import { memoryStore } from '../store/index.js';
import type { EventRecord, Store } from '../store/types.js';
import { Agent } from './agent.js';
import type { ProbeChecks } from '../controllers/health/checks.js';
import type { ProbeSpec } from '../manifest/types.js';
import { aSpec, slotsOf } from '../test/builders.js';

const IMAGE = 'orca-test/busybox:1';
const CLUSTER = 'test';

interface World {
  clock: ManualClock;
  rt: FakeRuntime;
  store: Store;
  events: EventRecord[];
  agent: Agent;
  abort: AbortController;
}

const worlds: World[] = [];
afterEach(() => {
  for (const w of worlds.splice(0)) w.abort.abort();
});

async function world(opts: { rt?: FakeRuntime; clock?: ManualClock; store?: Store; checks?: ProbeChecks } = {}): Promise<World> {
  const clock = opts.clock ?? new ManualClock();
  const rt = opts.rt ?? new FakeRuntime(clock);
  rt.addImage(IMAGE, { cmd: ['sleep', '3600'] });
  const store = opts.store ?? memoryStore();
  if (!opts.store) await store.open();
  const events: EventRecord[] = [];
  const agent = new Agent({
    runtime: rt,
    store,
    clock,
    rng: seededRng(1),
    log: silentLogger(),
    identity: { cluster: CLUSTER, node: 'n1', advertise: '127.0.0.1' },
    watchdogIntervalMs: 30_000,
    record: (e) => events.push(e),
    ...(opts.checks ? { checks: opts.checks } : {}),
  });
  const w = { clock, rt, store, events, agent, abort: new AbortController() };
  worlds.push(w);
  return w;
}

const running = async (w: World, service = 'web') =>
  (await w.rt.list({ [LABEL.cluster]: CLUSTER, [LABEL.service]: service })).filter((c) => c.status === 'running');

async function settle(w: World, ms = 0) {
  await flushMicrotasks(20);
  if (ms) await w.clock.advanceAsync(ms, 50);
  await w.agent.idle();
  await flushMicrotasks(20);
}

describe('Agent on FakeRuntime', () => {
  it('converges the assigned replicas and reports them', async () => {
    const w = await world();
    await w.agent.setAssignments(slotsOf(aSpec({ replicas: 3 })));
    await w.agent.start(w.abort.signal);
    await settle(w);
    expect(await running(w)).toHaveLength(3);
    const reports = await w.agent.observe();
    expect(reports.map((r) => [r.slot, r.state, r.ready, r.restarts])).toEqual([
      [0, 'running', true, 0],
      [1, 'running', true, 0],
      [2, 'running', true, 0],
    ]);
    expect(w.events.filter((e) => e.action === 'container.create' && e.outcome === 'ok')).toHaveLength(3);
  });

  it('never acts before it has assignments: an empty start removes nothing', async () => {
    const first = await world();
    await first.agent.setAssignments(slotsOf(aSpec({ replicas: 2 })));
    await first.agent.start(first.abort.signal);
    await settle(first);
    first.abort.abort();
    first.rt.resetCalls();
    const again = await world({ rt: first.rt, clock: first.clock, store: memoryStore() });
    await again.store.open();
    await again.agent.start(again.abort.signal);
    await settle(again, 60_000);
    expect(again.rt.mutatingCalls()).toBe(0);
    expect(await running(again)).toHaveLength(2);
  });

  it('without assignments, Docker events about its node’s containers make it act on nothing (another agent may own them)', async () => {
    const first = await world();
    await first.agent.setAssignments(slotsOf(aSpec({ replicas: 2 })));
    await first.agent.start(first.abort.signal);
    await settle(first);
    first.abort.abort();
    first.rt.resetCalls();
    const waiting = await world({ rt: first.rt, clock: first.clock, store: memoryStore() });
    await waiting.store.open();
    await waiting.agent.start(waiting.abort.signal);
    await settle(waiting);
    const [victim] = await running(waiting);
    waiting.rt.crash(victim!.id, 137);
    await settle(waiting, 5_000);
    // The crashed container is left as it is (its owner heals it); the other one keeps running.
    expect(waiting.rt.mutatingCalls()).toBe(0);
    expect(await running(waiting)).toHaveLength(1);
  });

  it('adopts what runs after a restart with the same store: no mutating call', async () => {
    const first = await world();
    await first.agent.setAssignments(slotsOf(aSpec({ replicas: 2 })));
    await first.agent.start(first.abort.signal);
    await settle(first);
    first.abort.abort();
    first.rt.resetCalls();
    const again = await world({ rt: first.rt, clock: first.clock, store: first.store });
    await again.agent.start(again.abort.signal); // cached assignments from the store
    await settle(again);
    expect(again.rt.mutatingCalls()).toBe(0);
    expect(await running(again)).toHaveLength(2);
  });

  it('an OOM kill Docker reports after the exit (oom after die, inspect says not OOM-killed) is recorded as one all the same', async () => {
    const w = await world();
    await w.agent.setAssignments(slotsOf(aSpec({ replicas: 1, resources: { memoryBytes: 8 * 1024 * 1024 } })));
    await w.agent.start(w.abort.signal);
    await settle(w);
    const [victim] = await running(w);
    w.rt.crash(victim!.id, 137);
    await settle(w);
    expect((await w.agent.observe())[0]).toMatchObject({ restarts: 1, lastExit: { code: 137, reason: 'Error' } });
    w.rt.lateOom(victim!.id);
    await settle(w);
    const [r] = await w.agent.observe();
    expect(r).toMatchObject({ restarts: 1, lastExit: { code: 137, reason: 'OOMKilled' } });
    const corrected = w.events.filter((e) => e.action === 'slot.update' && e.reason.startsWith('oom-killed'));
    expect(corrected).toHaveLength(1);
    expect(corrected[0]!.message).toMatch(/resources.memory = "8m"/);
    // The replacement still runs, and nothing else was done about the correction.
    expect(await running(w)).toHaveLength(1);
  });

  it('replaces a crashed instance from the die event, with no watchdog', async () => {
    const w = await world();
    await w.agent.setAssignments(slotsOf(aSpec({ replicas: 1 })));
    await w.agent.start(w.abort.signal);
    await settle(w);
    const [victim] = await running(w);
    w.rt.crash(victim!.id, 137);
    await settle(w);
    const now = await running(w);
    expect(now).toHaveLength(1);
    expect(now[0]!.id).not.toBe(victim!.id);
    const [r] = await w.agent.observe();
    expect(r).toMatchObject({ restarts: 1, lastExit: { code: 137, reason: 'Error' } });
  });

  it('follows the crash-loop curve: at once, then 1 s, then 2 s', async () => {
    const w = await world();
    await w.agent.setAssignments(slotsOf(aSpec({ replicas: 1 })));
    await w.agent.start(w.abort.signal);
    await settle(w);
    const gaps: number[] = [];
    for (let i = 0; i < 3; i++) {
      const [victim] = await running(w);
      const crashedAt = w.clock.now();
      w.rt.crash(victim!.id, 1);
      await settle(w);
      let waited = 0;
      while ((await running(w)).length === 0 && waited < 10_000) {
        await w.clock.advanceAsync(100);
        await settle(w);
        waited += 100;
      }
      gaps.push(w.clock.now() - crashedAt);
      if (i < 2) {
        const [r] = await w.agent.observe();
        expect(r?.state).toBe('running');
      }
    }
    expect(gaps).toEqual([0, 1000, 2000]);
  });

  it('shows crashloop with the next retry time while backing off', async () => {
    const w = await world();
    await w.agent.setAssignments(slotsOf(aSpec({ replicas: 1 })));
    await w.agent.start(w.abort.signal);
    await settle(w);
    w.rt.crash((await running(w))[0]!.id, 1);
    await settle(w);
    w.rt.crash((await running(w))[0]!.id, 1);
    await settle(w);
    const [r] = await w.agent.observe();
    expect(r).toMatchObject({ state: 'crashloop', restarts: 1, nextRetryAt: new Date(w.clock.now() + 1000).toISOString() });
  });

  it('recreates a container removed behind its back', async () => {
    const w = await world();
    await w.agent.setAssignments(slotsOf(aSpec({ replicas: 1 })));
    await w.agent.start(w.abort.signal);
    await settle(w);
    const [victim] = await running(w);
    w.rt.removeBehindBack(victim!.id);
    await settle(w);
    expect(await running(w)).toHaveLength(1);
    const [r] = await w.agent.observe();
    expect(r?.lastExit).toMatchObject({ reason: 'Removed', code: null });
  });

  it('removes orphans of its cluster on the watchdog and never touches foreign containers', async () => {
    const w = await world();
    await w.agent.setAssignments(slotsOf(aSpec({ replicas: 1 })));
    await w.agent.start(w.abort.signal);
    await settle(w);
    const base = { image: IMAGE, env: {}, hostIp: '127.0.0.1', init: true, stopGraceSecs: 1 };
    const orphan = await w.rt.create({ ...base, name: 'orphan', labels: { [LABEL.cluster]: CLUSTER } });
    await w.rt.start(orphan);
    const stray = await w.rt.create({ ...base, name: 'stray', labels: { [LABEL.cluster]: CLUSTER, [LABEL.service]: 'gone', [LABEL.instance]: 'gone-1-0-aaaa', [LABEL.slot]: '0', [LABEL.revision]: '1', [LABEL.specHash]: 'x', [LABEL.node]: 'n1' } });
    await w.rt.start(stray);
    const foreign = await w.rt.create({ ...base, name: 'foreign', labels: { [LABEL.cluster]: 'someone-else' } });
    await w.rt.start(foreign);
    const plain = await w.rt.create({ ...base, name: 'plain', labels: {} });
    await w.rt.start(plain);
    await settle(w, 30_000);
    expect(await w.rt.inspect(orphan)).toBeUndefined();
    expect(await w.rt.inspect(stray)).toBeUndefined();
    expect((await w.rt.inspect(foreign))?.status).toBe('running');
    expect((await w.rt.inspect(plain))?.status).toBe('running');
  });

  it('resyncs after the event stream breaks and heals what died meanwhile', async () => {
    const w = await world();
    await w.agent.setAssignments(slotsOf(aSpec({ replicas: 1 })));
    await w.agent.start(w.abort.signal);
    await settle(w);
    w.rt.breakEvents();
    await settle(w);
    const [victim] = await running(w);
    w.rt.crash(victim!.id, 2);
    await settle(w, 2_000);
    expect(await running(w)).toHaveLength(1);
  });

  it('the watchdog lists once per pass at idle, reconciling every service only every watchdogFullEvery-th pass', async () => {
    const w = await world();
    const services = Array.from({ length: 20 }, (_, i) => aSpec({ name: `s${i}`, replicas: 1 }));
    await w.agent.setAssignments(services.flatMap((s) => slotsOf(s)));
    await w.agent.start(w.abort.signal);
    await settle(w);
    expect(await w.rt.list({ [LABEL.cluster]: CLUSTER })).toHaveLength(20);
    const lists: number[] = [];
    for (let pass = 1; pass <= 2 * DEFAULTS.watchdogFullEvery; pass++) {
      w.rt.resetCalls();
      await settle(w, 30_000);
      lists.push(w.rt.calls.list);
    }
    // One listing (the sweep of secret files may add one) per light pass; a full pass lists each service too.
    expect(DEFAULTS.watchdogFullEvery).toBeGreaterThan(1);
    expect(lists.map((n) => (n <= 2 ? 'light' : n >= 21 ? 'full' : n))).toEqual(lists.map((_, i) => ((i + 1) % DEFAULTS.watchdogFullEvery === 0 ? 'full' : 'light')));
    expect(w.rt.mutatingCalls()).toBe(0);
  });

  it('a light watchdog pass still heals what the event stream missed', async () => {
    const w = await world();
    await w.agent.setAssignments([...slotsOf(aSpec({ name: 'web', replicas: 1 })), ...slotsOf(aSpec({ name: 'api', replicas: 1 }))]);
    await w.agent.start(w.abort.signal);
    await settle(w);
    w.rt.muteEvents(true);
    const [victim] = await running(w, 'web');
    w.rt.crash(victim!.id, 2);
    await settle(w, 1_000);
    expect(await running(w, 'web')).toHaveLength(0); // no event: nothing noticed yet
    w.rt.resetCalls();
    await settle(w, 30_000); // the first watchdog pass: a light one
    expect(await running(w, 'web')).toHaveLength(1);
    // Only the changed service was reconciled: its own listing(s), none for api.
    expect(w.rt.calls.list).toBeLessThanOrEqual(5);
    expect(await running(w, 'api')).toHaveLength(1);
  });

  it('retries a failed action with backoff and converges', async () => {
    const w = await world();
    w.rt.failNext('create');
    await w.agent.setAssignments(slotsOf(aSpec({ replicas: 1 })));
    await w.agent.start(w.abort.signal);
    await settle(w, 1_000);
    expect(await running(w)).toHaveLength(1);
    expect(w.events.some((e) => e.action === 'container.create' && e.outcome.startsWith('error'))).toBe(true);
  });

  it('a new spec replaces instances start-first; scaling does not', async () => {
    const w = await world();
    const spec = aSpec({ replicas: 2 });
    await w.agent.setAssignments(slotsOf(spec));
    await w.agent.start(w.abort.signal);
    await settle(w);
    const before = (await running(w)).map((c) => c.id).sort();
    await w.agent.setAssignments(slotsOf({ ...spec, replicas: 3 }, 2));
    await settle(w);
    const scaled = (await running(w)).map((c) => c.id);
    expect(scaled).toHaveLength(3);
    expect(before.every((id) => scaled.includes(id))).toBe(true);
    await w.agent.setAssignments(slotsOf({ ...spec, replicas: 3, env: { V: '2' } }, 3));
    await settle(w);
    const after = await running(w);
    expect(after).toHaveLength(3);
    expect(after.every((c) => c.labels[LABEL.revision] === '3')).toBe(true);
  });
});

describe('Agent slot memory', () => {
  it('forgets a scaled-away slot, so scaling up again is not counted as a failure', async () => {
    const w = await world();
    const spec = aSpec({ replicas: 2 });
    await w.agent.setAssignments(slotsOf(spec));
    await w.agent.start(w.abort.signal);
    await settle(w);
    await w.agent.setAssignments(slotsOf({ ...spec, replicas: 1 }, 2));
    await settle(w);
    expect(await running(w)).toHaveLength(1);
    await w.agent.setAssignments(slotsOf({ ...spec, replicas: 2 }, 3));
    await settle(w);
    expect(await running(w)).toHaveLength(2);
    expect(w.events.filter((e) => e.action === 'slot.update' && e.reason.includes('removed'))).toEqual([]);
    const reports = await w.agent.observe();
    expect(reports.map((r) => r.restarts)).toEqual([0, 0]);
  });
});

describe('Agent: a missing image is a terminal error', () => {
  it('shows "image … not found on node n1" in the report, retries slowly, and recovers once the image exists', async () => {
    const w = await world();
    await w.agent.setAssignments(slotsOf(aSpec({ image: 'nosuch/image:1', replicas: 1 })));
    await w.agent.start(w.abort.signal);
    await settle(w, 1_000);
    const [r] = await w.agent.observe();
    expect(r).toMatchObject({ state: 'pending', containerId: null });
    expect(r?.error).toMatch(/^image nosuch\/image:1 not found on node n1/);
    const attempts = () => w.events.filter((e) => e.action === 'container.create' && e.outcome === 'error: ORCA_IMAGE_MISSING').length;
    const first = attempts();
    expect(first).toBeGreaterThanOrEqual(1);
    // Not every second: nothing more for well under the slow retry period…
    await settle(w, 20_000);
    expect(attempts()).toBe(first);
    // …but again after it (the slow retry and the 30 s watchdog pass may both land there).
    await settle(w, 11_000);
    expect(attempts()).toBeGreaterThan(first);
    expect(attempts()).toBeLessThanOrEqual(first + 2);
    // Someone builds the image: the next try creates the instance and the error is gone.
    w.rt.addImage('nosuch/image:1', { cmd: ['sleep', '3600'] });
    await settle(w, 31_000);
    expect(await running(w)).toHaveLength(1);
    expect((await w.agent.observe())[0]?.error ?? null).toBeNull();
  });
});

describe('Agent: port and image', () => {
  it('warns once when the service port is not among the ports the image exposes', async () => {
    const w = await world();
    w.rt.addImage('exposes:1', { cmd: ['sleep', '3600'], exposedPorts: [80] });
    await w.agent.setAssignments(slotsOf(aSpec({ name: 'web', image: 'exposes:1', port: 8081, replicas: 2 })));
    await w.agent.start(w.abort.signal);
    await settle(w, 500);
    const warnings = w.events.filter((e) => e.action === 'image.port-check');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ service: 'web', outcome: 'warning', reason: 'port-not-exposed' });
    expect(warnings[0]?.message).toMatch(/port 8081 is not among the ports image exposes:1 exposes \(80\)/);
  });

  it('says nothing when the port is exposed, or the image exposes nothing', async () => {
    const w = await world();
    w.rt.addImage('exposes:1', { cmd: ['sleep', '3600'], exposedPorts: [80] });
    await w.agent.setAssignments([...slotsOf(aSpec({ name: 'a', image: 'exposes:1', port: 80 })), ...slotsOf(aSpec({ name: 'b', port: 8081 }))]);
    await w.agent.start(w.abort.signal);
    await settle(w, 500);
    expect(w.events.filter((e) => e.action === 'image.port-check')).toEqual([]);
  });
});

describe('Agent health (the health controller wired to the container controller)', () => {
  /** Probe answers decided by the test, per instance ("ok" unless set). */
  function scriptedChecks() {
    const failing = new Set<string>();
    const answer = async (containerId: string) => (failing.has(containerId) ? { ok: false, detail: 'HTTP 503' } : { ok: true, detail: 'HTTP 200' });
    let lastContainer = '';
    const checks: ProbeChecks = {
      http: async () => answer(lastContainer),
      tcp: async (_h, _p, _t, inside) => answer(inside?.containerId ?? lastContainer),
      exec: async (id) => answer(id),
    };
    return { checks, failing, use: (id: string) => (lastContainer = id) };
  }
  const probe = (over: Partial<ProbeSpec> = {}): ProbeSpec => ({ check: { kind: 'tcp' }, intervalSecs: 1, timeoutSecs: 1, failureThreshold: 2, successThreshold: 1, initialDelaySecs: 0, ...over });

  it('readiness decides the endpoints: ready after a pass, out after failure_threshold failures, recorded as health events', async () => {
    const c = scriptedChecks();
    const w = await world({ checks: c.checks });
    await w.agent.setAssignments(slotsOf(aSpec({ port: 80, readiness: probe() })));
    await w.agent.start(w.abort.signal);
    await settle(w, 200);
    const [ctr] = await running(w);
    expect(w.agent.endpoints()).toEqual([expect.objectContaining({ service: 'web', instance: ctr!.labels[LABEL.instance] })]);
    c.failing.add(ctr!.id);
    await settle(w, 2_100);
    expect(w.agent.endpoints()).toEqual([]);
    expect(await running(w)).toHaveLength(1); // not ready is not dead
    const health = w.events.filter((e) => e.reconciler === 'health').map((e) => [e.action, e.reason, e.message]);
    expect(health).toEqual([
      ['instance.ready', 'readiness-passed', 'HTTP 200'],
      ['instance.unready', 'readiness-failed', 'HTTP 503'],
    ]);
  });

  it('a liveness failure replaces the instance through the container controller', async () => {
    const c = scriptedChecks();
    const w = await world({ checks: c.checks });
    await w.agent.setAssignments(slotsOf(aSpec({ port: 80, liveness: probe({ check: { kind: 'exec', command: ['true'] } }) })));
    await w.agent.start(w.abort.signal);
    await settle(w, 200);
    const [victim] = await running(w);
    c.failing.add(victim!.id);
    await settle(w, 2_100);
    await settle(w, 100);
    const now = await running(w);
    expect(now).toHaveLength(1);
    expect(now[0]!.id).not.toBe(victim!.id);
    const failed = w.events.find((e) => e.action === 'instance.liveness-failed');
    expect(failed).toMatchObject({ reconciler: 'health', reason: 'liveness', instance: victim!.labels[LABEL.instance], message: 'exec true failed 2 times: HTTP 503' });
    const [r] = await w.agent.observe();
    expect(r).toMatchObject({ restarts: 1 });
  });
});
