import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEST_IMAGE } from '../images.js';
import { cleanup, cli, startAgentProcess, startServer, stopAgentProcess, stopServer, testEnv, waitFor, type AgentProcess, type ServerProcess, containerMainPid } from './harness.js';

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
  instances: number;
}

const SERVER_FLAGS = ['--heartbeat-interval', '0.2', '--heartbeat-timeout', '1', '--node-down-grace', '1.5', '--watchdog-interval', '2'];
const AGENT_FLAGS = ['--reconnect-initial', '0.2', '--reconnect-max', '0.5', '--watchdog-interval', '2'];

describe('multiple hosts: a second agent on the same Docker daemon', () => {
  let env: { cluster: string; dataDir: string };
  let agentDir: string;
  let server: ServerProcess | undefined;
  let agent: AgentProcess | undefined;
  let run: ReturnType<typeof cli>;
  let token: string;

  /** Every test uses its own service and starts from an empty cluster with n2 ready (order-independent). */
  let svc = '';
  let seq = 0;
  let applied = false;
  const instances = async (): Promise<Instance[]> => {
    const r = await run(['status', svc, '-o', 'json']);
    if (r.code !== 0) throw new Error(r.stderr);
    return (JSON.parse(r.stdout) as { services: Array<{ instances: Instance[] }> }).services[0]!.instances;
  };
  const nodes = async (): Promise<Node[]> => (JSON.parse((await run(['nodes', '-o', 'json'])).stdout) as { nodes: Node[] }).nodes;
  const liveOn = async (node: string) => (await instances()).filter((i) => i.node === node && i.state === 'running' && i.containerId);
  const containersOf = () =>
    execFileSync('docker', ['ps', '-q', '--filter', `label=orca.cluster=${env.cluster}`, '--filter', `label=orca.service=${svc}`]).toString().trim().split('\n').filter(Boolean);
  /** Applies this test's service with `replicas` replicas and waits until they are ready. */
  const applyReplicas = async (replicas: number) => {
    const file = join(env.dataDir, `${svc}-${replicas}.toml`);
    await writeFile(file, `[[service]]\nname = "${svc}"\nimage = "${TEST_IMAGE}"\ncommand = ["sleep", "3600"]\nreplicas = ${replicas}\nstop_grace_secs = 0.5\n`);
    applied = true;
    const r = await run(['apply', '-f', file, '--wait', '--timeout', '60']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  };

  beforeAll(async () => {
    env = await testEnv('multi');
    agentDir = await mkdtemp(join(tmpdir(), `${env.cluster}-n2-`));
    server = await startServer({ ...env, extra: SERVER_FLAGS });
    run = cli(server, env.dataDir);
    token = (await readFile(join(env.dataDir, 'cluster.token'), 'utf8')).trim();
    agent = startAgentProcess({ api: server.api, node: 'n2', dataDir: agentDir, token, cluster: env.cluster, extra: AGENT_FLAGS });
    await waitFor(async () => (await nodes()).some((n) => n.name === 'n2' && n.state === 'ready'), 15_000, 'n2 ready');
  });

  beforeEach(async () => {
    svc = `spread${++seq}`;
    applied = false;
    await waitFor(async () => (await nodes()).find((n) => n.name === 'n2')?.state === 'ready', 15_000, 'n2 ready before the test');
  });

  afterEach(async () => {
    // Whatever the test left (a drained node, a service), the next one starts clean.
    await run(['uncordon', 'n2']);
    if (!applied) return;
    const d = await run(['delete', svc]);
    expect(d.code, d.stderr).toBe(0);
    await waitFor(() => containersOf().length === 0, 20_000, `${svc} removed`);
  });

  afterAll(async () => {
    await stopAgentProcess(agent);
    await stopServer(server);
    await cleanup(env.cluster, env.dataDir);
    await rm(agentDir, { recursive: true, force: true });
  });

  it('spreads replicas over both nodes', async () => {
    await applyReplicas(4);
    const all = await instances();
    expect(all.filter((i) => i.node === 'n1')).toHaveLength(2);
    expect(all.filter((i) => i.node === 'n2')).toHaveLength(2);
    expect(containersOf()).toHaveLength(4);
  });

  it('a frozen agent makes its node unreachable, then down, and its replicas move; thawed, it leaves no duplicate', async () => {
    await applyReplicas(4);
    expect((await liveOn('n2')).length).toBe(2);
    process.kill(agent!.pid, 'SIGSTOP');
    const t0 = Date.now();
    try {
      await waitFor(async () => (await nodes()).find((n) => n.name === 'n2')?.state === 'unreachable', 10_000, 'n2 unreachable', 50);
      const tUnreachable = Date.now() - t0;
      await waitFor(async () => (await liveOn('n1')).filter((i) => i.ready).length === 4, 20_000, 'four ready on n1', 100);
      const tMoved = Date.now() - t0;
      expect((await nodes()).find((n) => n.name === 'n2')?.state).toBe('down');
      // The down node's last word is not counted: the service is whole again on n1.
      const st = JSON.parse((await run(['status', svc, '-o', 'json'])).stdout).services[0];
      expect(st).toMatchObject({ state: 'healthy', replicas: { desired: 4, running: 4, ready: 4 } });
      // For the closing note: freeze → unreachable and → replacements ready, beside the timeouts (1 s, +1.5 s).
      console.log(`freeze → unreachable ${tUnreachable} ms (timeout 1000); → replacements ready ${tMoved} ms (timeout + grace 2500)`);
      expect(tUnreachable).toBeLessThan(1000 + 1500);
    } finally {
      process.kill(agent!.pid, 'SIGCONT');
    }
    await waitFor(async () => (await nodes()).find((n) => n.name === 'n2')?.state === 'ready', 15_000, 'n2 back');
    // The thawed agent gets its (now empty) assignment set and removes what moved away.
    await waitFor(async () => containersOf().length === 4, 15_000, 'no duplicate left');
    const live = (await instances()).filter((i) => i.containerId && i.state === 'running');
    expect(live.every((i) => i.node === 'n1')).toBe(true);
  });

  it('drain moves replicas off a node start-first, and uncordon lets it take new ones', async () => {
    await applyReplicas(4);
    expect((await liveOn('n2')).length).toBe(2);
    const d = await run(['drain', 'n2']);
    expect(d).toMatchObject({ code: 0 });
    expect(d.stdout).toContain('node/n2 drained');
    await waitFor(async () => (await liveOn('n2')).length === 0 && (await liveOn('n1')).filter((i) => i.ready).length === 4, 20_000, 'drained');
    expect((await nodes()).find((n) => n.name === 'n2')?.state).toBe('draining');
    const u = await run(['uncordon', 'n2']);
    expect(u.stdout).toContain('node/n2 uncordoned (now ready)');
    // Uncordoned, n2 takes new replicas again: scaling up spreads to the emptier node.
    await applyReplicas(6);
    expect((await liveOn('n2')).length).toBe(2);
  });

  it('with the server killed, the agent heals on its own; the server back, the agent reconnects', async () => {
    await applyReplicas(4);
    const onN2 = await liveOn('n2');
    expect(onN2.length).toBe(2);

    await stopServer(server, 'SIGKILL');
    // Cut off, the agent even survives its own restart: its assignments are in agent.db.
    await stopAgentProcess(agent);
    agent = startAgentProcess({ api: server!.api, node: 'n2', dataDir: agentDir, token, cluster: env.cluster, extra: AGENT_FLAGS });
    await waitFor(() => agent!.logs().includes('using cached assignments'), 10_000, 'agent back on its cache');
    const victim = onN2[0]!;
    process.kill(containerMainPid(victim.containerId!), 'SIGKILL');
    // The agent replaces it from its cached assignments, with no server.
    await waitFor(
      () => {
        const ids = execFileSync('docker', ['ps', '--format', '{{.Labels}}', '--filter', `label=orca.cluster=${env.cluster}`, '--filter', 'label=orca.node=n2']).toString();
        return !ids.includes(victim.id) && ids.split('\n').filter(Boolean).length === onN2.length;
      },
      10_000,
      'agent healed alone',
    );

    // Back on the same address, which is where the agent keeps dialling.
    const apiPort = new URL(server!.api).port;
    server = await startServer({ ...env, extra: [...SERVER_FLAGS, '--api-listen', `127.0.0.1:${apiPort}`] });
    run = cli(server, env.dataDir);
    await waitFor(() => /"node":"n2"[^\n]*"msg":"agent session established"/.test(server!.logs()), 15_000, 'agent reconnected');
    // The agent logs it once the welcome arrives, a moment after the server did.
    await waitFor(() => agent!.logs().includes('session with the server established'), 5_000, 'agent welcomed');
    expect((await nodes()).find((n) => n.name === 'n2')?.state).toBe('ready');
    await waitFor(async () => (await instances()).filter((i) => i.ready).length === 4, 20_000, 'all ready');
  });

  it('an agent of another cluster id is refused and exits 2 saying so', async () => {
    const dir = await mkdtemp(join(tmpdir(), `${env.cluster}-other-`));
    const other = startAgentProcess({ api: server!.api, node: 'n4', dataDir: dir, token, cluster: `${env.cluster}-other`, extra: AGENT_FLAGS });
    try {
      const code = await Promise.race([other.exited, new Promise((r) => setTimeout(() => r('still running'), 15_000))]);
      expect(code, other.logs()).toBe(2);
      expect(other.logs()).toMatch(/agent is in cluster "[^"]+-other", this server is/);
    } finally {
      await stopAgentProcess(other);
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses an agent with a wrong token and logs it without the token', async () => {
    const dir = await mkdtemp(join(tmpdir(), `${env.cluster}-bad-`));
    const bad = startAgentProcess({ api: server!.api, node: 'n3', dataDir: dir, token: 'not-the-token-1234', cluster: env.cluster, extra: AGENT_FLAGS });
    try {
      await waitFor(() => bad.logs().includes('401'), 10_000, 'refused');
      // Retrying a wrong token cannot help: the agent says why and exits 2, at once.
      const code = await Promise.race([bad.exited, new Promise((r) => setTimeout(() => r('still running'), 10_000))]);
      expect(code, bad.logs()).toBe(2);
      expect(bad.logs()).toMatch(/refused the token \(401\)/);
      expect(server!.logs()).toContain('agent refused: missing or wrong token');
      expect(server!.logs()).not.toContain('not-the-token-1234');
      expect((await nodes()).some((n) => n.name === 'n3')).toBe(false);
    } finally {
      await stopAgentProcess(bad);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
