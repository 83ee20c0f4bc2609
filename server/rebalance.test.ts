import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { ManualClock } from '../core/clock.js';
import { createLogger } from '../core/log.js';
import { isOrcaError } from '../core/errors.js';
import { memoryStore } from '../store/index.js';
import type { EventRecord, ServiceRecord } from '../store/types.js';
import type { InstanceReport } from '../protocol/reports.js';
import type { SlotAssignment } from '../controllers/container/types.js';
import { NodeExecutor } from '../controllers/node/executor.js';
import { aSpec } from '../test/builders.js';
import { ControlPlane } from './control-plane.js';
import { EventLog } from './event-log.js';
import { SecretStore } from './secrets.js';
import type { NodeLink, NodeState } from './nodes.js';
import { applyAsks, REBALANCE, rolloutRespread, placedHashes, type RebalanceProgress } from './rebalance.js';

const record = (name: string, over: Partial<ServiceRecord> = {}, spec: Parameters<typeof aSpec>[0] = {}): ServiceRecord => ({
  name,
  revision: 1,
  spec: aSpec({ name, ...spec }),
  specHash: 'h',
  createdAt: '',
  updatedAt: '',
  ...over,
});
const ready = (name: string) => ({ name, labels: {}, schedulable: true, keepsSlots: true });

describe('applyAsks (pure)', () => {
  const web = record('web', {}, { replicas: 2 });
  const input = {
    services: [web],
    nodes: [ready('n1'), ready('n2')],
    placement: new Map([
      ['web/0', 'n1'],
      ['web/1', 'n1'],
    ]),
    homes: new Map<string, string>(),
    stateOf: (): NodeState => 'ready',
  };

  it('a spread ask makes the first spread move, lingering on the node it leaves, reason rebalance', () => {
    const r = applyAsks([{ kind: 'spread', services: null }], input);
    expect(r.made).toEqual([{ key: 'web/1', from: 'n1', to: 'n2' }]);
    expect([...r.previous]).toEqual([
      ['web/0', 'n1'],
      ['web/1', 'n2'],
    ]);
    expect(r.actions).toEqual([
      { kind: 'slot.reschedule', key: 'web/1', reason: 'rebalance', message: 'web/1 from n1 (ready) to n2', service: 'web', from: 'n1', to: 'n2', linger: true },
    ]);
    expect([...input.placement.values()]).toEqual(['n1', 'n1']);
  });

  it('nothing to move, or a service not asked for: no move', () => {
    expect(applyAsks([{ kind: 'spread', services: new Set(['api']) }], input).made).toEqual([null]);
    const spread = { ...input, placement: new Map([...input.placement, ['web/1', 'n2']]) };
    expect(applyAsks([{ kind: 'spread', services: null }], spread)).toMatchObject({ made: [null], actions: [] });
  });

  it('a move back puts the slot where it was, without lingering where its new instance failed', () => {
    const moved = { ...input, placement: new Map([...input.placement, ['web/1', 'n2']]) };
    const r = applyAsks([{ kind: 'back', key: 'web/1', from: 'n1', to: 'n2', why: 'not ready' }], moved);
    expect(r.made).toEqual([{ key: 'web/1', from: 'n2', to: 'n1' }]);
    expect(r.previous.get('web/1')).toBe('n1');
    expect(r.actions).toEqual([
      { kind: 'slot.reschedule', key: 'web/1', reason: 'rebalance', message: 'web/1 back from n2 to n1: not ready', service: 'web', from: 'n2', to: 'n1', linger: false },
    ]);
    // Placed elsewhere meanwhile, or its old node is not ready any more: left alone.
    expect(applyAsks([{ kind: 'back', key: 'web/1', from: 'n1', to: 'n3', why: '' }], moved).made).toEqual([null]);
    expect(applyAsks([{ kind: 'back', key: 'web/1', from: 'n1', to: 'n2', why: '' }], { ...moved, nodes: [{ ...ready('n1'), schedulable: false }, ready('n2')] }).made).toEqual([null]);
  });
});

