import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEST_IMAGE } from '../images.js';
import { systemClock } from '../../core/clock.js';
import type { EventRecord } from '../../store/types.js';
import { cleanup, cli, startAgentProcess, startServer, stopAgentProcess, stopServer, testEnv, waitFor, type AgentProcess, type ServerProcess } from './harness.js';
import { getLoop, httpClient } from './http-client.js';

/**
 * Back to spread after a node returns (SPEC §3.1 "a down node comes back", §4 orca rebalance):
 * the server (its embedded agent is n1) and a second agent n2 on this Docker daemon. n2 is frozen
 * (SIGSTOP) until it is down and its replica has moved to n1, then thawed: the service stays
 * packed on n1 until a rollout or `orca rebalance` spreads it again, start-first, while a GET
 * loop through the server's proxy (127.0.0.1) counts every failed request.
 */

interface Instance {
  id: string;
  node: string;
  state: string;
  ready: boolean;
  containerId: string | null;
}
interface Node {
  name: string;
  state: string;
}

const SERVER_FLAGS = ['--heartbeat-interval', '0.2', '--heartbeat-timeout', '1', '--node-down-grace', '1.5', '--watchdog-interval', '5'];
const AGENT_FLAGS = ['--reconnect-initial', '0.2', '--reconnect-max', '0.5', '--watchdog-interval', '5'];

/** Two replicas of a busybox httpd that answers with its hostname, ready once /ready is served. */
function webManifest(name: string, version = 'A'): string {
  return `[[service]]
name = "${name}"
image = "${TEST_IMAGE}"
command = ["sh", "-c", "mkdir -p /tmp/www && hostname > /tmp/www/index.html && echo ok > /tmp/www/ready && exec httpd -f -p 80 -h /tmp/www"]
replicas = 2
port = 80
stop_grace_secs = 1
env = { VERSION = "${version}" }

[service.route]
host = "${name}.localhost"

[service.readiness]
path = "/ready"
interval_secs = 0.2
timeout_secs = 0.5
failure_threshold = 1
initial_delay_secs = 0
`;
}

