import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep, systemClock } from '../core/clock.js';
import { runtimeContract, collect, drain, eventually, expectCode } from '../test/contract/runtime.contract.js';
import { webImageDef } from '../examples/images.js';
import { HEALTHCHECK_IMAGE, TEST_IMAGE, ensureTestImages, testImageDef } from '../test/images.js';
import { DockerRuntime } from './docker-runtime.js';
import { LABEL } from './labels.js';
import type { ContainerSpec } from './types.js';

/** Removes (force) the containers labelled with this cluster, and only those. */
async function removeCluster(rt: DockerRuntime, cluster: string): Promise<void> {
  const mine = await rt.list({ [LABEL.cluster]: cluster });
  await Promise.all(mine.map((c) => rt.remove(c.id, { force: true })));
}

const newCluster = () => `orca-test-${randomBytes(4).toString('hex')}`;

beforeAll(async () => {
  await ensureTestImages(new DockerRuntime());
}, 60_000);

runtimeContract('DockerRuntime', async () => {
  const rt = new DockerRuntime();
  const cluster = newCluster();
  return {
    rt,
    image: TEST_IMAGE,
    healthImage: HEALTHCHECK_IMAGE,
    cluster,
    // With init, SIGKILL goes to docker-init (PID 1) and takes the whole container down: 137.
    crash: (id) => rt.kill(id, 'SIGKILL'),
    elapse: (ms) => sleep(systemClock, ms),
    cleanup: () => removeCluster(rt, cluster),
    removeNetworkBehindBack: async (name) => {
      const n = await rt.inspectNetwork(name);
      if (!n) return;
      for (const c of n.containers) execFileSync('docker', ['network', 'disconnect', '-f', name, c]);
      await rt.removeNetwork(name);
    },
    // The DNS names the container answers to on that network, and nothing else of its endpoint
    // (no address is read: the host never dials a container IP).
    aliasesOf: async (id, network) => {
      const template = `{{with index .NetworkSettings.Networks ${JSON.stringify(network)}}}{{json .Aliases}}{{else}}null{{end}}`;
      return (JSON.parse(execFileSync('docker', ['inspect', '-f', template, id]).toString()) as string[] | null) ?? [];
    },
  };
});

