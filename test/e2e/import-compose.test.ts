/**
 * `orca import compose` as an operator coming from Compose uses it, on real Docker: a Compose
 * file using the locally built example images, translated, its secret stored with the very
 * command the import printed, and the manifest applied cleanly until every service is ready.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cleanup, cli, dockerExec, orca, startServer, stopServer, testEnv, waitFor, type ServerProcess } from './harness.js';
import { httpClient } from './http-client.js';
import { DockerRuntime } from '../../runtime/docker-runtime.js';
import { LABEL } from '../../runtime/labels.js';
import { TEST_IMAGE } from '../images.js';

const COMPOSE = `# Built locally: node dist/examples/build-images.js
services:
  web:
    image: orca-example/web:1
    build: ./web
    ports:
      - "127.0.0.1:8081:80"
    environment:
      GREETING: hello from compose
    healthcheck:
      test: ["CMD", "cat", "/www/ready"]
      interval: 500ms
      timeout: 2s
      retries: 3
    restart: always
    deploy:
      replicas: 2
    depends_on: [worker]

  worker:
    image: ${TEST_IMAGE}
    command: sleep 3600
    volumes:
      - worker_data:/data
    secrets:
      - db_password
    stop_grace_period: 1s
    networks: [back]

secrets:
  db_password:
    file: ./secrets/db_password.txt
networks:
  back:
volumes:
  worker_data:
`;

describe('orca import compose, then orca apply', () => {
  let env: { cluster: string; dataDir: string };
  let server: ServerProcess | undefined;
  let run: ReturnType<typeof cli>;

  beforeAll(async () => {
    env = await testEnv('compose');
    server = await startServer(env);
    run = cli(server, env.dataDir);
  });
  afterAll(async () => {
    await stopServer(server);
    await cleanup(env.cluster, env.dataDir);
  });

  it('translates a Compose file whose output applies cleanly: every service ready, routed, its secret and volume in place', async () => {
    const dir = join(env.dataDir, 'project');
    await mkdir(join(dir, 'secrets'), { recursive: true });
    await writeFile(join(dir, 'compose.yml'), COMPOSE);
    await writeFile(join(dir, 'secrets', 'db_password.txt'), 's3cret-from-compose');

    const imported = await orca(['import', 'compose', join(dir, 'compose.yml')]);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stderr).toContain(`${join(dir, 'compose.yml')}:5: services.web.build: not translated (Orca runs prebuilt images; build it and set image)`);
    expect(imported.stderr).toMatch(/compose\.yml:18: services\.web\.depends_on: not translated/);
    expect(imported.stderr).toMatch(/compose\.yml:26: services\.worker\.secrets\[0\]: secret renamed to "db-password"/);
    const manifest = join(dir, 'orca.toml');
    await writeFile(manifest, imported.stdout);

    // The secret, stored with exactly the command the import printed.
    const cmd = /^ {2}orca secret set (\S+) -f (\S+)$/m.exec(imported.stderr);
    expect(cmd, imported.stderr).not.toBeNull();
    expect(cmd![1]).toBe('db-password');
    const set = await run(['secret', 'set', cmd![1]!, '-f', cmd![2]!]);
    expect(set.code, set.stderr).toBe(0);

    const applied = await run(['apply', '-f', manifest, '--wait', '--timeout', '120'], 150_000);
    expect(applied.code, applied.stdout + applied.stderr).toBe(0);
    expect(applied.stdout).toContain('service/web created');
    expect(applied.stdout).toContain('service/worker created');

    const status = await run(['status', '-o', 'json']);
    const services = (JSON.parse(status.stdout) as { services: Array<{ name: string; state: string; replicas: { desired: number; ready: number } }> }).services;
    expect(services.find((s) => s.name === 'web')).toMatchObject({ state: 'healthy', replicas: { desired: 2, ready: 2 } });
    expect(services.find((s) => s.name === 'worker')).toMatchObject({ state: 'healthy', replicas: { desired: 1, ready: 1 } });

    // The published port became a route on the proxy.
    const http = httpClient(server!.proxy!);
    try {
      await waitFor(async () => (await http.get('web.localhost', '/').catch(() => ({ status: 0 }))).status === 200, 30_000, 'web through the proxy');
    } finally {
      http.close();
    }

    // The worker has its secret at the renamed path and its named volume.
    const rt = new DockerRuntime();
    const [worker] = await rt.list({ [LABEL.cluster]: env.cluster, [LABEL.service]: 'worker' });
    expect(worker).toBeDefined();
    expect(dockerExec(worker!.id, 'cat', '/run/secrets/db-password').toString()).toBe('s3cret-from-compose');
    const volumes = await rt.listVolumes({ [LABEL.cluster]: env.cluster });
    expect(volumes.map((v) => v.name)).toContain(`orca-${env.cluster}-worker-worker-data-0`);
  });
});