describe('rolloutRespread (pure)', () => {
  it('names the services whose instance hash changed since they were placed; not new ones, deleted ones or a scale', () => {
    const v1 = record('web', {}, { replicas: 2 });
    const placed = placedHashes([v1, record('api')]);
    expect(rolloutRespread([v1, record('api')], placed)).toEqual(new Set());
    const v2 = record('web', { revision: 2 }, { replicas: 2, env: { V: '2' } });
    const scaled = record('api', { revision: 2 }, { replicas: 3 });
    expect(rolloutRespread([v2, scaled, record('new')], placed)).toEqual(new Set(['web']));
    expect(rolloutRespread([{ ...v2, deletedAt: 'x' }], placed)).toEqual(new Set());
  });
});

/**
 * A node as the control plane sees it, with a tiny agent behind it: an assigned slot gets an
 * instance of its spec hash at once (ready unless the node is `broken`); an instance whose slot
 * is no longer assigned is gone at once. Like the real server's onState, a change of what it
 * reports triggers a scheduling pass while slots linger.
 */
class FakeNode implements NodeLink {
  nodeState: NodeState = 'ready';
  broken = false;
  sets: SlotAssignment[][] = [];
  private running = new Map<string, { id: string; revision: number; specHash: string; ready: boolean }>();
  private assigned: SlotAssignment[] = [];
  private seq = 0;
  onChange: () => void = () => undefined;

  constructor(readonly name: string) {}
  labels = () => ({});
  capacity = () => ({});
  state = () => this.nodeState;
  address = () => '127.0.0.1';
  lastHeartbeat = () => '';
  allowHostPaths = () => [];
  protocol = () => 2;
  endpoints = () => [];
  volumes = async () => ({ volumes: [], stale: false });
  removeVolumes = async () => ({ removed: [], failed: [] });
  containers = async () => [];
  // eslint-disable-next-line require-yield
  async *logs(): AsyncIterable<string> {
    return;
  }
  observe = async () => this.lastReports();

  async setAssignments(list: SlotAssignment[]): Promise<void> {
    const before = JSON.stringify(this.lastReports());
    this.sets.push(list);
    this.assigned = list;
    this.converge();
    if (JSON.stringify(this.lastReports()) !== before) setImmediate(() => this.onChange());
  }

  /** The agent's container reconciler, in one step. */
  converge(): void {
    const keys = new Set(this.assigned.map((a) => `${a.service}/${a.slot}`));
    for (const k of [...this.running.keys()]) if (!keys.has(k)) this.running.delete(k);
    for (const a of this.assigned) {
      const k = `${a.service}/${a.slot}`;
      const r = this.running.get(k);
      if (r?.specHash === a.specHash) continue;
      this.running.set(k, { id: `${a.service}-${a.revision}-${a.slot}-${this.name}${++this.seq}`, revision: a.revision, specHash: a.specHash, ready: !this.broken });
    }
  }

  lastReports(): InstanceReport[] {
    const byKey = new Map(this.assigned.map((a) => [`${a.service}/${a.slot}`, a]));
    return [...this.running].map(([k, r]) => ({
      id: r.id,
      service: k.slice(0, k.lastIndexOf('/')),
      slot: Number(k.slice(k.lastIndexOf('/') + 1)),
      revision: r.revision,
      specHash: r.specHash,
      node: this.name,
      state: 'running' as const,
      ready: r.ready,
      restarts: 0,
      lastExit: null,
      containerId: `c-${r.id}`,
      address: null,
      nextRetryAt: null,
      startedAt: null,
      current: byKey.get(k)?.specHash === r.specHash,
      rolloutFailed: null,
    }));
  }

  /** Slots (`service/slot@revision`) this node runs. */
  runs(): string[] {
    return [...this.running].map(([k, r]) => `${k}@${r.revision}`).sort();
  }
}

const manifest = (name: string, extra = '') => ({ file: `${name}.toml`, text: `[[service]]\nname = "${name}"\nimage = "img:1"\n${extra}` });

