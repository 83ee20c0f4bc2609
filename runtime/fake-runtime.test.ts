import { describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { OrcaError } from '../core/errors.js';
import { collect, drain, expectCode, runtimeContract } from '../test/contract/runtime.contract.js';
import { FakeRuntime } from './fake-runtime.js';
import { LABEL } from './labels.js';
import type { ContainerSpec } from './types.js';

const IMAGE = 'orca-test/busybox:1';
const HEALTH_IMAGE = 'orca-test/healthcheck:1';
let clusters = 0;

function makeFake(clock = new ManualClock()): FakeRuntime {
  const rt = new FakeRuntime(clock);
  rt.addImage(IMAGE, { cmd: ['sleep', '3600'] });
  rt.addImage(HEALTH_IMAGE, { cmd: ['sleep', '3600'], healthcheck: true });
  return rt;
}

runtimeContract('FakeRuntime', async () => {
  const rt = makeFake();
  const cluster = `fake-${++clusters}`;
  return {
    rt,
    image: IMAGE,
    healthImage: HEALTH_IMAGE,
    cluster,
    crash: async (id) => rt.crash(id, 137),
    cleanup: async () => {
      for (const c of await rt.list({ [LABEL.cluster]: cluster })) await rt.remove(c.id, { force: true });
    },
  };
});

const spec = (name: string, over: Partial<ContainerSpec> = {}): ContainerSpec => ({
  name,
  image: IMAGE,
  env: {},
  labels: { [LABEL.cluster]: 'c', [LABEL.instance]: name },
  hostIp: '127.0.0.1',
  init: true,
  stopGraceSecs: 1,
  ...over,
});

describe('FakeRuntime test controls', () => {
  it('crash with oom sets the flag and emits oom then die', async () => {
    const rt = makeFake();
    const ac = new AbortController();
    const ev = collect(rt, {}, ac);
    const id = await rt.create(spec('ctr-a'));
    await rt.start(id);
    rt.crash(id, 137, { oom: true });
    expect(await rt.inspect(id)).toMatchObject({ status: 'exited', exitCode: 137, oomKilled: true });
    await ev.waitFor((e) => e.kind === 'die');
    expect(ev.events.map((e) => e.kind)).toEqual(['create', 'start', 'oom', 'die']);
    await rt.start(id);
    expect(await rt.inspect(id)).toMatchObject({ status: 'running', oomKilled: false });
    ac.abort();
  });

  it('removeBehindBack emits kill, die, destroy and does not count as a call', async () => {
    const rt = makeFake();
    const id = await rt.create(spec('ctr-a'));
    await rt.start(id);
    const ac = new AbortController();
    const ev = collect(rt, {}, ac);
    rt.resetCalls();
    rt.removeBehindBack(id);
    await ev.waitFor((e) => e.kind === 'destroy');
    expect(ev.events.map((e) => e.kind)).toEqual(['kill', 'die', 'destroy']);
    expect(rt.mutatingCalls()).toBe(0);
    expect(await rt.inspect(id)).toBeUndefined();
    ac.abort();
  });

  it('setHealth reports health and emits health_status', async () => {
    const rt = makeFake();
    const id = await rt.create(spec('ctr-a', { image: HEALTH_IMAGE }));
    await rt.start(id);
    expect((await rt.inspect(id))?.health).toBe('starting');
    const ac = new AbortController();
    const ev = collect(rt, {}, ac);
    rt.setHealth(id, 'unhealthy');
    expect((await ev.waitFor((e) => e.kind === 'health_status')).health).toBe('unhealthy');
    expect((await rt.inspect(id))?.health).toBe('unhealthy');
    ac.abort();
  });

  it('failNext fails exactly the next call of that op, and counts calls', async () => {
    const rt = makeFake();
    rt.failNext('create', new OrcaError('ORCA_RUNTIME_FAILED', 'boom'));
    await expectCode(rt.create(spec('ctr-a')), 'ORCA_RUNTIME_FAILED');
    const id = await rt.create(spec('ctr-a'));
    expect(rt.calls.create).toBe(2);
    rt.failNext('list');
    await expectCode(rt.list({}), 'ORCA_RUNTIME_UNAVAILABLE');
    expect((await rt.list({})).map((c) => c.id)).toEqual([id]);
  });

  it('failStart leaves the container created with the error recorded', async () => {
    const rt = makeFake();
    const id = await rt.create(spec('ctr-a'));
    rt.failStart(id, 'exec: "/nope": not found');
    await expectCode(rt.start(id), 'ORCA_RUNTIME_FAILED');
    expect(await rt.inspect(id)).toMatchObject({ status: 'created', error: 'exec: "/nope": not found', startedAt: null });
  });

  it('breakEvents ends open streams; setEngineDown makes every call unavailable', async () => {
    const rt = makeFake();
    const ev = collect(rt, {}, new AbortController());
    rt.breakEvents();
    await ev.done;
    expect(ev.error).toBeUndefined();
    const ev2 = collect(rt, {}, new AbortController());
    rt.setEngineDown(true);
    await ev2.done;
    expect((ev2.error as OrcaError).code).toBe('ORCA_RUNTIME_UNAVAILABLE');
    await expectCode(rt.ping(), 'ORCA_RUNTIME_UNAVAILABLE');
    rt.setEngineDown(false);
    await rt.ping();
  });

  it('a container that ignores SIGTERM is killed after the grace, on the clock', async () => {
    const clock = new ManualClock();
    const rt = makeFake(clock);
    const id = await rt.create(spec('ctr-a'));
    await rt.start(id);
    rt.ignoreSigterm(id);
    let stopped = false;
    const stopping = rt.stop(id, 1.5).then(() => (stopped = true));
    await clock.advanceAsync(1000);
    expect(stopped).toBe(false);
    await clock.advanceAsync(1000);
    await stopping;
    expect(await rt.inspect(id)).toMatchObject({ status: 'exited', exitCode: 137 });
  });

  it('runs sleep steps on the clock, then exits', async () => {
    const clock = new ManualClock();
    const rt = makeFake(clock);
    const id = await rt.create(spec('ctr-a', { command: ['sh', '-c', 'echo start; sleep 2; echo done; exit 4'] }));
    await rt.start(id);
    expect(await drain(rt.logs(id, {}))).toEqual(['start']);
    await clock.advanceAsync(2000);
    expect(await drain(rt.logs(id, {}))).toEqual(['start', 'done']);
    expect(await rt.inspect(id)).toMatchObject({ status: 'exited', exitCode: 4 });
  });

  it('allocates host ports from 49153 and merges image labels under container labels', async () => {
    const rt = makeFake();
    rt.addImage('x/y:1', { cmd: ['httpd'], labels: { 'orca.image-hash': 'h', team: 'image' } });
    const id = await rt.create(spec('ctr-a', { image: 'x/y:1', port: 80, labels: { team: 'mine', [LABEL.instance]: 'ctr-a' } }));
    await rt.start(id);
    expect(await rt.inspect(id)).toMatchObject({ hostPort: 49153, labels: { 'orca.image-hash': 'h', team: 'mine' } });
    expect(rt.specOf(id)?.port).toBe(80);
  });
});
