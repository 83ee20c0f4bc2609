import { afterAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerRuntime } from '../../runtime/docker-runtime.js';
import { LABEL } from '../../runtime/labels.js';
import { TEST_IMAGE } from '../images.js';
import { cleanup, cli, orca, startServer, stopServer, testEnv, waitFor, type ServerProcess } from './harness.js';

const rt = new DockerRuntime();

describe('data directory and collisions on one Docker host', () => {
  const started: ServerProcess[] = [];
  const dirs: string[] = [];
  let env: { cluster: string; dataDir: string } | undefined;

  afterAll(async () => {
    for (const s of started) await stopServer(s);
    if (env) await cleanup(env.cluster, env.dataDir);
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('creates the data directory 0700 and its files 0600 before anything is written', async () => {
    env = await testEnv('datadir');
    const dataDir = join(env.dataDir, 'fresh', 'orca');
    const server = await startServer({ cluster: env.cluster, dataDir });
    started.push(server);
    expect((await stat(dataDir)).mode & 0o777).toBe(0o700);
    for (const f of ['cluster.token', 'cluster.db/CURRENT', 'agent.db/CURRENT']) {
      expect({ f, mode: (await stat(join(dataDir, f))).mode & 0o777 }).toEqual({ f, mode: 0o600 });
    }
    await stopServer(server);
  });

  it('a second server with its own data directory, same cluster id and node name, refuses and leaves the first one’s containers alone', async () => {
    env ??= await testEnv('datadir');
    const first = await startServer({ cluster: env.cluster, dataDir: env.dataDir, node: 'n1' });
    started.push(first);
    const run = cli(first, env.dataDir);
    const file = join(env.dataDir, 'web.toml');
    await writeFile(file, `[[service]]\nname = "web"\nimage = "${TEST_IMAGE}"\nreplicas = 2\nstop_grace_secs = 0.5\n`);
    expect((await run(['apply', '-f', file])).code).toBe(0);
    const mine = async () => (await rt.list({ [LABEL.cluster]: env!.cluster })).filter((c) => c.status === 'running');
    await waitFor(async () => (await mine()).length === 2, 20_000, 'two instances running');
    const before = (await mine()).map((c) => c.id).sort();

    const other = await mkdtemp(join(tmpdir(), 'orca-datadir-second-'));
    dirs.push(other);
    const second = await orca(['server', '--data-dir', other, '--cluster-id', env.cluster, '--node-name', 'n1', '--api-listen', '127.0.0.1:0', '--proxy-listen', '127.0.0.1:0'], {}, 30_000);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/never managed/);
    expect(second.stderr).toContain('--cluster-id');
    expect(second.stderr).toMatch(/web-1-[01]-/);
    expect(second.stderr).not.toMatch(/\n\s+at /);

    // The first server's containers are untouched and it still serves.
    expect((await mine()).map((c) => c.id).sort()).toEqual(before);
    expect((await run(['status'])).code).toBe(0);
  });

  it('an empty token file stops the server with a message, and the file is not replaced', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'orca-datadir-token-'));
    dirs.push(dir);
    await writeFile(join(dir, 'cluster.token'), '');
    const r = await orca(['server', '--data-dir', dir, '--cluster-id', `${env?.cluster ?? 'x'}-tok`, '--api-listen', '127.0.0.1:0', '--proxy-listen', '127.0.0.1:0'], {}, 30_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cluster\.token is empty/);
    expect((await stat(join(dir, 'cluster.token'))).size).toBe(0);
  });
});