async function setup(names = ['n1', 'n2']) {
  const store = memoryStore();
  await store.open();
  const log = createLogger({ destination: new PassThrough(), pretty: false, level: 'debug' });
  const clock = new ManualClock();
  const events = new EventLog(store, log);
  const secrets = await SecretStore.open(store, randomBytes(32), '/data/cluster.key');
  const nodes = names.map((n) => new FakeNode(n));
  let cp!: ControlPlane;
  const executor = new NodeExecutor({
    clock,
    log,
    setState: () => undefined,
    linger: (key, from) => cp.linger(key, from),
    record: (e) => events.record(e),
    onNodeStateChanged: () => undefined,
    onSchedulingChanged: () => undefined,
  });
  cp = new ControlPlane({ store, clock, log, events, secrets, nodes: () => nodes, reschedule: (a) => executor.execute(a) });
  await cp.load();
  /** A new control plane over the same store and nodes (a restarted server). */
  const restart = async () => {
    cp = new ControlPlane({ store, clock, log, events, secrets, nodes: () => nodes, reschedule: (a) => executor.execute(a) });
    await cp.load();
    await cp.publish();
    return cp;
  };
  for (const n of nodes) n.onChange = () => void (cp.hasLingering() ? cp.publish() : undefined);
  const node = (name: string) => nodes.find((n) => n.name === name)!;
  /** Takes these nodes down, then back: their slots move to the others and stay there. */
  const bounce = async (...names: string[]) => {
    for (const n of names) node(n).nodeState = 'down';
    await cp.publish();
    for (const n of names) node(n).nodeState = 'ready';
    await cp.publish();
  };
  const settle = async () => {
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
  };
  /** Runs a promise to its end while the manual clock moves on in steps. */
  const drive = async <T>(p: Promise<T>, stepMs: number = REBALANCE.pollMs): Promise<T> => {
    let done = false;
    const out = p.finally(() => (done = true));
    for (let i = 0; i < 10_000 && !done; i++) {
      await settle();
      clock.advance(stepMs);
    }
    return out;
  };
  const evs = async (): Promise<EventRecord[]> => {
    await events.drain();
    return store.listEvents({ limit: 1000 });
  };
  return { cp, store, clock, nodes, node, bounce, settle, drive, evs, restart };
}

describe('ControlPlane: a rollout spreads replicas again after a node came back', () => {
  it('the moved slot starts on the returned node with the new revision while the old one keeps serving where it was, then goes', async () => {
    const { cp, node, bounce, settle, evs } = await setup();
    await cp.apply([manifest('web', 'replicas = 2')], false);
    expect([node('n1').runs(), node('n2').runs()]).toEqual([['web/0@1'], ['web/1@1']]);
    await bounce('n2');
    expect([node('n1').runs(), node('n2').runs()]).toEqual([['web/0@1', 'web/1@1'], []]);

    // The new revision: web/1 starts on n2, and n1 keeps running revision 1 of it meanwhile.
    const broken = node('n2');
    broken.broken = true;
    await cp.apply([manifest('web', 'replicas = 2\nenv = { V = "2" }')], false);
    const n1Set = node('n1').sets.at(-1)!.map((a) => `${a.service}/${a.slot}@${a.revision}`);
    expect(n1Set).toEqual(['web/0@2', 'web/1@1']);
    expect(node('n2').sets.at(-1)!.map((a) => `${a.service}/${a.slot}@${a.revision}`)).toEqual(['web/1@2']);
    expect(node('n1').runs()).toEqual(['web/0@2', 'web/1@1']);
    expect(node('n2').runs()).toEqual(['web/1@2']);

    // Ready on n2: the old instance on n1 goes.
    broken.broken = false;
    broken.converge();
    (broken as unknown as { running: Map<string, { ready: boolean }> }).running.forEach((r) => (r.ready = true));
    await cp.publish();
    await settle();
    expect([node('n1').runs(), node('n2').runs()]).toEqual([['web/0@2'], ['web/1@2']]);
    expect(cp.hasLingering()).toBe(false);

    const moves = (await evs()).filter((e) => e.action === 'slot.reschedule' && e.reason === 'rollout');
    expect(moves).toEqual([expect.objectContaining({ service: 'web', node: 'n2', message: 'web/1 from n1 (ready) to n2', outcome: 'ok' })]);
  });

  it('a new revision that replaces no instance (a scale) moves nothing that runs', async () => {
    const { cp, node, bounce } = await setup();
    await cp.apply([manifest('web', 'replicas = 2')], false);
    await bounce('n2');
    await cp.apply([manifest('web', 'replicas = 3')], false);
    expect([node('n1').runs(), node('n2').runs()]).toEqual([['web/0@1', 'web/1@1'], ['web/2@2']]);
  });

  it('a moved slot stays moved: later passes keep it; a restarted control plane still spreads the next rollout', async () => {
    const { cp, node, bounce, store, restart } = await setup();
    await cp.apply([manifest('web', 'replicas = 2'), manifest('api', 'replicas = 2')], false);
    await bounce('n2');
    await cp.apply([manifest('web', 'replicas = 2\nenv = { V = "2" }'), manifest('api', 'replicas = 2')], false);
    await cp.publish();
    await cp.publish();
    expect([node('n1').runs(), node('n2').runs()]).toEqual([['api/0@1', 'api/1@1', 'web/0@2'], ['web/1@2']]);
    expect(await store.getKv('placement-hashes')).toEqual({ api: expect.any(String), web: expect.any(String) });

    // Restarted, the control plane moves nothing; api's next rollout is spread as well.
    const cp2 = await restart();
    expect([node('n1').runs(), node('n2').runs()]).toEqual([['api/0@1', 'api/1@1', 'web/0@2'], ['web/1@2']]);
    await cp2.apply([manifest('web', 'replicas = 2\nenv = { V = "2" }'), manifest('api', 'replicas = 2\nenv = { V = "2" }')], false);
    await cp2.publish();
    expect([node('n1').runs(), node('n2').runs()]).toEqual([['api/0@2', 'web/0@2'], ['api/1@2', 'web/1@2']]);
  });
});

