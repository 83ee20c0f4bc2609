import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerRuntime } from '../../runtime/docker-runtime.js';
import { LABEL } from '../../runtime/labels.js';
import { httpClient } from './http-client.js';
import { cleanup, cli, containerMainPid, startServer, stopServer, testEnv, waitFor, type ServerProcess } from './harness.js';

/**
 * SPEC §3.8 on real Docker with the example database: redis keeps its append-only file (fsync
 * always) on the slot's named volume, and every replacement of the slot mounts it again.
 */
const rt = new DockerRuntime();
let env: { cluster: string; dataDir: string };
let server: ServerProcess | undefined;
let orca: ReturnType<typeof cli>;
let hostDir: string;

const manifest = (redisEnv: string) => `
[[service]]
name = "redis"
image = "orca-example/redis:7"
port = 6379
stop_grace_secs = 5
volumes = { data = "/data" }
env = { REV = "${redisEnv}" }
[service.restart]
backoff_initial_secs = 0.2

[[service]]
name = "counter"
image = "orca-example/counter:1"
port = 80
stop_grace_secs = 1
[service.route]
host = "counter.localhost"
`;

async function apply(text: string): Promise<void> {
  const file = join(env.dataDir, 'm.toml');
  await writeFile(file, text);
  const r = await orca(['apply', '-f', file, '--wait', '--timeout', '90s']);
  expect(r.code, r.stderr + r.stdout).toBe(0);
}

async function get(path: string): Promise<string> {
  // A client per request: the proxy's port changes when the server is restarted.
  const c = httpClient(server?.proxy ?? '');
  try {
    const res = await c.get('counter.localhost', path);
    if (res.status !== 200) throw new Error(`${path}: HTTP ${res.status} ${res.body}`);
    return res.body.trim();
  } finally {
    c.close();
  }
}

/** Writes n hits through the proxy; each answer is an acknowledged write. Returns the last count. */
async function hits(n: number): Promise<number> {
  let last = 0;
  for (let i = 0; i < n; i++) {
    const m = /hits (\d+)/.exec(await get('/cgi-bin/hit'));
    if (!m) throw new Error('no count in the answer');
    last = Number(m[1]);
  }
  return last;
}

const count = async () => Number(/(\d+)/.exec(await get('/cgi-bin/count'))?.[1] ?? NaN);
const containers = (service: string) => rt.list({ [LABEL.cluster]: env.cluster, [LABEL.service]: service });
const running = async (service: string) => (await containers(service)).filter((c) => c.status === 'running');
const volumes = () => rt.listVolumes({ [LABEL.cluster]: env.cluster });

/** The count reads `want` through the counter (after the database was healed). */
async function countIs(want: number): Promise<void> {
  await waitFor(async () => (await count()) === want, 30_000, `count ${want}`, 200);
}

beforeAll(async () => {
  env = await testEnv('stateful');
  hostDir = await mkdtemp(join(tmpdir(), `${env.cluster}-host-`));
  await mkdir(join(hostDir, 'allowed'));
  await writeFile(join(hostDir, 'allowed', 'greeting'), 'hello from the host\n');
  server = await startServer({ cluster: env.cluster, dataDir: env.dataDir, extra: ['--allow-host-path', join(hostDir, 'allowed')] });
  orca = cli(server, env.dataDir);
  await apply(manifest('1'));
}, 180_000);

afterAll(async () => {
  await stopServer(server);
  if (env) await cleanup(env.cluster, env.dataDir);
  if (hostDir) await rm(hostDir, { recursive: true, force: true });
});

