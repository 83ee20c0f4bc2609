import { describe, expect, it } from 'vitest';
import { ManualClock, flushMicrotasks } from '../core/clock.js';
import { OrcaError } from '../core/errors.js';
import { silentLogger } from '../core/log.js';
import type { ContainerSpec, Runtime } from '../runtime/types.js';
import type { EventRecord } from '../store/types.js';
import { aSpec, slotsOf } from '../test/builders.js';
import type { Action } from './actions.js';
import { freshSlotState, type SlotState } from './container/types.js';
import { Executor, type LifecycleHooks } from './executor.js';
import { FakeRuntime } from '../runtime/fake-runtime.js';
import { LABEL } from '../runtime/labels.js';

/**
 * A runtime that writes down what it was asked, in order (`stop>a` when a call begins, `stop<a`
 * when it ends, `stop!a` when it fails), and whose calls can be held open or made to fail.
 */
class ScriptedRuntime {
  readonly calls: string[] = [];
  private readonly holds = new Map<string, { promise: Promise<void>; release: () => void }>();
  private readonly failures = new Map<string, Error>();

  /** The next `op` on `id` waits until the returned function is called. */
  hold(op: string, id: string): () => void {
    let release!: () => void;
    const promise = new Promise<void>((r) => (release = r));
    this.holds.set(`${op}:${id}`, { promise, release });
    return release;
  }

  fail(op: string, id: string, err: Error): void {
    this.failures.set(`${op}:${id}`, err);
  }

  private async call(op: string, id: string): Promise<void> {
    this.calls.push(`${op}>${id}`);
    const held = this.holds.get(`${op}:${id}`);
    if (held) await held.promise;
    const err = this.failures.get(`${op}:${id}`);
    if (err) {
      this.calls.push(`${op}!${id}`);
      throw err;
    }
    this.calls.push(`${op}<${id}`);
  }

  readonly runtime = {
    create: async (spec: ContainerSpec) => (await this.call('create', spec.name), `cid-${spec.name}`),
    start: (id: string) => this.call('start', id),
    stop: (id: string) => this.call('stop', id),
    remove: (id: string) => this.call('remove', id),
    // The cluster network is there already (creating it is FakeRuntime's test below).
    ensureNetwork: async () => false,
  } as unknown as Runtime;
}

const assignment = slotsOf(aSpec({ replicas: 2 }), 3)[0]!;
const slot = (o: Partial<SlotState> = {}): SlotState => ({ ...freshSlotState('web', 0), ...o });

const stop = (instance: string): Action => ({ kind: 'container.stop', key: `stop:${instance}`, reason: 'scale-down', service: 'web', instance, containerId: instance, graceSecs: 1 });
const remove = (instance: string): Action => ({ kind: 'container.remove', key: `remove:${instance}`, reason: 'scale-down', service: 'web', instance, containerId: instance });
const create = (instance: string): Action => ({
  kind: 'container.create',
  key: `create:${instance}`,
  reason: 'missing-replica',
  service: 'web',
  instance,
  slot: 0,
  assignment,
  slotAfter: slot({ currentInstance: instance }),
});

function setup() {
  const clock = new ManualClock(Date.parse('2026-01-01T00:00:00.000Z'));
  const rt = new ScriptedRuntime();
  const events: EventRecord[] = [];
  const saved: string[] = [];
  const life: string[] = [];
  const lifecycle: LifecycleHooks = {
    creating: (a) => life.push(`creating:${a.instance}`),
    created: (i, id) => life.push(`created:${i}:${id}`),
    createFailed: (i, e) => life.push(`createFailed:${i}:${e}`),
    started: (i) => life.push(`started:${i}`),
    stopping: (i, reason) => life.push(`stopping:${i}:${reason}`),
    removed: (i) => life.push(`removed:${i}`),
  };
  const executor = new Executor({
    runtime: rt.runtime,
    clock,
    log: silentLogger(),
    identity: { cluster: 'test', node: 'n1', advertise: '127.0.0.1' },
    saveSlot: async (s) => {
      saved.push(`${s.service}/${s.slot}:${s.currentInstance ?? '-'}`);
      rt.calls.push(`save>${s.currentInstance ?? '-'}`);
    },
    record: (e) => events.push(e),
    lifecycle,
  });
  return { clock, rt, events, saved, life, executor };
}

