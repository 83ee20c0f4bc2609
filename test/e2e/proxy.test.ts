import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { WebSocket } from 'ws';
import { TEST_IMAGE, WS_ECHO_IMAGE } from '../images.js';
import { systemClock } from '../../core/clock.js';
import { cleanup, cli, startServer, stopServer, testEnv, waitFor, type ServerProcess, containerMainPid, dockerExec } from './harness.js';
import { getLoop, httpClient } from './http-client.js';

interface Instance {
  id: string;
  state: string;
  ready: boolean;
  containerId: string | null;
}

/** Each instance answers with its own hostname (the container id), so the tests see who served. */
function helloManifest(env = 'A'): string {
  return `[[service]]
name = "hello"
image = "${TEST_IMAGE}"
command = ["sh", "-c", "mkdir -p /tmp/www && hostname > /tmp/www/index.html && echo ok > /tmp/www/ready && exec httpd -f -p 80 -h /tmp/www"]
replicas = 2
port = 80
stop_grace_secs = 1
env = { VERSION = "${env}" }

[service.route]
host = "hello.localhost"

[service.readiness]
path = "/ready"
interval_secs = 0.2
timeout_secs = 0.5
failure_threshold = 1
initial_delay_secs = 0
`;
}

describe('proxy and route reconciler on real Docker', () => {
  let env: { cluster: string; dataDir: string };
  let server: ServerProcess | undefined;
  let run: ReturnType<typeof cli>;
  let http: ReturnType<typeof httpClient>;

  const instances = async (): Promise<Instance[]> => {
    const r = await run(['status', 'hello', '-o', 'json']);
    return (JSON.parse(r.stdout) as { services: Array<{ instances: Instance[] }> }).services[0]!.instances;
  };
  const apply = async (text: string) => {
    const file = join(env.dataDir, `hello-${Math.random().toString(36).slice(2)}.toml`);
    await writeFile(file, text);
    const r = await run(['apply', '-f', file, '--wait', '--timeout', '60']);
    expect(r.code, r.stderr).toBe(0);
  };
  /** Each test that needs hello with two ready instances sets it up itself (nothing to do when it is there). */
  const ensureHello = async () => {
    const r = await run(['status', 'hello', '-o', 'json']);
    const ready = r.code === 0 ? (JSON.parse(r.stdout) as { services: Array<{ replicas: { ready: number } }> }).services[0]?.replicas.ready : 0;
    if (ready !== 2) await apply(helloManifest());
    await waitFor(async () => (await instances()).filter((i) => i.ready).length === 2, 20_000, 'two ready hello instances');
  };
  /** Waits until the loop has sent n more requests than now (traffic flowed through whatever just happened). */
  const flowed = async (loop: ReturnType<typeof getLoop>, n = 20) => {
    const from = loop.result.sent;
    await waitFor(() => loop.result.sent >= from + n, 10_000, `${n} more requests through the loop`, 20);
  };
  const servedBy = async (n: number) => {
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) {
      const r = await http.get('hello.localhost');
      expect(r.status).toBe(200);
      seen.add(r.body.trim());
    }
    return seen;
  };

  beforeAll(async () => {
    env = await testEnv('proxy');
    server = await startServer({ ...env, extra: ['--watchdog-interval', '60'] });
    run = cli(server, env.dataDir);
    http = httpClient(server.proxy!);
  });

  afterAll(async () => {
    http?.close();
    await stopServer(server);
    await cleanup(env.cluster, env.dataDir);
  });

  it('routes by Host to ready instances, round-robin', async () => {
    await ensureHello();
    const seen = await servedBy(6);
    expect(seen.size).toBe(2);
  });

  it('answers 404 for an unknown host', async () => {
    expect((await http.get('nobody.localhost')).status).toBe(404);
  });

  it('takes an instance out while its readiness fails and puts it back when it passes', async () => {
    await ensureHello();
    const [a] = await instances();
    const idA = a!.containerId!.slice(0, 12);
    dockerExec(a!.containerId!, 'rm', '/tmp/www/ready');
    await waitFor(async () => (await instances()).find((i) => i.id === a!.id)?.ready === false, 5_000, 'unready');
    const seen = await servedBy(8);
    expect(seen.has(idA)).toBe(false);
    expect(seen.size).toBe(1);
    dockerExec(a!.containerId!, 'touch', '/tmp/www/ready');
    await waitFor(async () => (await servedBy(4)).has(idA), 5_000, 'back in rotation');
    const ev = (await run(['events', '--service', 'hello', '-o', 'json'])).stdout;
    expect(ev).toMatch(/"reconciler":"route".*"action":"route.remove"/);
  });

  it('answers 503 when no instance is ready', async () => {
    await ensureHello();
    const all = await instances();
    for (const i of all) dockerExec(i.containerId!, 'rm', '/tmp/www/ready');
    await waitFor(async () => (await http.get('hello.localhost')).status === 503, 5_000, '503');
    for (const i of all) dockerExec(i.containerId!, 'touch', '/tmp/www/ready');
    await waitFor(async () => (await servedBy(4)).size === 2, 5_000, 'both back');
  });

  it('loses no request of a sequential GET loop while one of 2 instances is killed with kill -9', async () => {
    await ensureHello();
    const loop = getLoop(http.get, 'hello.localhost');
    await flowed(loop);
    const [victim] = await instances();
    process.kill(containerMainPid(victim!.containerId!), 'SIGKILL');
    await waitFor(async () => (await instances()).filter((i) => i.ready && i.id !== victim!.id).length === 2, 10_000, 'replacement ready');
    await flowed(loop);
    const r = await loop.stop();
    expect(r.sent).toBeGreaterThan(100);
    expect(r.failures).toEqual([]);
  });

  it('loses no request of a GET loop during a rollout', async () => {
    await ensureHello();
    const before = new Set((await instances()).map((i) => i.id));
    const loop = getLoop(http.get, 'hello.localhost');
    await flowed(loop);
    await apply(helloManifest(`B${systemClock.now()}`)); // a spec unlike any before: a rollout whatever ran earlier
    await flowed(loop);
    const r = await loop.stop();
    const after = await instances();
    expect(after.filter((i) => before.has(i.id))).toEqual([]);
    expect(r.sent).toBeGreaterThan(100);
    expect(r.failures).toEqual([]);
  });

  it('passes WebSocket upgrades through: an echo round trip via the proxy', async () => {
    const file = join(env.dataDir, 'echo.toml');
    await writeFile(
      file,
      `[[service]]\nname = "echo"\nimage = "${WS_ECHO_IMAGE}"\nport = 80\nstop_grace_secs = 0.5\n[service.route]\nhost = "echo.localhost"\n`,
    );
    expect((await run(['apply', '-f', file, '--wait', '--timeout', '60'])).code).toBe(0);
    const ws = new WebSocket(`ws://${server!.proxy}/`, { headers: { host: 'echo.localhost' } });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const echoes: string[] = [];
    const got = new Promise<void>((resolve) =>
      ws.on('message', (m) => {
        echoes.push(m.toString());
        if (echoes.length === 3) resolve();
      }),
    );
    for (const m of ['one', 'two', 'x'.repeat(70_000)]) ws.send(m);
    await got;
    ws.close();
    expect(echoes.map((e) => e.length)).toEqual([3, 3, 70_000]);
    expect(echoes[0]).toBe('one');
  });

  it('a deleted service drains and its route goes: 404 afterwards', async () => {
    await ensureHello();
    const r = await run(['delete', 'hello']);
    expect(r.code).toBe(0);
    await waitFor(async () => (await http.get('hello.localhost')).status === 404, 10_000, '404 after delete');
  });
});