/** Watches every set sent: returns how many slots were, at most, assigned to two nodes at once. */
function watchDoubles(nodes: FakeNode[]): () => number {
  let most = 0;
  for (const n of nodes) {
    const send = n.setAssignments.bind(n);
    n.setAssignments = async (list) => {
      await send(list);
      const keys = nodes.flatMap((x) => (x.sets.at(-1) ?? []).map((a) => `${a.service}/${a.slot}`));
      most = Math.max(most, keys.length - new Set(keys).size);
    };
  }
  return () => most;
}

describe('ControlPlane.rebalance', () => {
  const collect = () => {
    const lines: RebalanceProgress[] = [];
    return { lines, progress: async (p: RebalanceProgress) => void lines.push(p) };
  };

  it('moves one replica at a time, start-first, until every service is spread; records each move with reason rebalance', async () => {
    const { cp, node, nodes, bounce, drive, evs } = await setup(['n1', 'n2', 'n3']);
    await cp.apply([manifest('web', 'replicas = 3'), manifest('api', 'replicas = 2')], false);
    await bounce('n2', 'n3');
    expect(node('n1').runs()).toEqual(['api/0@1', 'api/1@1', 'web/0@1', 'web/1@1', 'web/2@1']);

    const { lines, progress } = collect();
    const mostAtOnce = watchDoubles(nodes);
    const last = await drive(cp.rebalance(undefined, new AbortController().signal, progress));
    expect(last).toEqual({ event: 'done', moves: 3, stay: [] });
    expect(lines.map((l) => (l.event === 'done' ? 'done' : `${l.event} ${l.service}/${l.slot} ${l.from}→${l.to}`))).toEqual([
      'moving api/1 n1→n2',
      'moved api/1 n1→n2',
      'moving web/1 n1→n2',
      'moved web/1 n1→n2',
      'moving web/2 n1→n3',
      'moved web/2 n1→n3',
      'done',
    ]);
    expect([node('n1').runs(), node('n2').runs(), node('n3').runs()]).toEqual([['api/0@1', 'web/0@1'], ['api/1@1', 'web/1@1'], ['web/2@1']]);
    // One at a time: never more than one slot assigned to two nodes at once (the one moving).
    expect(mostAtOnce()).toBe(1);

    const ev = await evs();
    expect(ev.filter((e) => e.reason === 'rebalance' && e.action === 'slot.reschedule').map((e) => e.message)).toEqual([
      'api/1 from n1 (ready) to n2',
      'web/1 from n1 (ready) to n2',
      'web/2 from n1 (ready) to n3',
    ]);
    expect(ev.filter((e) => e.action === 'rebalance.move').map((e) => [e.outcome, e.message])).toEqual([
      ['ok', 'api/1 from n1 to n2'],
      ['ok', 'web/1 from n1 to n2'],
      ['ok', 'web/2 from n1 to n3'],
    ]);

    // Spread now: a second rebalance does nothing, and later passes keep every moved slot.
    const again = collect();
    expect(await drive(cp.rebalance(undefined, new AbortController().signal, again.progress))).toEqual({ event: 'done', moves: 0, stay: [] });
    expect(again.lines).toHaveLength(1);
    await cp.publish();
    expect([node('n1').runs(), node('n2').runs(), node('n3').runs()]).toEqual([['api/0@1', 'web/0@1'], ['api/1@1', 'web/1@1'], ['web/2@1']]);
  });

  it('rebalances only the service named', async () => {
    const { cp, node, bounce, drive } = await setup();
    await cp.apply([manifest('web', 'replicas = 2'), manifest('api', 'replicas = 2')], false);
    await bounce('n2');
    const { progress } = collect();
    expect(await drive(cp.rebalance('web', new AbortController().signal, progress))).toEqual({ event: 'done', moves: 1, stay: [] });
    expect([node('n1').runs(), node('n2').runs()]).toEqual([['api/0@1', 'api/1@1', 'web/0@1'], ['web/1@1']]);
  });

  it('leaves slots with volumes where their data is, and says so', async () => {
    const { cp, node, drive } = await setup();
    node('n2').nodeState = 'draining';
    await cp.apply([manifest('db', 'replicas = 2\nvolumes = { data = "/data" }')], false);
    node('n2').nodeState = 'ready';
    await cp.publish();
    expect(node('n1').runs()).toEqual(['db/0@1', 'db/1@1']);
    const { lines, progress } = collect();
    expect(await drive(cp.rebalance(undefined, new AbortController().signal, progress))).toEqual({ event: 'done', moves: 0, stay: ['db'] });
    expect(lines).toHaveLength(1);
    expect(node('n1').runs()).toEqual(['db/0@1', 'db/1@1']);
  });

  it('a new instance never ready: the slot is put back where it kept serving, and the rebalance stops (failed)', async () => {
    const { cp, node, bounce, drive, evs, clock } = await setup();
    await cp.apply([manifest('web', 'replicas = 2\n[service.deploy]\nready_timeout_secs = 2')], false);
    await bounce('n2');
    node('n2').broken = true;
    const { lines, progress } = collect();
    const t0 = clock.now();
    const last = await drive(cp.rebalance(undefined, new AbortController().signal, progress), 500);
    expect(last).toMatchObject({ event: 'failed', service: 'web', slot: 1, from: 'n1', to: 'n2', movedBack: true });
    expect(last.event === 'failed' && last.reason).toMatch(/^its new instance on n2 was not ready within 12 s .*; put back on n1, which kept serving it$/);
    expect(clock.now() - t0).toBeGreaterThanOrEqual(2_000 + REBALANCE.readySlackMs);
    expect(lines.map((l) => l.event)).toEqual(['moving', 'failed']);
    // n1 ran web/1 all along; n2's instance that never got ready is gone.
    expect([node('n1').runs(), node('n2').runs()]).toEqual([['web/0@1', 'web/1@1'], []]);
    expect(cp.hasLingering()).toBe(false);
    const ev = await evs();
    expect(ev.filter((e) => e.action === 'rebalance.move').map((e) => e.outcome)).toEqual(['moved-back']);
    expect(ev.filter((e) => e.action === 'slot.reschedule' && e.reason === 'rebalance').map((e) => e.message)).toEqual([
      'web/1 from n1 (ready) to n2',
      expect.stringMatching(/^web\/1 back from n2 to n1: its new instance on n2 was not ready/),
    ]);
  });

  it('an unknown service is ORCA_NOT_FOUND, a second rebalance at once ORCA_CONFLICT; neither moves anything', async () => {
    const { cp, bounce, drive, node } = await setup();
    await cp.apply([manifest('web', 'replicas = 2')], false);
    await bounce('n2');
    const never = async () => {
      throw new Error('no progress expected');
    };
    const err = await cp.rebalance('nope', new AbortController().signal, never).catch((e: unknown) => e);
    expect(isOrcaError(err) && err.code).toBe('ORCA_NOT_FOUND');
    expect((err as Error).message).toBe('service "nope" not found');

    node('n2').broken = true;
    const abort = new AbortController();
    const first = cp.rebalance(undefined, abort.signal, async () => undefined);
    const second = await cp.rebalance(undefined, new AbortController().signal, never).catch((e: unknown) => e);
    expect(isOrcaError(second) && second.code).toBe('ORCA_CONFLICT');
    abort.abort();
    expect(await drive(first)).toMatchObject({ event: 'done', moves: 0, stopped: expect.stringContaining('completes on its own') });
  });
});