describe('DockerRuntime on a real engine', () => {
  const rt = new DockerRuntime();
  const cluster = newCluster();
  let n = 0;
  const spec = (over: Partial<ContainerSpec> = {}): ContainerSpec => {
    const name = `${cluster}-d${++n}`;
    return {
      name,
      image: TEST_IMAGE,
      env: {},
      labels: { [LABEL.cluster]: cluster, [LABEL.instance]: name },
      hostIp: '127.0.0.1',
      init: true,
      stopGraceSecs: 1,
      ...over,
    };
  };
  const run = async (over: Partial<ContainerSpec> = {}) => {
    const id = await rt.create(spec(over));
    await rt.start(id);
    return id;
  };

  afterAll(() => removeCluster(rt, cluster));

  it('two runtimes ensuring one network at once, or a duplicate left by an earlier race, end with exactly one', async () => {
    const name = `${cluster}-net`;
    const countNamed = () => execFileSync('docker', ['network', 'ls', '-q', '--filter', `name=^${name}$`]).toString().trim().split('\n').filter(Boolean).length;
    try {
      // Separate runtimes share no in-process lock: what two agents on one Docker host do.
      await Promise.all([new DockerRuntime(), new DockerRuntime(), new DockerRuntime()].map((r) => r.ensureNetwork(name, { [LABEL.cluster]: cluster })));
      expect(countNamed()).toBe(1);
      // A duplicate made with the engine's duplicate check off (what a lost race leaves behind).
      execFileSync('curl', ['-sf', '--unix-socket', '/var/run/docker.sock', '-XPOST', '-H', 'content-type: application/json',
        '-d', JSON.stringify({ Name: name, CheckDuplicate: false, Labels: { [LABEL.cluster]: cluster } }), 'http://docker/v1.41/networks/create']);
      expect(countNamed()).toBe(2);
      expect(await rt.ensureNetwork(name, { [LABEL.cluster]: cluster })).toBe(false);
      expect(countNamed()).toBe(1);
      expect((await rt.inspectNetwork(name))?.name).toBe(name);
    } finally {
      for (const id of execFileSync('docker', ['network', 'ls', '-q', '--filter', `name=^${name}$`]).toString().trim().split('\n').filter(Boolean)) {
        execFileSync('docker', ['network', 'rm', id]);
      }
    }
  });

  it('a network seen lately is not asked about again for each create; removed behind its back, a failed create or start makes the next ensure look (and make it again) at once', async () => {
    const name = `${cluster}-seen`;
    const labels = { [LABEL.cluster]: cluster };
    const made: string[] = [];
    const runOn = async () => {
      const id = await rt.create(spec({ network: { name, aliases: ['seen'] } }));
      made.push(id);
      await rt.start(id);
      return id;
    };
    try {
      expect(await rt.ensureNetwork(name, labels)).toBe(true);
      expect((await rt.inspectNetwork(name))?.driver).toBe('bridge');
      execFileSync('docker', ['network', 'rm', name]);
      // Seen a moment ago: taken as there, without a round trip.
      expect(await rt.ensureNetwork(name, labels)).toBe(false);
      // API 1.41 refuses at start, later engines at create: either way the memory is dropped.
      await expect(runOn()).rejects.toThrow();
      expect(await rt.ensureNetwork(name, labels)).toBe(true);
      const id = await runOn();
      expect((await rt.inspect(id))?.status).toBe('running');
    } finally {
      for (const id of made) await rt.remove(id, { force: true });
      await rt.removeNetwork(name);
    }
  });

  it('flags an OOM kill: oomKilled, exit 137, oom and die events', async () => {
    const ac = new AbortController();
    const ev = collect(rt, { [LABEL.cluster]: cluster }, ac);
    // Command substitution keeps 64 MB in the shell: far over the 8 MiB limit (no swap).
    const id = await run({ memoryBytes: 8 * 1024 * 1024, command: ['sh', '-c', 'a=$(yes | head -c 64000000); echo survived'] });
    const c = await eventually(() => rt.inspect(id), (x) => x?.status === 'exited');
    expect(c).toMatchObject({ oomKilled: true, exitCode: 137 });
    await ev.waitFor((e) => e.kind === 'oom' && e.containerId === id);
    await ev.waitFor((e) => e.kind === 'die' && e.containerId === id);
    ac.abort();
  });

  it('applies memory and CPU limits (read back from the cgroup)', async () => {
    const id = await run({
      memoryBytes: 16 * 1024 * 1024,
      cpus: 0.5,
      command: ['sh', '-c', 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu.max 2>/dev/null; exec sleep 3600'],
    });
    const lines = await eventually(() => drain(rt.logs(id, {})), (l) => l.length >= 2);
    expect(lines[0]).toBe(String(16 * 1024 * 1024));
    expect(lines[1]).toMatch(/^50000( 100000)?$/);
  });

  it('serves traffic on the published 127.0.0.1 port', async () => {
    const id = await run({ port: 80, command: ['sh', '-c', 'mkdir -p /www && echo hi-from-httpd > /www/index.html && exec httpd -f -p 80 -h /www'] });
    const c = await rt.inspect(id);
    expect(c?.hostIp).toBe('127.0.0.1');
    const body = await eventually(
      // Bounded: a request accepted by Docker's forwarder before httpd listens must not hang the test.
      () => fetch(`http://127.0.0.1:${c?.hostPort}/index.html`, { signal: AbortSignal.timeout(2000) }).then((r) => r.text(), () => ''),
      (b) => b.includes('hi-from-httpd'),
    );
    expect(body.trim()).toBe('hi-from-httpd');
  });

  it('serves traffic on an extra published port too, and records the primary port in orca.port', async () => {
    const id = await run({
      port: 80,
      extraPorts: [8081],
      command: ['sh', '-c', 'mkdir -p /www /probe && echo main > /www/index.html && echo probe > /probe/index.html && httpd -p 8081 -h /probe && exec httpd -f -p 80 -h /www'],
    });
    const c = await rt.inspect(id);
    expect(c?.labels[LABEL.port]).toBe('80');
    expect(c?.hostPort).toBe(c?.ports['80']);
    const get = (port: number | undefined) => fetch(`http://127.0.0.1:${port}/index.html`, { signal: AbortSignal.timeout(2000) }).then((r) => r.text(), () => '');
    expect((await eventually(() => get(c?.ports['80']), (b) => b !== '')).trim()).toBe('main');
    expect((await eventually(() => get(c?.ports['8081']), (b) => b !== '')).trim()).toBe('probe');
  });

  it('exec keeps at most 64 KiB of output, and reports a command that cannot run as exit 126', async () => {
    const id = await run();
    const big = await rt.exec(id, ['sh', '-c', 'head -c 100000 /dev/zero | tr "\\0" x'], 10_000);
    expect(big.exitCode).toBe(0);
    expect(big.output).toBe('x'.repeat(64 * 1024));
    const missing = await rt.exec(id, ['/does/not/exist'], 10_000);
    expect(missing).toMatchObject({ exitCode: 126, timedOut: false });
    expect(missing.output).toMatch(/does\/not\/exist/);
  });

  it('a timed-out exec lingers in the container (Docker cannot kill an exec)', async () => {
    const id = await run();
    const r = await rt.exec(id, ['sh', '-c', 'sleep 0.5; touch /tmp/late'], 100);
    expect(r.timedOut).toBe(true);
    await eventually(() => rt.exec(id, ['cat', '/tmp/late'], 10_000), (x) => x.exitCode === 0);
  });

  it('kills after the grace when the main process ignores SIGTERM (PID 1 without init)', async () => {
    const id = await run({ init: false, command: ['sleep', '3600'] });
    await rt.stop(id, 0.2); // rounded up to 1 s
    expect(await rt.inspect(id)).toMatchObject({ status: 'exited', exitCode: 137 });
  });

  it('reports HEALTHCHECK status and health_status events', async () => {
    const ac = new AbortController();
    const ev = collect(rt, { [LABEL.cluster]: cluster }, ac);
    const id = await run({ image: HEALTHCHECK_IMAGE, command: ['sh', '-c', 'touch /tmp/healthy; exec sleep 3600'] });
    const healthy = await ev.waitFor((e) => e.kind === 'health_status' && e.containerId === id);
    expect(healthy.health).toBe('healthy');
    expect((await rt.inspect(id))?.health).toBe('healthy');
    ac.abort();
  });

  it('a command that cannot run: with init it exits 127, without init start fails and records the error', async () => {
    const withInit = await run({ command: ['/does/not/exist'] });
    expect((await eventually(() => rt.inspect(withInit), (x) => x?.status === 'exited'))?.exitCode).toBe(127);

    const id = await rt.create(spec({ init: false, command: ['/does/not/exist'] }));
    const err = await expectCode(rt.start(id), 'ORCA_RUNTIME_FAILED');
    expect((err as { transient?: boolean }).transient).toBe(false);
    const c = await rt.inspect(id);
    expect(c?.status).toBe('created');
    expect(c?.error).toMatch(/does\/not\/exist/);
  });

  it('maps an unreachable engine to ORCA_RUNTIME_UNAVAILABLE (transient)', async () => {
    const dead = new DockerRuntime({ socketPath: '/tmp/orca-no-such-docker.sock' });
    const err = await expectCode(dead.ping(), 'ORCA_RUNTIME_UNAVAILABLE');
    expect((err as { transient?: boolean }).transient).toBe(true);
    await expectCode(dead.list({ [LABEL.cluster]: cluster }), 'ORCA_RUNTIME_UNAVAILABLE');
    await expectCode(drain(dead.events({}, new AbortController().signal)), 'ORCA_RUNTIME_UNAVAILABLE');
  });

  it('ensureImage is a cheap no-op when the image carries the same content hash', async () => {
    expect(await rt.ensureImage(testImageDef)).toEqual({ built: false });
  });

  it('the example web image serves /, /ready and /healthz and logs its start', async () => {
    await rt.ensureImage(webImageDef(2));
    const id = await run({ image: 'orca-example/web:2', port: 80 });
    const port = (await rt.inspect(id))?.hostPort;
    const get = (path: string) => fetch(`http://127.0.0.1:${port}${path}`).then(async (r) => `${r.status} ${await r.text()}`, () => '');
    expect(await eventually(() => get('/'), (b) => b !== '')).toBe('200 orca-example web v2');
    expect(await get('/ready')).toBe('200 ok');
    expect(await get('/healthz')).toBe('200 ok');
    expect((await drain(rt.logs(id, {})))[0]).toBe('orca-example web v2 starting');
  });
});