describe('back to spread after a node returns (rollout, orca rebalance)', () => {
  let env: { cluster: string; dataDir: string };
  let agentDir: string;
  let server: ServerProcess | undefined;
  let agent: AgentProcess | undefined;
  let run: ReturnType<typeof cli>;
  let http: ReturnType<typeof httpClient>;

  let svc = '';
  let seq = 0;
  let applied = false;

  const instances = async (name = svc): Promise<Instance[]> => {
    const r = await run(['status', name, '-o', 'json']);
    if (r.code !== 0) throw new Error(r.stderr);
    return (JSON.parse(r.stdout) as { services: Array<{ instances: Instance[] }> }).services[0]!.instances;
  };
  const nodeState = async (name: string) => ((JSON.parse((await run(['nodes', '-o', 'json'])).stdout) as { nodes: Node[] }).nodes.find((n) => n.name === name)?.state);
  /** Live, ready instances per node, e.g. { n1: 1, n2: 1 }. */
  const readyPerNode = async (name = svc): Promise<Record<string, number>> => {
    const out: Record<string, number> = {};
    for (const i of await instances(name)) if (i.containerId && i.state === 'running' && i.ready) out[i.node] = (out[i.node] ?? 0) + 1;
    return out;
  };
  const containersOf = (name = svc) =>
    execFileSync('docker', ['ps', '-q', '--filter', `label=orca.cluster=${env.cluster}`, '--filter', `label=orca.service=${name}`]).toString().trim().split('\n').filter(Boolean);
  const events = async (name = svc): Promise<EventRecord[]> =>
    (await run(['events', '--service', name, '-o', 'json'])).stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as EventRecord);
  const apply = async (text: string, file = `${svc}-${++seq}.toml`) => {
    const path = join(env.dataDir, file);
    await writeFile(path, text);
    applied = true;
    const r = await run(['apply', '-f', path, '--wait', '--timeout', '90'], 120_000);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  };
  /** Waits until the loop has sent n more requests than now (traffic flowed through whatever just happened). */
  const flowed = async (loop: ReturnType<typeof getLoop>, n = 20) => {
    const from = loop.result.sent;
    await waitFor(() => loop.result.sent >= from + n, 15_000, `${n} more requests through the loop`, 20);
  };
  /**
   * Freezes n2 until it is down and the service is whole on n1, then thaws it: n2 is ready again,
   * empty, and the service stays packed on n1 (the scheduler moves nothing back by itself).
   */
  const packOnN1 = async (replicas = 2) => {
    process.kill(agent!.pid, 'SIGSTOP');
    try {
      await waitFor(async () => (await nodeState('n2')) === 'down', 20_000, 'n2 down', 100);
      await waitFor(async () => (await readyPerNode()).n1 === replicas, 30_000, `${replicas} ready on n1`, 100);
    } finally {
      process.kill(agent!.pid, 'SIGCONT');
    }
    await waitFor(async () => (await nodeState('n2')) === 'ready', 20_000, 'n2 back');
    await waitFor(() => containersOf().length === replicas, 20_000, 'what moved away removed from n2');
    expect(await readyPerNode()).toEqual({ n1: replicas });
  };

  beforeAll(async () => {
    env = await testEnv('rebalance');
    agentDir = await mkdtemp(join(tmpdir(), `${env.cluster}-n2-`));
    server = await startServer({ ...env, extra: SERVER_FLAGS });
    run = cli(server, env.dataDir);
    http = httpClient(server.proxy!);
    const token = (await readFile(join(env.dataDir, 'cluster.token'), 'utf8')).trim();
    agent = startAgentProcess({ api: server.api, node: 'n2', dataDir: agentDir, token, cluster: env.cluster, extra: AGENT_FLAGS });
    await waitFor(async () => (await nodeState('n2')) === 'ready', 15_000, 'n2 ready');
  });

  beforeEach(async () => {
    svc = `web${++seq}`;
    applied = false;
    await waitFor(async () => (await nodeState('n2')) === 'ready', 15_000, 'n2 ready before the test');
  });

  afterEach(async () => {
    await run(['uncordon', 'n2']);
    if (!applied) return;
    const d = await run(['delete', svc, '--volumes'], 90_000);
    expect(d.code, d.stderr).toBe(0);
    await waitFor(() => containersOf().length === 0, 30_000, `${svc} removed`);
  });

  afterAll(async () => {
    http?.close();
    await stopAgentProcess(agent);
    await stopServer(server);
    await cleanup(env.cluster, env.dataDir);
    await rm(agentDir, { recursive: true, force: true });
  });

  it('a rollout after n2 came back restores one replica per node, start-first, with no failed request', async () => {
    await apply(webManifest(svc));
    expect(await readyPerNode()).toEqual({ n1: 1, n2: 1 });
    await packOnN1();

    const loop = getLoop(http.get, `${svc}.localhost`);
    try {
      await flowed(loop);
      const t0 = systemClock.now();
      await apply(webManifest(svc, 'B'));
      // The moved slot's old instance leaves n1 once the new one is ready on n2.
      await waitFor(
        async () => {
          const all = await instances();
          return all.length === 2 && all.every((i) => i.id.startsWith(`${svc}-2-`) && i.ready) && containersOf().length === 2;
        },
        30_000,
        'the old instances gone',
      );
      console.log(`rollout with a spread move: apply → spread ${systemClock.now() - t0} ms`);
      await flowed(loop);
    } finally {
      const r = await loop.stop();
      console.log(`rollout: ${r.sent} requests through the proxy, ${r.failed} failed`);
      expect(r.sent).toBeGreaterThan(50);
      expect(r.failures).toEqual([]);
    }
    expect(await readyPerNode()).toEqual({ n1: 1, n2: 1 });
    const ev = await events();
    expect(ev.filter((e) => e.action === 'slot.reschedule' && e.reason === 'rollout')).toEqual([
      expect.objectContaining({ node: 'n2', message: `${svc}/1 from n1 (ready) to n2` }),
    ]);
    // Revision 2 of the moved slot started on n2 only: n1 kept revision 1 of it serving meanwhile.
    expect(ev.filter((e) => e.action === 'container.create' && e.instance?.startsWith(`${svc}-2-1-`)).map((e) => e.node)).toEqual(['n2']);
  });

  it('orca rebalance after n2 came back restores one replica per node, start-first, with no failed request', async () => {
    await apply(webManifest(svc));
    await packOnN1();
    const before = await instances();

    const loop = getLoop(http.get, `${svc}.localhost`);
    let out;
    try {
      await flowed(loop);
      const t0 = systemClock.now();
      out = await run(['rebalance', svc], 120_000);
      console.log(`orca rebalance (one move): ${systemClock.now() - t0} ms; ${out.stdout.trim().split('\n').join(' | ')}`);
      await flowed(loop);
    } finally {
      const r = await loop.stop();
      console.log(`rebalance: ${r.sent} requests through the proxy, ${r.failed} failed`);
      expect(r.sent).toBeGreaterThan(50);
      expect(r.failures).toEqual([]);
    }
    expect(out.code, out.stdout + out.stderr).toBe(0);
    expect(out.stdout).toContain(`moving ${svc}/1 from n1 to n2 …`);
    expect(out.stdout).toMatch(new RegExp(`moved ${svc}/1 from n1 to n2: ${svc}-1-1-\\S+ ready in \\d+\\.\\d s, the old one gone \\d+\\.\\d s later`));
    expect(out.stdout).toContain(`rebalanced: 1 replica moved; service "${svc}" is spread`);
    // Already on the move's return the old instance is gone: exactly one per node, the slot-0 one untouched.
    expect(containersOf()).toHaveLength(2);
    expect(await readyPerNode()).toEqual({ n1: 1, n2: 1 });
    const after = await instances();
    expect(after.find((i) => i.node === 'n1')?.id).toBe(before.find((i) => i.id.startsWith(`${svc}-1-0-`))?.id);

    const ev = await events();
    expect(ev.filter((e) => e.reason === 'rebalance').map((e) => [e.action, e.node, e.outcome, e.message])).toEqual([
      ['slot.reschedule', 'n2', 'ok', `${svc}/1 from n1 (ready) to n2`],
      ['rebalance.move', 'n2', 'ok', `${svc}/1 from n1 to n2`],
    ]);

    // Spread now, and it stays: a second rebalance does nothing (exit 0, and says so), -o json too.
    const again = await run(['rebalance']);
    expect(again).toMatchObject({ code: 0, stdout: 'nothing to rebalance: every service is spread\n' });
    const json = await run(['rebalance', svc, '-o', 'json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ moved: [], failed: null, stay: [] });
    expect((await instances()).map((i) => i.id).sort()).toEqual(after.map((i) => i.id).sort());
  });

  it('orca rebalance leaves a slot with a volume where its data is', async () => {
    // Applied while n2 is drained: both slots (and their volumes) are made on n1.
    expect((await run(['drain', 'n2'])).code).toBe(0);
    await apply(`[[service]]\nname = "${svc}"\nimage = "${TEST_IMAGE}"\ncommand = ["sleep", "3600"]\nreplicas = 2\nstop_grace_secs = 0.5\nvolumes = { data = "/data" }\n`);
    expect((await run(['uncordon', 'n2'])).code).toBe(0);
    await waitFor(async () => (await nodeState('n2')) === 'ready', 10_000, 'n2 uncordoned');
    const before = (await instances()).map((i) => `${i.id}@${i.node}`).sort();
    expect(before.every((i) => i.endsWith('@n1'))).toBe(true);

    const r = await run(['rebalance', svc]);
    expect(r, r.stderr).toMatchObject({ code: 0, stdout: `nothing to rebalance: service "${svc}" is spread\nslots with volumes stay where their data is: ${svc}\n` });
    const json = await run(['rebalance', '-o', 'json']);
    expect(JSON.parse(json.stdout)).toEqual({ moved: [], failed: null, stay: [svc] });
    expect((await instances()).map((i) => `${i.id}@${i.node}`).sort()).toEqual(before);
    expect((await events()).filter((e) => e.reason === 'rebalance')).toEqual([]);
  });

  it('orca rebalance of a spread cluster moves nothing; an unknown service is exit 1 as orca status says it', async () => {
    await apply(webManifest(svc));
    const before = (await instances()).map((i) => `${i.id}@${i.node}`).sort();
    expect(await readyPerNode()).toEqual({ n1: 1, n2: 1 });
    const r = await run(['rebalance', svc]);
    expect(r).toMatchObject({ code: 0, stdout: `nothing to rebalance: service "${svc}" is spread\n`, stderr: '' });
    expect((await instances()).map((i) => `${i.id}@${i.node}`).sort()).toEqual(before);
    expect((await events()).filter((e) => e.reason === 'rebalance')).toEqual([]);

    const unknown = await run(['rebalance', 'nope']);
    const status = await run(['status', 'nope']);
    expect(unknown).toMatchObject({ code: 1, stdout: '', stderr: 'error: service "nope" not found\n' });
    expect(status.code).toBe(1);
    expect(status.stderr).toBe(unknown.stderr);
  });
});