describe('Executor', () => {
  it('creates the cluster network before the first container (recorded once) and the container on it with its aliases and orca.internal', async () => {
    const clock = new ManualClock(Date.parse('2026-01-01T00:00:00.000Z'));
    const rt = new FakeRuntime(clock);
    rt.addImage(assignment.spec.image, { cmd: ['sleep', '3600'] });
    const events: EventRecord[] = [];
    const executor = new Executor({
      runtime: rt,
      clock,
      log: silentLogger(),
      identity: { cluster: 'test', node: 'n1', advertise: '127.0.0.1' },
      saveSlot: async () => undefined,
      record: (e) => events.push(e),
    });
    expect(await executor.execute('container', [create('web-3-0-aaaa')])).toEqual({ applied: 1 });
    expect(await executor.execute('container', [create('web-3-0-bbbb')])).toEqual({ applied: 1 });
    expect(rt.networksCreated).toBe(1);
    const net = await rt.inspectNetwork('orca-test');
    expect(net).toMatchObject({ driver: 'bridge', labels: { [LABEL.cluster]: 'test' } });
    expect(net?.containers).toHaveLength(2);
    const [first] = await rt.list({ [LABEL.instance]: 'web-3-0-aaaa' });
    expect(rt.networksOf(first!.id)).toEqual({ 'orca-test': ['web', 'web-3-0-aaaa'] });
    expect(rt.specOf(first!.id)?.gatewayHosts).toEqual(['orca.internal']);
    expect(events.filter((e) => e.reconciler === 'network')).toEqual([
      expect.objectContaining({ action: 'network.create', reason: 'missing-before-create', outcome: 'ok', node: 'n1', service: null }),
    ]);
  });

  it('makes the slot volume labelled before the first create (recorded once); a replacement of the slot mounts it and finds its data', async () => {
    const clock = new ManualClock(Date.parse('2026-01-01T00:00:00.000Z'));
    const rt = new FakeRuntime(clock);
    const [db] = slotsOf(aSpec({ name: 'db', volumes: { data: '/data' } }), 2);
    rt.addImage(db!.spec.image, { cmd: ['sleep', '3600'] });
    const events: EventRecord[] = [];
    const executor = new Executor({ runtime: rt, clock, log: silentLogger(), identity: { cluster: 'test', node: 'n1', advertise: '127.0.0.1' }, saveSlot: async () => undefined, record: (e) => events.push(e) });
    const createDb = (instance: string): Action => ({ ...create(instance), service: 'db', assignment: db!, slotAfter: { ...freshSlotState('db', 0), currentInstance: instance } } as Action);
    expect(await executor.execute('container', [createDb('db-2-0-aaaa')])).toEqual({ applied: 1 });
    const [vol] = await rt.listVolumes({ [LABEL.cluster]: 'test' });
    expect(vol).toMatchObject({ name: 'orca-test-db-data-0', labels: { [LABEL.service]: 'db', [LABEL.volume]: 'data', [LABEL.slot]: '0', [LABEL.node]: 'n1' } });
    const [first] = await rt.list({ [LABEL.instance]: 'db-2-0-aaaa' });
    await rt.exec(first!.id, ['sh', '-c', 'echo 41 > /data/count'], 1000);
    await rt.crash(first!.id, 137);
    await rt.remove(first!.id);
    expect(await executor.execute('container', [createDb('db-2-0-bbbb')])).toEqual({ applied: 1 });
    const [second] = await rt.list({ [LABEL.instance]: 'db-2-0-bbbb' });
    expect((await rt.exec(second!.id, ['cat', '/data/count'], 1000)).output).toBe('41\n');
    expect(rt.volumeNames()).toEqual(['orca-test-db-data-0']);
    expect(events.filter((e) => e.action === 'volume.create')).toEqual([expect.objectContaining({ service: 'db', outcome: 'ok', node: 'n1', message: 'volume orca-test-db-data-0' })]);
  });

  it('refuses a host mount outside the allowed directories: an error event, no container, no volume', async () => {
    const clock = new ManualClock(Date.parse('2026-01-01T00:00:00.000Z'));
    const rt = new FakeRuntime(clock);
    const [web] = slotsOf(aSpec({ volumes: { data: '/data' }, mounts: [{ host: '/etc', path: '/host-etc', readOnly: true }] }));
    rt.addImage(web!.spec.image, { cmd: ['sleep', '3600'] });
    const events: EventRecord[] = [];
    const executor = new Executor({
      runtime: rt,
      clock,
      log: silentLogger(),
      identity: { cluster: 'test', node: 'n1', advertise: '127.0.0.1' },
      saveSlot: async () => undefined,
      record: (e) => events.push(e),
      allowHostPaths: ['/srv'],
      realpath: async (p) => p,
    });
    const r = await executor.execute('container', [{ ...create('web-1-0-aaaa'), assignment: web! } as Action]);
    expect(r.applied).toBe(0);
    expect(String((r.error as Error).message)).toContain('host path /etc refused: not under an allowed directory (/srv)');
    expect(await rt.list({ [LABEL.cluster]: 'test' })).toEqual([]);
    expect(rt.volumeNames()).toEqual([]);
    expect(events).toEqual([expect.objectContaining({ action: 'container.create', outcome: 'error: ORCA_CONFLICT', message: expect.stringContaining('host path /etc refused') })]);
  });

  it('a network of that name that is not a bridge fails the create with the reason, and is left alone', async () => {
    const clock = new ManualClock(Date.parse('2026-01-01T00:00:00.000Z'));
    const rt = new FakeRuntime(clock);
    rt.addImage(assignment.spec.image, { cmd: ['sleep', '3600'] });
    rt.addNetwork('orca-test', { driver: 'macvlan' });
    const events: EventRecord[] = [];
    const executor = new Executor({
      runtime: rt,
      clock,
      log: silentLogger(),
      identity: { cluster: 'test', node: 'n1', advertise: '127.0.0.1' },
      saveSlot: async () => undefined,
      record: (e) => events.push(e),
    });
    const r = await executor.execute('container', [create('web-3-0-aaaa')]);
    expect(r.applied).toBe(0);
    expect(events).toEqual([expect.objectContaining({ action: 'container.create', outcome: 'error: ORCA_RUNTIME_CONFLICT', message: expect.stringMatching(/network orca-test exists with driver macvlan.*bridge/) })]);
    expect(await rt.list({})).toEqual([]);
    expect((await rt.inspectNetwork('orca-test'))?.driver).toBe('macvlan');
  });

  it('runs the actions of one instance in plan order: remove begins only once stop has ended', async () => {
    const { rt, executor } = setup();
    const release = rt.hold('stop', 'a');
    const done = executor.execute('container', [stop('a'), remove('a')]);
    await flushMicrotasks();
    expect(rt.calls).toEqual(['stop>a']);
    release();
    const r = await done;
    expect(rt.calls).toEqual(['stop>a', 'stop<a', 'remove>a', 'remove<a']);
    expect(r).toEqual({ applied: 2 });
  });

  it('runs the actions of different instances concurrently', async () => {
    const { rt, executor } = setup();
    const releaseA = rt.hold('stop', 'a');
    const releaseB = rt.hold('stop', 'b');
    const done = executor.execute('container', [stop('a'), remove('a'), stop('b'), remove('b')]);
    await flushMicrotasks();
    // Both stops are under way before either has ended.
    expect(rt.calls).toEqual(['stop>a', 'stop>b']);
    releaseB();
    await flushMicrotasks();
    expect(rt.calls).toContain('remove<b');
    expect(rt.calls).not.toContain('stop<a');
    releaseA();
    expect(await done).toEqual({ applied: 4 });
  });

  it('a failure stops its own group only: the rest of that instance is not attempted, other instances go on', async () => {
    const { rt, executor, events } = setup();
    const boom = new OrcaError('ORCA_RUNTIME_FAILED', 'stop a: engine said no');
    rt.fail('stop', 'a', boom);
    const r = await executor.execute('container', [stop('a'), remove('a'), stop('b'), remove('b')]);
    expect(r.error).toBe(boom);
    expect(r.applied).toBe(2);
    expect(rt.calls).not.toContain('remove>a');
    expect(rt.calls).toContain('remove<b');
    // The action not attempted is not recorded.
    expect(events.map((e) => `${e.action}:${e.instance}`).sort()).toEqual(['container.remove:b', 'container.stop:a', 'container.stop:b']);
  });

  it('records one event per action attempted, with its outcome, duration, message and identity', async () => {
    const { rt, clock, executor, events } = setup();
    rt.fail('remove', 'b', new OrcaError('ORCA_RUNTIME_CONFLICT', 'remove b: You cannot remove a running container'));
    const release = rt.hold('stop', 'a');
    const halt: Action = {
      kind: 'rollout.halt',
      key: 'halt:web/1',
      reason: 'rollout-failed',
      message: 'not ready within 60 s',
      service: 'web',
      instance: null,
      slot: slot({ slot: 1 }),
    };
    const done = executor.execute('container', [stop('a'), remove('b'), halt]);
    await flushMicrotasks();
    await clock.advanceAsync(1_500);
    release();
    const r = await done;
    expect(r.applied).toBe(1);
    const byAction = new Map(events.map((e) => [`${e.action}:${e.instance ?? e.reason}`, e]));
    expect(events).toHaveLength(3);
    expect(byAction.get('container.stop:a')).toEqual({
      time: '2026-01-01T00:00:01.500Z',
      reconciler: 'container',
      service: 'web',
      instance: 'a',
      node: 'n1',
      action: 'container.stop',
      reason: 'scale-down',
      outcome: 'ok',
      durationMs: 1_500,
    });
    expect(byAction.get('container.remove:b')).toMatchObject({
      outcome: 'error: ORCA_RUNTIME_CONFLICT',
      message: 'remove b: You cannot remove a running container',
      durationMs: 0,
    });
    // Bookkeeping carries its advice as the message.
    expect(byAction.get('rollout.halt:rollout-failed')).toMatchObject({ outcome: 'ok', message: 'not ready within 60 s', instance: null });
  });

  it('a plain error is recorded with outcome "error" and its message', async () => {
    const { rt, executor, events } = setup();
    rt.fail('stop', 'a', new Error('socket hang up'));
    const r = await executor.execute('container', [stop('a')]);
    expect(r.error).toBeInstanceOf(Error);
    expect(events).toMatchObject([{ action: 'container.stop', outcome: 'error', message: 'socket hang up' }]);
  });

  it('create: persists the slot once the container exists, then starts it, telling the lifecycle as it goes', async () => {
    const { rt, executor, saved, life } = setup();
    const r = await executor.execute('container', [create('web-3-0-x')]);
    expect(r).toEqual({ applied: 1 });
    expect(rt.calls).toEqual(['create>web-3-0-x', 'create<web-3-0-x', 'save>web-3-0-x', 'start>cid-web-3-0-x', 'start<cid-web-3-0-x']);
    expect(saved).toEqual(['web/0:web-3-0-x']);
    expect(life).toEqual(['creating:web-3-0-x', 'created:web-3-0-x:cid-web-3-0-x', 'started:web-3-0-x']);
  });

  it('a failed create saves nothing, starts nothing and tells the lifecycle why', async () => {
    const { rt, executor, saved, life, events } = setup();
    rt.fail('create', 'web-3-0-x', new OrcaError('ORCA_IMAGE_MISSING', 'image orca-test/busybox:1 not found'));
    const r = await executor.execute('container', [create('web-3-0-x')]);
    expect(r.applied).toBe(0);
    expect(saved).toEqual([]);
    expect(rt.calls.some((c) => c.startsWith('start'))).toBe(false);
    expect(life).toEqual(['creating:web-3-0-x', 'createFailed:web-3-0-x:image orca-test/busybox:1 not found']);
    expect(events).toMatchObject([{ action: 'container.create', outcome: 'error: ORCA_IMAGE_MISSING' }]);
  });

  it('a slot update and a create of the same slot run in plan order (slot memory is never written twice at once)', async () => {
    const { rt, executor } = setup();
    const counted: Action = { kind: 'slot.update', key: 'failure:web/0', reason: 'exited', service: 'web', instance: 'old', slot: slot({ currentInstance: 'old', restarts: 1 }) };
    const release = rt.hold('create', 'web-3-0-x');
    const done = executor.execute('container', [counted, create('web-3-0-x')]);
    await flushMicrotasks();
    expect(rt.calls).toEqual(['save>old', 'create>web-3-0-x']);
    release();
    // Bookkeeping does not count as applied.
    expect(await done).toEqual({ applied: 1 });
  });
});
