/**
 * The cluster network on real Docker through `orca server` (SPEC §3.8): instances reach each
 * other by service name and by instance id, `orca.internal` is in every hosts file, and a network
 * removed behind Orca's back is made again, with the containers re-attached, within one watchdog
 * cycle. Only 127.0.0.1 published ports are used from the host; names are resolved inside.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../core/clock.js';
import { DockerRuntime } from '../../runtime/docker-runtime.js';
import { clusterNetwork, LABEL } from '../../runtime/labels.js';
import type { ObservedContainer } from '../../runtime/types.js';
import { TEST_IMAGE } from '../images.js';
import { cleanup, cli, dockerExec, startServer, stopServer, testEnv, waitFor, type ServerProcess } from './harness.js';

const rt = new DockerRuntime();
const WATCHDOG_SECS = 2;

describe('cluster network: names between services, orca.internal, healed when removed (real Docker)', () => {
  let env: { cluster: string; dataDir: string };
  let server: ServerProcess | undefined;
  let run: ReturnType<typeof cli>;
  let network: string;

  const running = async (service: string): Promise<ObservedContainer[]> =>
    (await rt.list({ [LABEL.cluster]: env.cluster, [LABEL.service]: service })).filter((c) => c.status === 'running');
  const one = async (service: string) => {
    const list = await running(service);
    expect(list).toHaveLength(1);
    return list[0]!;
  };
  /** `wget` from inside the client container; the page, or null when it cannot be fetched. */
  const fetchInside = (client: string, host: string): string | null => {
    try {
      return dockerExec(client, 'busybox', 'timeout', '5', 'wget', '-qO-', `http://${host}:8080/`).toString().trim();
    } catch {
      return null;
    }
  };
  const readyBoth = () =>
    waitFor(
      async () => {
        const status = JSON.parse((await run(['status', '-o', 'json'])).stdout) as { services: Array<{ name: string; replicas: { ready: number } }> };
        return ['web', 'client'].every((n) => status.services.find((s) => s.name === n)?.replicas.ready === 1);
      },
      30_000,
      'web and client ready',
    );

  beforeAll(async () => {
    env = await testEnv('network');
    network = clusterNetwork(env.cluster).name;
    server = await startServer({ ...env, extra: ['--watchdog-interval', String(WATCHDOG_SECS)] });
    run = cli(server, env.dataDir);
    const file = join(env.dataDir, 'net.toml');
    await writeFile(
      file,
      [
        '[[service]]',
        'name = "web"',
        `image = "${TEST_IMAGE}"`,
        'command = ["sh", "-c", "mkdir -p /tmp/www && echo web-ok > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]',
        'port = 8080',
        'stop_grace_secs = 0.5',
        '',
        '[[service]]',
        'name = "client"',
        `image = "${TEST_IMAGE}"`,
        'command = ["sleep", "3600"]',
        'stop_grace_secs = 0.5',
        '',
      ].join('\n'),
    );
    const r = await run(['apply', '-f', file]);
    expect(r.code, r.stderr).toBe(0);
    await readyBoth();
  });

  afterAll(async () => {
    await stopServer(server);
    await cleanup(env.cluster, env.dataDir);
    // cleanup removed the network the agent made (a test leaves nothing behind).
    expect(await rt.inspectNetwork(network)).toBeUndefined();
  });

  it('is one labelled bridge network, and every instance is on it', async () => {
    const net = await rt.inspectNetwork(network);
    expect(net).toMatchObject({ driver: 'bridge', labels: { [LABEL.cluster]: env.cluster } });
    const ids = [(await one('web')).id, (await one('client')).id];
    expect([...(net?.containers ?? [])].sort()).toEqual(ids.sort());
  });

  it('a container reaches another service by its name and by its instance id', async () => {
    const client = (await one('client')).id;
    const web = await one('web');
    expect(fetchInside(client, 'web')).toBe('web-ok');
    expect(fetchInside(client, web.labels[LABEL.instance]!)).toBe('web-ok');
    expect(fetchInside(client, 'no-such-service')).toBeNull();
  });

  it('has orca.internal in every hosts file', async () => {
    for (const service of ['web', 'client']) {
      const hosts = dockerExec((await one(service)).id, 'cat', '/etc/hosts').toString();
      expect(hosts, service).toMatch(/^\S+\s+orca\.internal$/m);
    }
  });

  it('removed behind its back: made again and the containers re-attached within one watchdog cycle, not replaced; names resolve again', async () => {
    const before = [(await one('web')).id, (await one('client')).id].sort();
    // As an operator would: disconnect everything, then remove (Docker refuses while endpoints
    // remain; the agent may re-attach a container in between, so try again as they would).
    await waitFor(
      async () => {
        for (const id of (await rt.inspectNetwork(network))?.containers ?? []) execFileSync('docker', ['network', 'disconnect', '-f', network, id]);
        execFileSync('docker', ['network', 'rm', network], { stdio: 'ignore' });
        return true;
      },
      10_000,
      'docker network rm',
      0,
    );
    const removedAt = systemClock.now();
    await waitFor(async () => ((await rt.inspectNetwork(network))?.containers.length ?? 0) === 2, 15_000, 'network made again with both containers');
    // One cycle, plus the pass itself and polling on two busy cores.
    expect(systemClock.now() - removedAt).toBeLessThan(WATCHDOG_SECS * 1000 + 3_000);
    const net = await rt.inspectNetwork(network);
    expect(net?.labels[LABEL.cluster]).toBe(env.cluster);
    expect([...(net?.containers ?? [])].sort()).toEqual(before);
    expect([(await one('web')).id, (await one('client')).id].sort()).toEqual(before);
    const client = (await one('client')).id;
    const web = await one('web');
    await waitFor(() => fetchInside(client, 'web') === 'web-ok', 10_000, 'web by name again');
    expect(fetchInside(client, web.labels[LABEL.instance]!)).toBe('web-ok');
    // Republished on a new host port: web is ready there again.
    await readyBoth();
  });
});