describe('stateful services (SPEC §3.8)', () => {
  let n = 0;
  let counterId = '';

  it('writes through the proxy land in redis on its slot volume, listed by orca volumes', async () => {
    n = await hits(5);
    expect(n).toBe(5);
    const vols = await volumes();
    expect(vols.map((v) => v.name)).toEqual([`orca-${env.cluster}-redis-data-0`]);
    expect(vols[0]?.labels).toMatchObject({ [LABEL.service]: 'redis', [LABEL.volume]: 'data', [LABEL.slot]: '0', [LABEL.node]: 'n1' });
    const r = await orca(['volumes', '-o', 'json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ volumes: [{ name: `orca-${env.cluster}-redis-data-0`, node: 'n1', service: 'redis', volume: 'data', slot: 0, inUse: true }] });
    counterId = (await running('counter'))[0]?.id ?? '';
  });

  it('kill -9 of redis: after healing the count is intact and the same counter reaches the new redis', async () => {
    const [db] = await running('redis');
    process.kill(containerMainPid(db!.id), 'SIGKILL');
    await waitFor(async () => (await running('redis')).some((c) => c.id !== db!.id), 30_000, 'a replacement redis');
    await countIs(n);
    n = await hits(3);
    expect(n).toBe(8);
    expect((await running('counter')).map((c) => c.id)).toEqual([counterId]);
  });

  it('a rollout of redis to a new revision keeps the data', async () => {
    const before = (await running('redis'))[0]?.id;
    await apply(manifest('2'));
    await waitFor(async () => (await running('redis')).every((c) => c.id !== before) && (await running('redis')).length === 1, 30_000, 'redis rolled out');
    await countIs(n);
  });

  it('orca server killed (SIGKILL) and restarted: nothing is recreated and the data is there', async () => {
    const before = (await running('redis'))[0]?.id;
    await stopServer(server, 'SIGKILL');
    server = await startServer({ cluster: env.cluster, dataDir: env.dataDir, extra: ['--allow-host-path', join(hostDir, 'allowed')] });
    orca = cli(server, env.dataDir);
    await countIs(n);
    expect((await running('redis')).map((c) => c.id)).toEqual([before]);
  });

  it('scaled to 0 the volume stays; back to 1 the slot mounts it again', async () => {
    await apply(manifest('2').replace('port = 6379', 'port = 6379\nreplicas = 0'));
    await waitFor(async () => (await containers('redis')).length === 0, 30_000, 'redis scaled to 0');
    expect((await volumes()).map((v) => v.name)).toEqual([`orca-${env.cluster}-redis-data-0`]);
    await apply(manifest('2'));
    await countIs(n);
  });

  it('orca delete redis keeps the volume; delete --volumes removes it once the container is gone', async () => {
    let r = await orca(['delete', 'redis']);
    expect(r.code, r.stderr).toBe(0);
    await waitFor(async () => (await containers('redis')).length === 0, 30_000, 'redis removed');
    expect((await volumes()).length).toBe(1);
    await apply(manifest('2'));
    await countIs(n);
    r = await orca(['delete', 'redis', '--volumes'], 90_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`volume/orca-${env.cluster}-redis-data-0 removed`);
    expect(await containers('redis')).toEqual([]);
    expect(await volumes()).toEqual([]);
  });

  it('host mounts: a path under --allow-host-path is mounted; one outside stays pending with the reason', async () => {
    const file = join(env.dataDir, 'files.toml');
    await writeFile(
      file,
      `[[service]]\nname = "files"\nimage = "orca-example/counter:1"\nmounts = [{ host = "${join(hostDir, 'allowed')}", path = "/srv", read_only = true }]\n` +
        `[[service]]\nname = "outside"\nimage = "orca-example/counter:1"\nmounts = [{ host = "${hostDir}", path = "/srv", read_only = true }]\n`,
    );
    const r = await orca(['apply', '-f', file]);
    expect(r.code, r.stderr).toBe(0);
    await waitFor(async () => (await running('files')).length === 1, 30_000, 'files running');
    const [f] = await running('files');
    expect((await rt.exec(f!.id, ['cat', '/srv/greeting'], 5000)).output).toBe('hello from the host\n');
    await waitFor(
      async () => {
        const s = JSON.parse((await orca(['status', 'outside', '-o', 'json'])).stdout) as { services: Array<{ state: string; instances: Array<{ state: string; error: string | null }> }> };
        const inst = s.services[0]?.instances[0];
        return s.services[0]?.state === 'degraded' && inst?.state === 'pending' && (inst.error ?? '').includes('allows host path');
      },
      15_000,
      'outside pending with the reason',
    );
    expect(await containers('outside')).toEqual([]);
  });
});
