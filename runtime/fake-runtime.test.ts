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
  const clock = new ManualClock();
  const rt = makeFake(clock);
  const cluster = `fake-${++clusters}`;
  return {
    rt,
    image: IMAGE,
    healthImage: HEALTH_IMAGE,
    cluster,
    crash: async (id) => rt.crash(id, 137),
    elapse: (ms) => clock.advanceAsync(ms),
    cleanup: async () => {
      for (const c of await rt.list({ [LABEL.cluster]: cluster })) await rt.remove(c.id, { force: true });
    },
    removeNetworkBehindBack: async (name) => rt.removeNetworkBehindBack(name),
    aliasesOf: async (id, network) => rt.networksOf(id)[network] ?? [],
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

describe('FakeRuntime exec and the fake filesystem', () => {
  const started = async (rt: FakeRuntime, over: Partial<ContainerSpec> = {}) => {
    const id = await rt.create(spec('ctr-a', over));
    await rt.start(id);
    return id;
  };

  it('writeFile / removeFile control what cat sees', async () => {
    const rt = makeFake();
    const id = await started(rt);
    expect(await rt.exec(id, ['cat', '/tmp/ok'], 1000)).toEqual({
      exitCode: 1,
      output: "cat: can't open '/tmp/ok': No such file or directory\n",
      timedOut: false,
    });
    rt.writeFile(id, '/tmp/ok', 'fine\n');
    expect(await rt.exec(id, ['cat', '/tmp/ok'], 1000)).toEqual({ exitCode: 0, output: 'fine\n', timedOut: false });
    rt.removeFile(id, '/tmp/ok');
    expect((await rt.exec(id, ['/bin/cat', '/tmp/ok'], 1000)).exitCode).toBe(1);
    await rt.exec(id, ['sh', '-c', 'echo a > /tmp/f; echo b >> /tmp/f; echo gone > /dev/null'], 1000);
    expect(rt.readFile(id, '/tmp/f')).toBe('a\nb\n');
    expect(rt.readFile(id, '/dev/null')).toBeUndefined();
  });

  it('the main process uses the same filesystem, and cat output goes to the logs', async () => {
    const rt = makeFake();
    const id = await rt.create(spec('ctr-a', { command: ['sh', '-c', 'echo hi > /tmp/x; cat /tmp/x /tmp/nope; exec sleep 3600'] }));
    rt.writeFile(id, '/etc/seed', 'seeded');
    await rt.start(id);
    expect(await drain(rt.logs(id, {}))).toEqual(['hi', "cat: can't open '/tmp/nope': No such file or directory"]);
    expect((await rt.exec(id, ['cat', '/etc/seed'], 1000)).output).toBe('seeded');
  });

  it('&& and || short-circuit; test and [ check files', async () => {
    const rt = makeFake();
    const id = await started(rt);
    const out = async (script: string) => (await rt.exec(id, ['sh', '-c', script], 1000)).output;
    expect(await out('[ -f /tmp/ok ] && echo yes || echo no')).toBe('no\n');
    rt.writeFile(id, '/tmp/ok', '');
    expect(await out('[ -f /tmp/ok ] && echo yes || echo no')).toBe('yes\n');
    expect(await out('test -e /tmp/ok && exec echo via-exec; echo not-reached')).toBe('via-exec\n');
    expect(await out('false && echo a; echo b')).toBe('b\n');
    expect((await rt.exec(id, ['sh', '-c', 'rm /tmp/nope'], 1000)).exitCode).toBe(1);
    expect((await rt.exec(id, ['sh', '-c', 'rm -f /tmp/nope'], 1000)).exitCode).toBe(0);
  });

  it('times out on the clock, and a timed-out command lingers until it ends', async () => {
    const clock = new ManualClock();
    const rt = makeFake(clock);
    const id = await started(rt);
    let result: unknown;
    const p = rt.exec(id, ['sh', '-c', 'echo begun; sleep 2; touch /tmp/late'], 500).then((r) => (result = r));
    await clock.advanceAsync(499);
    expect(result).toBeUndefined();
    await clock.advanceAsync(1);
    await p;
    expect(result).toEqual({ exitCode: null, output: 'begun\n', timedOut: true });
    expect(rt.readFile(id, '/tmp/late')).toBeUndefined();
    await clock.advanceAsync(1500);
    expect(rt.readFile(id, '/tmp/late')).toBe('');
  });

  it('an unknown program runs until the timeout', async () => {
    const clock = new ManualClock();
    const rt = makeFake(clock);
    const id = await started(rt);
    const p = rt.exec(id, ['pg_isready'], 1000);
    await clock.advanceAsync(1000);
    expect(await p).toMatchObject({ exitCode: null, timedOut: true });
  });

  it('keeps at most 64 KiB of output', async () => {
    const rt = makeFake();
    const id = await started(rt);
    rt.writeFile(id, '/big', 'x'.repeat(100_000));
    expect((await rt.exec(id, ['cat', '/big', '/big'], 1000)).output).toBe('x'.repeat(64 * 1024));
  });

  it('counts exec calls apart from the mutating ones, and honours failNext and engine down', async () => {
    const rt = makeFake();
    const id = await started(rt);
    rt.resetCalls();
    await rt.exec(id, ['true'], 1000);
    expect(rt.calls.exec).toBe(1);
    expect(rt.mutatingCalls()).toBe(0);
    rt.failNext('exec');
    await expectCode(rt.exec(id, ['true'], 1000), 'ORCA_RUNTIME_UNAVAILABLE');
    rt.setEngineDown(true);
    await expectCode(rt.exec(id, ['true'], 1000), 'ORCA_RUNTIME_UNAVAILABLE');
  });

  it('files stay across restarts and go with the container', async () => {
    const rt = makeFake();
    const id = await started(rt);
    await rt.exec(id, ['touch', '/tmp/ok'], 1000);
    await rt.stop(id, 1);
    expect(rt.readFile(id, '/tmp/ok')).toBe('');
    await rt.start(id);
    expect((await rt.exec(id, ['cat', '/tmp/ok'], 1000)).exitCode).toBe(0);
    await rt.remove(id, { force: true });
    const again = await started(rt);
    expect(rt.readFile(again, '/tmp/ok')).toBeUndefined();
  });

  it('allocates a host port per published port, the primary first, and labels the primary port', async () => {
    const rt = makeFake();
    const id = await started(rt, { port: 80, extraPorts: [9090, 80, 8081] });
    expect(await rt.inspect(id)).toMatchObject({
      hostPort: 49153,
      ports: { '80': 49153, '9090': 49154, '8081': 49155 },
      labels: { [LABEL.port]: '80' },
    });
    const plain = await rt.create(spec('ctr-b'));
    expect((await rt.inspect(plain))?.labels).not.toHaveProperty(LABEL.port);
  });
});
