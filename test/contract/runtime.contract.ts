/**
 * The behaviour every Runtime must show. DockerRuntime (runtime/docker-runtime.test.ts) and
 * FakeRuntime (runtime/fake-runtime.test.ts) both run it, so the fake cannot drift.
 *
 * Each test gets a fresh fixture with its own orca.cluster value and creates only containers
 * carrying it; cleanup() removes exactly those.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sleep, systemClock } from '../../core/clock.js';
import { errorMessage, isOrcaError, type ErrorCode } from '../../core/errors.js';
import { LABEL } from '../../runtime/labels.js';
import type { ContainerSpec, Runtime, RuntimeEvent } from '../../runtime/types.js';

export interface RuntimeFixture {
  rt: Runtime;
  /** busybox-like image (sh -c with echo/exit/sleep), default command `sleep 3600`, no HEALTHCHECK. */
  image: string;
  /** An image that defines a HEALTHCHECK. */
  healthImage: string;
  /** Unique per fixture; every container a test creates carries it. */
  cluster: string;
  /** The main process dies abruptly, as from SIGKILL (exit code 137). */
  crash(id: string): Promise<void>;
  /**
   * Lets ms of the runtime's time pass: a real sleep for Docker, advancing the fake's clock for
   * FakeRuntime (so timeouts and `sleep` steps measured on it fire).
   */
  elapse(ms: number): Promise<void>;
  /** Removes (force) every container labelled with `cluster`, and nothing else. */
  cleanup(): Promise<void>;
  /**
   * As an operator would behind Orca's back: disconnects every container from the network
   * (`docker network disconnect -f`) and removes it. Missing is fine.
   */
  removeNetworkBehindBack(name: string): Promise<void>;
  /** The DNS aliases a container has on a network ([] when it is not attached), as the engine shows them. */
  aliasesOf(id: string, network: string): Promise<string[]>;
}

const MISSING_IMAGE = 'orca-test/does-not-exist:1';

