import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { HEALTHCHECK_IMAGE } from '../images.js';
import { DockerRuntime } from '../../runtime/docker-runtime.js';
import { cleanup, cli, startServer, stopServer, testEnv, waitFor, type ServerProcess, dockerExec } from './harness.js';

interface Instance {
  id: string;
  state: string;
  ready: boolean;
  restarts: number;
  lastExit: { code: number | null; reason: string; at: string } | null;
  containerId: string | null;
  address: string | null;
}
interface Service {
  name: string;
  revision: number;
  state: string;
  reason?: string;
  replicas: { desired: number; running: number; ready: number };
  instances: Instance[];
}

const body = async (address: string) => (await fetch(`http://${address}/`)).text();

describe('health probes and rollouts on real Docker', () => {
  let env: { cluster: string; dataDir: string };
  let server: ServerProcess | undefined;
  let run: ReturnType<typeof cli>;

  const status = async (name: string): Promise<Service> => {
    const r = await run(['status', name, '-o', 'json']);
    if (r.code !== 0) throw new Error(r.stderr);
    return (JSON.parse(r.stdout) as { services: Service[] }).services[0]!;
  };
  const manifest = async (name: string, text: string) => {
    const file = join(env.dataDir, `${name}-${Math.random().toString(36).slice(2)}.toml`);
    await writeFile(file, text);
    return file;
  };
  const web = (name: string, version: 1 | 2, extra = '') =>
    `[[service]]\nname = "${name}"\nimage = "orca-example/web:${version}"\nreplicas = 2\nport = 80\nstop_grace_secs = 0.5\n${extra}\n`;
  const fastReadiness = (path = '/ready') => `[service.readiness]\npath = "${path}"\ninterval_secs = 0.2\ntimeout_secs = 0.5\nfailure_threshold = 1\ninitial_delay_secs = 0\n`;

  beforeAll(async () => {
    env = await testEnv('probes');
    server = await startServer({ ...env, extra: ['--watchdog-interval', '60'] });
    run = cli(server, env.dataDir);
  });

  afterAll(async () => {
    await stopServer(server);
    await cleanup(env.cluster, env.dataDir);
  });

  it('readiness failing keeps the container but marks it not ready; passing again restores it', async () => {
    const file = await manifest('ready', web('ready', 1, fastReadiness()));
    expect((await run(['apply', '-f', file, '--wait', '--timeout', '30'])).code).toBe(0);
    const [a] = (await status('ready')).instances;
    dockerExec(a!.containerId!, 'rm', '/www/ready');
    await waitFor(async () => (await status('ready')).instances.find((i) => i.id === a!.id)?.ready === false, 5_000, 'not ready');
    const s = await status('ready');
    expect(s.instances.find((i) => i.id === a!.id)).toMatchObject({ state: 'running', containerId: a!.containerId, restarts: 0 });
    expect(s.replicas).toMatchObject({ running: 2, ready: 1 });
    expect(s.state).toBe('degraded');
    dockerExec(a!.containerId!, 'touch', '/www/ready');
    await waitFor(async () => (await status('ready')).replicas.ready === 2, 5_000, 'ready again');
    expect((await status('ready')).instances.find((i) => i.id === a!.id)?.containerId).toBe(a!.containerId);
  });

  it('liveness failing restarts the instance within interval × threshold plus start time', async () => {
    const liveness = '[service.liveness]\npath = "/healthz"\ninterval_secs = 0.3\ntimeout_secs = 0.5\nfailure_threshold = 2\n';
    const file = await manifest('alive', web('alive', 1, fastReadiness() + liveness).replace('replicas = 2', 'replicas = 1'));
    expect((await run(['apply', '-f', file, '--wait', '--timeout', '30'])).code).toBe(0);
    const [a] = (await status('alive')).instances;
    const t0 = Date.now();
    dockerExec(a!.containerId!, 'rm', '/www/healthz');
    let replacement: Instance | undefined;
    await waitFor(async () => {
      replacement = (await status('alive')).instances.find((i) => i.id !== a!.id && i.ready);
      return replacement !== undefined;
    }, 10_000, 'a ready replacement', 50);
    const took = Date.now() - t0;
    // interval × threshold = 0.6 s, plus one interval of phase, plus the replacement's create,
    // start and first readiness pass (Docker alone takes 0.3–0.9 s to create and start here).
    expect(took).toBeLessThan(0.3 * 2 * 1000 + 300 + 2000);
    expect(replacement).toMatchObject({ restarts: 1, lastExit: { reason: 'LivenessFailed' } });
    const ev = (await run(['events', '--service', 'alive', '-o', 'json'])).stdout;
    expect(ev).toContain('instance.liveness-failed');
    expect(ev).toContain('replace-after-liveness');
  });

  it('a rollout to a version that never becomes ready fails --wait with exit 1 and leaves the old version serving', async () => {
    const v1 = await manifest('roll', web('roll', 1, fastReadiness()) + '[service.deploy]\nready_timeout_secs = 2\n');
    expect((await run(['apply', '-f', v1, '--wait', '--timeout', '30'])).code).toBe(0);
    const before = (await status('roll')).instances;
    const v2 = await manifest('roll', web('roll', 2, fastReadiness('/never')) + '[service.deploy]\nready_timeout_secs = 2\n');
    const r = await run(['apply', '-f', v2, '--wait', '--timeout', '30']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('service/roll configured');
    expect(r.stderr).toMatch(/rollout failed: .*not ready within ready_timeout_secs = 2/);
    // Why, where people look: the probe's answer and the way back.
    expect(r.stderr).toMatch(/last readiness check: HTTP 404/);
    expect(r.stderr).toMatch(/orca rollback roll/);
    const s = await status('roll');
    expect(s.state).toBe('rollout-failed');
    expect(s.reason).toMatch(/ready_timeout_secs/);
    // The row counts the old instances that serve, as listed under it; none shows the new one's exit.
    expect(s.replicas).toMatchObject({ running: before.length, ready: before.length });
    for (const i of s.instances.filter((x) => x.containerId)) expect(i.lastExit).toBeNull();
    // The old instances are untouched and still answer with v1.
    const live = s.instances.filter((i) => i.containerId);
    expect(live.map((i) => i.containerId).sort()).toEqual(before.map((i) => i.containerId).sort());
    for (const i of live) expect(await body(i.address!)).toBe('orca-example web v1');
    const h = await run(['history', 'roll']);
    expect(h.stdout).toMatch(/\*2 .*orca-example\/web:2 .*rollout-failed/);
  });

  it('rolls out start-first one instance at a time, and rollback brings the old image back', async () => {
    const v1 = await manifest('flip', web('flip', 1, fastReadiness()));
    expect((await run(['apply', '-f', v1, '--wait', '--timeout', '30'])).code).toBe(0);
    const v2 = await manifest('flip', web('flip', 2, fastReadiness()));
    let maxLive = 0;
    let minReady = 2;
    const watching = (async () => {
      for (let i = 0; i < 200; i++) {
        const s = await status('flip').catch(() => undefined);
        if (s) {
          maxLive = Math.max(maxLive, s.instances.filter((x) => x.state === 'running').length);
          minReady = Math.min(minReady, s.instances.filter((x) => x.ready).length);
          if (s.state === 'healthy' && s.revision === 2) return;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const r = await run(['apply', '-f', v2, '--wait', '--timeout', '30']);
    await watching;
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/revision 2 healthy: 2\/2 ready/);
    expect(maxLive).toBeLessThanOrEqual(3); // a surge of one
    expect(minReady).toBeGreaterThanOrEqual(2); // never fewer than the desired ready instances
    for (const i of (await status('flip')).instances) expect(await body(i.address!)).toBe('orca-example web v2');

    const rb = await run(['rollback', 'flip']);
    expect(rb.stdout).toContain('rolled back to revision 1 as revision 3');
    await waitFor(async () => {
      const s = await status('flip');
      return s.revision === 3 && s.state === 'healthy' && s.instances.length === 2;
    }, 20_000, 'rolled back');
    for (const i of (await status('flip')).instances) expect(await body(i.address!)).toBe('orca-example web v1');
    const h = await run(['history', 'flip']);
    expect(h.stdout).toMatch(/ 2 .*orca-example\/web:2 .*rolled-out/);
    expect(h.stdout).toMatch(/\*3 .*orca-example\/web:1 .*rollback of 1/);
  });

  it("an image's HEALTHCHECK turning unhealthy restarts the instance (no liveness in the manifest)", async () => {
    const file = await manifest(
      'hc',
      `[[service]]\nname = "hc"\nimage = "${HEALTHCHECK_IMAGE}"\ncommand = ["sh", "-c", "touch /tmp/healthy; exec sleep 3600"]\nstop_grace_secs = 0.5\n`,
    );
    expect((await run(['apply', '-f', file, '--wait', '--timeout', '30'])).code).toBe(0);
    const [a] = (await status('hc')).instances;
    // Docker must have seen it healthy first: only a turn to unhealthy counts.
    const docker = new DockerRuntime();
    await waitFor(async () => (await docker.inspect(a!.containerId!))?.health === 'healthy', 10_000, 'Docker seeing it healthy');
    dockerExec(a!.containerId!, 'rm', '/tmp/healthy');
    await waitFor(async () => (await status('hc')).instances.some((i) => i.id !== a!.id && i.state === 'running'), 10_000, 'replaced');
    const s = await status('hc');
    expect(s.instances.find((i) => i.state === 'running')).toMatchObject({ restarts: 1, lastExit: { reason: 'Unhealthy' } });
  });
});
