import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { DockerRuntime } from '../../runtime/docker-runtime.js';
import { LABEL } from '../../runtime/labels.js';
import { TEST_IMAGE } from '../images.js';
import { cleanup, cli, startServer, stopServer, testEnv, waitFor, type ServerProcess } from './harness.js';
import { DockerRelay } from './docker-proxy.js';

/**
 * A Docker daemon restart, as the server sees one: the daemon goes away (calls fail, the
 * event stream breaks), the containers it ran are dead when it comes back (no live-restore),
 * and it answers again. The server talks to Docker through a relay the test takes down and
 * brings back, so the shared daemon is never stopped.
 */
describe('Docker daemon restart (as seen through a relay)', () => {
  const real = new DockerRuntime();
  let env: { cluster: string; dataDir: string };
  let relay: DockerRelay;
  let server: ServerProcess | undefined;
  let run: ReturnType<typeof cli>;

  beforeAll(async () => {
    env = await testEnv('daemon');
    relay = new DockerRelay(join(env.dataDir, 'docker.sock'));
    await relay.up();
    server = await startServer({ ...env, extra: ['--watchdog-interval', '60'], env: { DOCKER_HOST: `unix://${relay.path}` } });
    run = cli(server, env.dataDir);
  });

  afterAll(async () => {
    await stopServer(server);
    await relay.down();
    await cleanup(env.cluster, env.dataDir);
  });

  it('survives the daemon going away, then resyncs and heals what died, within 5 s of its return', async () => {
    const file = join(env.dataDir, 'svc.toml');
    await writeFile(file, `[[service]]\nname = "steady"\nimage = "${TEST_IMAGE}"\ncommand = ["sleep", "3600"]\nreplicas = 2\nstop_grace_secs = 0.5\n`);
    expect((await run(['apply', '-f', file])).code).toBe(0);
    const mine = { [LABEL.cluster]: env.cluster, [LABEL.service]: 'steady' };
    await waitFor(async () => (await real.list(mine)).filter((c) => c.status === 'running').length === 2, 20_000, 'two running');
    const before = (await real.list(mine)).map((c) => c.id);

    await relay.down();
    // While "the daemon is down" its containers die (a daemon restart without live-restore stops them).
    for (const id of before) await real.kill(id, 'SIGKILL');
    await waitFor(async () => (await real.list(mine)).every((c) => c.status !== 'running'), 10_000, 'the containers dead');
    // It cannot observe, and says so rather than guessing (once it has noticed the daemon is gone).
    let st = await run(['status']);
    await waitFor(async () => (st = await run(['status'])).code === 1, 10_000, 'status failing for want of Docker');
    expect(st.stderr).toMatch(/docker|runtime|engine/i);
    expect(server!.child.exitCode).toBeNull(); // the server is still there
    expect((await fetch(`${server!.api}/healthz`)).status).toBe(200);

    await relay.up();
    const back = Date.now();
    await waitFor(
      async () => (await real.list(mine)).filter((c) => c.status === 'running' && !before.includes(c.id)).length === 2,
      15_000,
      'two replacements running',
      50,
    );
    expect(Date.now() - back).toBeLessThan(5000);
    const s = JSON.parse((await run(['status', 'steady', '-o', 'json'])).stdout);
    expect(s.services[0]).toMatchObject({ state: 'healthy', replicas: { running: 2 } });
  });
});