export function runtimeContract(name: string, make: () => Promise<RuntimeFixture>): void {
  describe(`Runtime contract: ${name}`, () => {
    let f: RuntimeFixture;
    let rt: Runtime;
    let n = 0;
    const opened: AbortController[] = [];
    /** Networks a test made: removed after its containers. */
    const networks: string[] = [];
    /** Volumes a test made: removed after its containers. */
    const volumes: string[] = [];

    beforeEach(async () => {
      f = await make();
      rt = f.rt;
    });
    afterEach(async () => {
      for (const ac of opened.splice(0)) ac.abort();
      await f.cleanup();
      for (const n of networks.splice(0)) await f.removeNetworkBehindBack(n);
      for (const v of volumes.splice(0)) await rt.removeVolume(v);
    });
    const volume = (suffix = '') => {
      const name = `orca-${f.cluster}-data-${volumes.length}${suffix}`;
      volumes.push(name);
      return name;
    };
    const network = (suffix = '') => {
      const name = `orca-${f.cluster}${suffix}`;
      networks.push(name);
      return name;
    };

    /** A spec in this fixture's cluster; the name doubles as orca.instance. */
    const spec = (over: Partial<ContainerSpec> = {}, extraLabels: Record<string, string> = {}): ContainerSpec => {
      const name = over.name ?? `${f.cluster}-c${++n}`;
      return {
        name,
        image: f.image,
        env: {},
        hostIp: '127.0.0.1',
        init: true,
        stopGraceSecs: 1,
        ...over,
        labels: { [LABEL.cluster]: f.cluster, [LABEL.instance]: name, ...extraLabels, ...over.labels },
      };
    };

    const events = (labels: Record<string, string>) => {
      const ac = new AbortController();
      opened.push(ac);
      return collect(rt, labels, ac);
    };

    const running = async (over: Partial<ContainerSpec> = {}, extra: Record<string, string> = {}) => {
      const s = spec(over, extra);
      const id = await rt.create(s);
      await rt.start(id);
      return { id, spec: s };
    };

    it('answers ping and reports which images are present', async () => {
      await rt.ping();
      expect(await rt.hasImage(f.image)).toBe(true);
      expect(await rt.hasImage(MISSING_IMAGE)).toBe(false);
      expect(await rt.imageHealthcheck(f.image)).toBe(false);
      expect(await rt.imageHealthcheck(f.healthImage)).toBe(true);
      await expectCode(rt.imageHealthcheck(MISSING_IMAGE), 'ORCA_IMAGE_MISSING');
      expect(await rt.imageExposedPorts(f.image)).toEqual([]);
      await expectCode(rt.imageExposedPorts(MISSING_IMAGE), 'ORCA_IMAGE_MISSING');
    });

    it('creates a container without starting it, idempotently by name and instance label', async () => {
      const s = spec({}, { team: 'web' });
      const id = await rt.create(s);
      const c = await rt.inspect(id);
      expect(c).toMatchObject({ id, name: s.name, image: f.image, status: 'created', exitCode: null, startedAt: null, hostPort: null, ports: {} });
      expect(c?.labels).toMatchObject(s.labels);
      expect(Date.parse(c?.createdAt ?? '')).not.toBeNaN();

      expect(await rt.create(s)).toBe(id);
      expect((await rt.list({ [LABEL.instance]: s.name })).map((x) => x.id)).toEqual([id]);
    });

    it('refuses a name held by another instance and leaves that container alone', async () => {
      const { id, spec: s } = await running();
      await expectCode(rt.create({ ...s, labels: { ...s.labels, [LABEL.instance]: 'someone-else' } }), 'ORCA_RUNTIME_CONFLICT');
      const c = await rt.inspect(id);
      expect(c?.status).toBe('running');
      expect(c?.labels[LABEL.instance]).toBe(s.name);
      expect((await rt.list({ [LABEL.cluster]: f.cluster })).length).toBe(1);
    });

    it('fails with ORCA_IMAGE_MISSING, naming the image, and never pulls', async () => {
      const s = spec({ image: MISSING_IMAGE });
      const err = await expectCode(rt.create(s), 'ORCA_IMAGE_MISSING');
      expect(err.message).toContain(MISSING_IMAGE);
      expect(err.message).toMatch(/never pull/);
      expect(await rt.list({ [LABEL.instance]: s.name })).toEqual([]);
      expect(await rt.hasImage(MISSING_IMAGE)).toBe(false);
    });

    it('starts idempotently and publishes the port on the host IP with an ephemeral port', async () => {
      const { id } = await running({ port: 80 });
      await rt.start(id);
      const c = await rt.inspect(id);
      expect(c?.status).toBe('running');
      expect(c?.exitCode).toBeNull();
      expect(Date.parse(c?.startedAt ?? '')).not.toBeNaN();
      expect(c?.hostIp).toBe('127.0.0.1');
      expect(c?.hostPort).toBeGreaterThan(0);
      expect(c?.ports).toEqual({ '80': c?.hostPort });
      const [listed] = await rt.list({ [LABEL.cluster]: f.cluster });
      expect(listed).toMatchObject({ id, hostIp: '127.0.0.1', hostPort: c?.hostPort, ports: { '80': c?.hostPort } });
    });

    it('reports no published port for a container without one', async () => {
      const { id } = await running();
      expect(await rt.inspect(id)).toMatchObject({ hostIp: null, hostPort: null, ports: {} });
    });

    it('publishes extra ports on their own ephemeral host ports; hostPort stays the primary port', async () => {
      // 9000 sorts after 80 and 8081: the primary port must not be taken from the order of the map.
      const { id } = await running({ port: 9000, extraPorts: [80, 9000, 8081, 80] });
      const c = await rt.inspect(id);
      const ports = c?.ports ?? {};
      expect(Object.keys(ports).sort()).toEqual(['80', '8081', '9000']);
      expect(new Set(Object.values(ports)).size).toBe(3);
      for (const hostPort of Object.values(ports)) expect(hostPort).toBeGreaterThan(0);
      expect(c).toMatchObject({ hostIp: '127.0.0.1', hostPort: ports['9000'] });
      expect(c?.labels[LABEL.port]).toBe('9000');
      const [listed] = await rt.list({ [LABEL.cluster]: f.cluster });
      expect(listed?.ports).toEqual(ports);
      await rt.stop(id, 1);
      expect(await rt.inspect(id)).toMatchObject({ hostIp: null, hostPort: null, ports: {} });
      await rt.start(id);
      expect(Object.keys((await rt.inspect(id))?.ports ?? {}).sort()).toEqual(['80', '8081', '9000']);
    });

    it('publishes extra ports without a service port: ports has them, hostPort stays null', async () => {
      const { id } = await running({ extraPorts: [8081] });
      const c = await rt.inspect(id);
      expect(c).toMatchObject({ hostIp: null, hostPort: null });
      expect(Object.keys(c?.ports ?? {})).toEqual(['8081']);
      expect(c?.ports['8081']).toBeGreaterThan(0);
    });

    it('exec runs a command in a running container: exit code, combined output, the container env', async () => {
      const { id } = await running({ env: { GREETING: 'hello orca' } });
      const r = await rt.exec(id, ['sh', '-c', 'echo out; echo err >&2; exit 3'], 10_000);
      expect(r).toMatchObject({ exitCode: 3, timedOut: false });
      expect(r.output).toContain('out\n');
      expect(r.output).toContain('err\n');
      expect(await rt.exec(id, ['sh', '-c', 'echo "$GREETING"'], 10_000)).toEqual({ exitCode: 0, output: 'hello orca\n', timedOut: false });
      expect(await rt.exec(id, ['true'], 10_000)).toEqual({ exitCode: 0, output: '', timedOut: false });
      expect((await rt.exec(id, ['false'], 10_000)).exitCode).toBe(1);
      expect((await rt.exec(id, ['sh', '-c', 'false || exit 7'], 10_000)).exitCode).toBe(7);
      expect((await rt.exec(id, ['sh', '-c', 'false && exit 7'], 10_000)).exitCode).toBe(1);
      expect(await rt.inspect(id)).toMatchObject({ status: 'running', exitCode: null });
    });

    it('exec sees and changes the container filesystem, which survives a restart', async () => {
      const { id } = await running({ command: ['sh', '-c', 'touch /tmp/from-main; exec sleep 3600'] });
      await eventually(() => rt.exec(id, ['cat', '/tmp/from-main'], 10_000), (r) => r.exitCode === 0);
      const missing = await rt.exec(id, ['cat', '/tmp/ok'], 10_000);
      expect(missing).toMatchObject({ exitCode: 1, timedOut: false });
      expect(missing.output).toContain('/tmp/ok');
      expect((await rt.exec(id, ['touch', '/tmp/ok'], 10_000)).exitCode).toBe(0);
      expect(await rt.exec(id, ['cat', '/tmp/ok'], 10_000)).toEqual({ exitCode: 0, output: '', timedOut: false });
      expect((await rt.exec(id, ['sh', '-c', 'echo ready > /tmp/ok'], 10_000)).exitCode).toBe(0);
      expect(await rt.exec(id, ['cat', '/tmp/ok'], 10_000)).toEqual({ exitCode: 0, output: 'ready\n', timedOut: false });
      expect((await rt.exec(id, ['sh', '-c', 'test -f /tmp/ok && echo yes || echo no'], 10_000)).output).toBe('yes\n');
      await rt.stop(id, 1);
      await rt.start(id);
      expect((await rt.exec(id, ['cat', '/tmp/ok'], 10_000)).output).toBe('ready\n');
      expect((await rt.exec(id, ['rm', '/tmp/ok'], 10_000)).exitCode).toBe(0);
      expect((await rt.exec(id, ['cat', '/tmp/ok'], 10_000)).exitCode).toBe(1);
    });

    it('exec waits for a command that finishes within the timeout', async () => {
      const { id } = await running();
      const p = rt.exec(id, ['sh', '-c', 'sleep 0.2; echo done'], 10_000);
      await f.elapse(200);
      expect(await p).toEqual({ exitCode: 0, output: 'done\n', timedOut: false });
    });

    it('exec gives up after the timeout: exitCode null, timedOut; the container carries on', async () => {
      const { id } = await running();
      const t0 = systemClock.now();
      const p = rt.exec(id, ['sleep', '5'], 300);
      await f.elapse(300);
      expect(await p).toEqual({ exitCode: null, output: '', timedOut: true });
      expect(systemClock.now() - t0).toBeLessThan(1000);
      expect(await rt.exec(id, ['true'], 10_000)).toMatchObject({ exitCode: 0, timedOut: false });
      expect((await rt.inspect(id))?.status).toBe('running');
    });

    it('a running exec ends with 137 when its container stops', async () => {
      const { id } = await running();
      const p = rt.exec(id, ['sh', '-c', 'touch /tmp/exec-started; sleep 30'], 20_000);
      await eventually(() => rt.exec(id, ['cat', '/tmp/exec-started'], 10_000), (r) => r.exitCode === 0);
      await rt.stop(id, 1);
      expect(await p).toMatchObject({ exitCode: 137, timedOut: false });
    });

    it('exec says ORCA_RUNTIME_NOT_FOUND for a missing, created or exited container; no command is ORCA_RUNTIME_FAILED', async () => {
      await expectCode(rt.exec(`${f.cluster}-never-existed`, ['true'], 10_000), 'ORCA_RUNTIME_NOT_FOUND');
      const id = await rt.create(spec());
      await expectCode(rt.exec(id, ['true'], 10_000), 'ORCA_RUNTIME_NOT_FOUND');
      await rt.start(id);
      await expectCode(rt.exec(id, [], 10_000), 'ORCA_RUNTIME_FAILED');
      await rt.stop(id, 1);
      await expectCode(rt.exec(id, ['true'], 10_000), 'ORCA_RUNTIME_NOT_FOUND');
    });

    it('stops with SIGTERM (init forwards it: exit 143), idempotently; stopping a missing container is fine', async () => {
      const { id } = await running();
      await rt.stop(id, 1);
      const c = await rt.inspect(id);
      expect(c).toMatchObject({ status: 'exited', exitCode: 143, oomKilled: false, hostPort: null, ports: {} });
      expect(Date.parse(c?.finishedAt ?? '')).not.toBeNaN();
      await rt.stop(id, 1);
      await rt.stop(`${f.cluster}-never-existed`, 1);
    });

    it('says ORCA_RUNTIME_NOT_FOUND for start, kill and logs of a missing container, and undefined for inspect', async () => {
      const missing = `${f.cluster}-never-existed`;
      await expectCode(rt.start(missing), 'ORCA_RUNTIME_NOT_FOUND');
      await expectCode(rt.kill(missing, 'SIGKILL'), 'ORCA_RUNTIME_NOT_FOUND');
      await expectCode(drain(rt.logs(missing, {})), 'ORCA_RUNTIME_NOT_FOUND');
      expect(await rt.inspect(missing)).toBeUndefined();
    });

    it('kills with a signal; a stopped container cannot be killed', async () => {
      const { id } = await running();
      await rt.kill(id, 'SIGKILL');
      const c = await eventually(() => rt.inspect(id), (x) => x?.status === 'exited');
      expect(c?.exitCode).toBe(137);
      await expectCode(rt.kill(id, 'SIGKILL'), 'ORCA_RUNTIME_NOT_FOUND');
    });

    it('restarts an exited container with a fresh run', async () => {
      const { id } = await running();
      await rt.stop(id, 0);
      await rt.start(id);
      expect(await rt.inspect(id)).toMatchObject({ status: 'running', exitCode: null, finishedAt: expect.anything() });
    });

    it('removes idempotently; a running container only with force', async () => {
      const { id } = await running();
      await expectCode(rt.remove(id), 'ORCA_RUNTIME_CONFLICT');
      expect((await rt.inspect(id))?.status).toBe('running');
      await rt.stop(id, 0);
      await rt.remove(id);
      expect(await rt.inspect(id)).toBeUndefined();
      await rt.remove(id);
      const other = await running();
      await rt.remove(other.id, { force: true });
      expect(await rt.inspect(other.id)).toBeUndefined();
    });

    it('lists by labels, all states, and nothing of another cluster', async () => {
      const a = await running({}, { [LABEL.service]: 'a' });
      const b = spec({}, { [LABEL.service]: 'b' });
      const bId = await rt.create(b);
      const otherCluster = `${f.cluster}-other`;
      const foreign = spec({ name: `${otherCluster}-x`, labels: { [LABEL.cluster]: otherCluster } });
      const foreignId = await rt.create(foreign);
      try {
        const mine = await rt.list({ [LABEL.cluster]: f.cluster });
        expect(mine.map((c) => c.id).sort()).toEqual([a.id, bId].sort());
        expect(mine.find((c) => c.id === bId)?.status).toBe('created');
        expect((await rt.list({ [LABEL.cluster]: f.cluster, [LABEL.service]: 'a' })).map((c) => c.id)).toEqual([a.id]);
        expect(await rt.list({ [LABEL.cluster]: f.cluster, [LABEL.service]: 'nope' })).toEqual([]);
        expect((await rt.list({ [LABEL.cluster]: otherCluster })).map((c) => c.id)).toEqual([foreignId]);
      } finally {
        await rt.remove(foreignId, { force: true });
      }
    });

    it('a crash leaves the container exited with its exit code, and emits die with that code', async () => {
      const ev = events({ [LABEL.cluster]: f.cluster });
      const { id, spec: s } = await running({}, { [LABEL.service]: 'web' });
      await f.crash(id);
      const c = await eventually(() => rt.inspect(id), (x) => x?.status === 'exited');
      expect(c).toMatchObject({ exitCode: 137, oomKilled: false, hostPort: null });
      const die = await ev.waitFor((e) => e.kind === 'die' && e.containerId === id);
      expect(die.exitCode).toBe(137);
      expect(die.labels).toMatchObject(s.labels);
      expect(die.timeMs).toBeGreaterThan(Date.UTC(2020, 0, 1));
    });

    it('a main process that exits on its own is reported with its code (0 included)', async () => {
      const ev = events({ [LABEL.cluster]: f.cluster });
      const three = await running({ command: ['sh', '-c', 'echo bye; exit 3'] });
      const zero = await running({ command: ['sh', '-c', 'exit 0'] });
      expect((await eventually(() => rt.inspect(three.id), (x) => x?.status === 'exited'))?.exitCode).toBe(3);
      expect((await eventually(() => rt.inspect(zero.id), (x) => x?.status === 'exited'))?.exitCode).toBe(0);
      expect((await ev.waitFor((e) => e.kind === 'die' && e.containerId === three.id)).exitCode).toBe(3);
      expect((await ev.waitFor((e) => e.kind === 'die' && e.containerId === zero.id)).exitCode).toBe(0);
    });

    it('streams lifecycle events filtered by labels: create, start, kill, die, stop, destroy', async () => {
      const ev = events({ [LABEL.cluster]: f.cluster, [LABEL.service]: 'watched' });
      const ignored = await running({}, { [LABEL.service]: 'ignored' });
      const { id } = await running({}, { [LABEL.service]: 'watched' });
      await rt.stop(id, 1);
      await rt.remove(id);
      await ev.waitFor((e) => e.kind === 'destroy' && e.containerId === id);
      const kinds = ev.events.filter((e) => e.containerId === id).map((e) => e.kind);
      expect(kinds).toEqual(['create', 'start', 'kill', 'die', 'stop', 'destroy']);
      expect(ev.events.some((e) => e.containerId === ignored.id)).toBe(false);
      expect(ev.events.every((e) => e.labels[LABEL.service] === 'watched')).toBe(true);
    });

    it('ends the event iterable quietly when aborted', async () => {
      const ac = new AbortController();
      const ev = collect(rt, { [LABEL.cluster]: f.cluster }, ac);
      await running();
      await ev.waitFor((e) => e.kind === 'start');
      ac.abort();
      await ev.done;
      expect(ev.error).toBeUndefined();
    });

    it('passes env, and returns logs of stdout and stderr as lines, with tail', async () => {
      const { id } = await running({
        env: { GREETING: 'hello orca' },
        command: ['sh', '-c', 'echo "$GREETING"; echo second; echo third; echo to-stderr >&2; exec sleep 3600'],
      });
      const all = await eventually(() => drain(rt.logs(id, {})), (l) => l.length >= 4);
      expect([...all].sort()).toEqual(['hello orca', 'second', 'third', 'to-stderr'].sort());
      expect(all.filter((l) => l !== 'to-stderr')).toEqual(['hello orca', 'second', 'third']);
      expect(await drain(rt.logs(id, { tail: 0 }))).toEqual([]);
      expect((await drain(rt.logs(id, { tail: 2 }))).length).toBe(2);
    });

    it('follows logs until the container stops, or until aborted', async () => {
      const { id } = await running({ command: ['sh', '-c', 'echo first; exec sleep 3600'] });
      await eventually(() => drain(rt.logs(id, {})), (l) => l.length === 1);
      const ac = new AbortController();
      const seen: string[] = [];
      const followed = (async () => {
        for await (const line of rt.logs(id, { follow: true, signal: ac.signal })) seen.push(line);
      })();
      await eventually(async () => seen, (s) => s.includes('first'));
      ac.abort();
      await followed;

      const untilStop: string[] = [];
      const toEnd = (async () => {
        for await (const line of rt.logs(id, { follow: true })) untilStop.push(line);
      })();
      await eventually(async () => untilStop, (s) => s.includes('first'));
      await rt.stop(id, 0);
      await toEnd;
      expect(untilStop).toEqual(['first']);
    });

    it('ensures a labelled bridge network once, and creates containers attached to it with their aliases', async () => {
      const net = network();
      const labels = { [LABEL.cluster]: f.cluster };
      expect(await rt.inspectNetwork(net)).toBeUndefined();
      expect(await rt.ensureNetwork(net, labels)).toBe(true);
      expect(await rt.ensureNetwork(net, labels)).toBe(false);
      const seen = await rt.inspectNetwork(net);
      expect(seen).toMatchObject({ name: net, driver: 'bridge', containers: [] });
      expect(seen?.labels[LABEL.cluster]).toBe(f.cluster);
      // Where orca.internal points in its containers and the node's proxy listens (SPEC §3.8).
      expect(seen?.gateway).toMatch(/^\d{1,3}(\.\d{1,3}){3}$/);
      expect(await rt.inspectNetwork(`${net}-missing`)).toBeUndefined();
      const name = `${f.cluster}-net1`;
      const { id } = await running({ name, network: { name: net, aliases: ['svc', name] } });
      expect((await rt.inspectNetwork(net))?.containers).toEqual([id]);
      expect(await f.aliasesOf(id, net)).toEqual(expect.arrayContaining(['svc', name]));
      // Created but never started: attached in its config, not listed as an endpoint yet.
      const idle = await rt.create(spec({ network: { name: net, aliases: ['svc'] } }));
      expect((await rt.inspectNetwork(net))?.containers).toEqual([id]);
      await rt.remove(idle);
    });

    it('concurrent ensureNetwork calls make one network of that name', async () => {
      const net = network();
      const made = await Promise.all(Array.from({ length: 5 }, () => rt.ensureNetwork(net, { [LABEL.cluster]: f.cluster })));
      expect(made.filter(Boolean)).toHaveLength(1);
      // Two networks of one name would make the name ambiguous to the engine.
      expect((await rt.inspectNetwork(net))?.name).toBe(net);
    });

    it('checks the network when a container starts, not when it is created', async () => {
      const net = network();
      const id = await rt.create(spec({ network: { name: net, aliases: ['svc'] } }));
      await expectCode(rt.start(id), 'ORCA_RUNTIME_NOT_FOUND');
      await rt.ensureNetwork(net, { [LABEL.cluster]: f.cluster });
      await rt.start(id);
      expect((await rt.inspectNetwork(net))?.containers).toEqual([id]);
      expect(await f.aliasesOf(id, net)).toContain('svc');
    });

    it('a network removed behind its back: ensureNetwork makes it again and connect re-attaches a running container, idempotently', async () => {
      const net = network();
      await rt.ensureNetwork(net, { [LABEL.cluster]: f.cluster });
      const { id } = await running({ network: { name: net, aliases: ['svc'] }, port: 80 });
      expect((await rt.inspect(id))?.hostPort).toEqual(expect.any(Number));
      await f.removeNetworkBehindBack(net);
      expect(await rt.inspectNetwork(net)).toBeUndefined();
      // Still running, but off its only network it publishes nothing.
      expect(await rt.inspect(id)).toMatchObject({ status: 'running', hostPort: null, ports: {} });
      expect(await f.aliasesOf(id, net)).toEqual([]);
      await expectCode(rt.connect(id, net, ['svc']), 'ORCA_RUNTIME_NOT_FOUND');
      expect(await rt.ensureNetwork(net, { [LABEL.cluster]: f.cluster })).toBe(true);
      expect((await rt.inspectNetwork(net))?.containers).toEqual([]);
      await rt.connect(id, net, ['svc', 'again']);
      await rt.connect(id, net, ['svc', 'again']);
      expect((await rt.inspectNetwork(net))?.containers).toEqual([id]);
      expect(await f.aliasesOf(id, net)).toEqual(expect.arrayContaining(['svc', 'again']));
      // Published again (on a host port the engine picks anew).
      expect((await rt.inspect(id))?.ports['80']).toEqual(expect.any(Number));
      await expectCode(rt.connect('no-such-container-xyz', net, []), 'ORCA_RUNTIME_NOT_FOUND');
    });

    it('ensures a labelled volume once; the next container that mounts it finds the data; in use it is not removed', async () => {
      const vol = volume();
      const labels = { [LABEL.cluster]: f.cluster, [LABEL.service]: 'db', [LABEL.slot]: '0' };
      expect(await rt.ensureVolume(vol, labels)).toBe(true);
      expect(await rt.ensureVolume(vol, { ...labels, [LABEL.slot]: '9' })).toBe(false);
      const listed = await rt.listVolumes({ [LABEL.cluster]: f.cluster });
      expect(listed.map((v) => v.name)).toEqual([vol]);
      expect(listed[0]?.labels).toMatchObject(labels);
      expect(await rt.listVolumes({ [LABEL.cluster]: f.cluster, [LABEL.service]: 'other' })).toEqual([]);
      const mounts = [{ type: 'volume' as const, source: vol, target: '/data', readOnly: false }];
      const { id: first } = await running({ mounts });
      expect(await rt.exec(first, ['sh', '-c', 'echo kept > /data/x'], 10_000)).toMatchObject({ exitCode: 0 });
      await rt.remove(first, { force: true });
      const { id: second } = await running({ mounts });
      expect(await rt.exec(second, ['sh', '-c', 'cat /data/x'], 10_000)).toEqual({ exitCode: 0, output: 'kept\n', timedOut: false });
      // A stopped container still holds it.
      await rt.stop(second, 0);
      await expectCode(rt.removeVolume(vol), 'ORCA_RUNTIME_CONFLICT');
      await rt.remove(second);
      await rt.removeVolume(vol);
      await rt.removeVolume(vol);
      expect(await rt.listVolumes({ [LABEL.cluster]: f.cluster })).toEqual([]);
    });

    it('uses a bridge network of that name that it did not make, and leaves its labels alone', async () => {
      const net = network('-foreign');
      expect(await rt.ensureNetwork(net, {})).toBe(true);
      expect(await rt.ensureNetwork(net, { [LABEL.cluster]: f.cluster })).toBe(false);
      expect((await rt.inspectNetwork(net))?.labels[LABEL.cluster]).toBeUndefined();
    });

    it('lists what listens inside a running container (not what Docker forwards), and nothing for a stopped one', async () => {
      const { id: web } = await running({ command: ['/bin/httpd', '-f', '-p', '8081'], port: 80 });
      const ls = await eventually(() => rt.listeners(web), (l) => l.some((x) => x.port === 8081));
      expect(ls.find((x) => x.port === 8081)?.address).toMatch(/^(0\.0\.0\.0|::)$/);
      // Port 80 is published, so Docker forwards it on the host; nothing listens on it inside.
      expect(ls.some((x) => x.port === 80)).toBe(false);
      const { id: quiet } = await running({ command: ['sleep', '3600'] });
      expect(await rt.listeners(quiet)).toEqual([]);
      await rt.stop(quiet, 0);
      await expectCode(rt.listeners(quiet), 'ORCA_RUNTIME_NOT_FOUND');
      await expectCode(rt.listeners('no-such-container-xyz'), 'ORCA_RUNTIME_NOT_FOUND');
    });
  });
}

/** Awaits p, expecting an OrcaError with this code; returns it. */
export async function expectCode(p: Promise<unknown>, code: ErrorCode): Promise<Error> {
  try {
    await p;
  } catch (e) {
    if (isOrcaError(e, code)) return e;
    throw new Error(`expected ${code}, got ${errorMessage(e)}`, { cause: e });
  }
  throw new Error(`expected ${code}, but it succeeded`);
}

/** All items of an async iterable. */
export async function drain<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** Polls get() (real time) until ok(value); fails after timeoutMs with the last value. */
export async function eventually<T>(get: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = systemClock.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (systemClock.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms; last value: ${JSON.stringify(v)}`);
    await sleep(systemClock, 20);
  }
}

/** Collects events in the background; waitFor resolves with the first matching one. */
export function collect(rt: Runtime, labels: Record<string, string>, ac: AbortController) {
  const state = {
    events: [] as RuntimeEvent[],
    error: undefined as unknown,
    done: Promise.resolve(),
    waitFor: (pred: (e: RuntimeEvent) => boolean, timeoutMs = 10_000): Promise<RuntimeEvent> =>
      eventually(
        async () => {
          if (state.error) throw state.error;
          return state.events.find(pred);
        },
        (e) => e !== undefined,
        timeoutMs,
      ) as Promise<RuntimeEvent>,
  };
  const iterable = rt.events(labels, ac.signal);
  state.done = (async () => {
    try {
      for await (const e of iterable) state.events.push(e);
    } catch (e) {
      state.error = e;
    }
  })();
  return state;
}
