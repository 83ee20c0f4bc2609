import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OOM_COMMAND, TEST_IMAGE } from '../images.js';
import { cleanup, cli, orca, startAgentProcess, startServer, stopAgentProcess, stopServer, testEnv, waitFor, holdsFor, type AgentProcess, type ServerProcess } from './harness.js';

interface Received {
  kind: string;
  service: string | null;
  instance: string | null;
  node: string | null;
  time: string;
  message: string;
}

/**
 * Alerts (SPEC §6) on real Docker with the real `orca server`: a cluster.toml with [[alert]]
 * pointing at a receiver in this process on 127.0.0.1, which answers 500 to the first POST.
 */
describe('alerts: [[alert]] webhooks', () => {
  let env: { cluster: string; dataDir: string };
  let agentDir: string;
  let server: ServerProcess | undefined;
  let agent: AgentProcess | undefined;
  let run: ReturnType<typeof cli>;
  let receiver: http.Server;
  /** Every POST, with the status it was answered. */
  const posts: Array<{ status: number; contentType: string | undefined; body: Received }> = [];
  const delivered = (kind: string) => posts.filter((p) => p.status === 200 && p.body.kind === kind);

  beforeAll(async () => {
    env = await testEnv('alerts');
    agentDir = await mkdtemp(join(tmpdir(), `${env.cluster}-n2-`));
    receiver = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => {
        const status = posts.length === 0 ? 500 : 200;
        posts.push({ status, contentType: req.headers['content-type'], body: JSON.parse(body) as Received });
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/orca`;
    const config = join(env.dataDir, 'cluster.toml');
    await writeFile(config, `[[alert]]\nwebhook = "${url}"\non = ["crashloop", "oom", "node-unreachable"]\n`);
    server = await startServer({ ...env, extra: ['--config', config, '--heartbeat-interval', '0.2', '--heartbeat-timeout', '1', '--node-down-grace', '30'] });
    run = cli(server, env.dataDir);
    const token = (await readFile(join(env.dataDir, 'cluster.token'), 'utf8')).trim();
    agent = startAgentProcess({ api: server.api, node: 'n2', dataDir: agentDir, token, cluster: env.cluster, extra: ['--reconnect-initial', '0.2', '--reconnect-max', '0.5'] });
    await waitFor(async () => {
      const r = await run(['nodes', '-o', 'json']);
      return (JSON.parse(r.stdout) as { nodes: Array<{ name: string; state: string }> }).nodes.some((n) => n.name === 'n2' && n.state === 'ready');
    }, 20_000, 'n2 ready');
  });

  afterAll(async () => {
    await stopAgentProcess(agent);
    await stopServer(server);
    if (env) await cleanup(env.cluster, env.dataDir);
    if (agentDir) await rm(agentDir, { recursive: true, force: true });
    await new Promise<void>((r) => (receiver ? receiver.close(() => r()) : r()));
  });

  it('a bad [[alert]] table: orca server exits 2 naming it, nothing started', async () => {
    const bad = join(env.dataDir, 'bad.toml');
    await writeFile(bad, '[[alert]]\nwebhook = "ftp://127.0.0.1/x"\non = ["crashloop", "disk-full"]\n');
    const dir = await mkdtemp(join(tmpdir(), `${env.cluster}-bad-`));
    try {
      const r = await orca(['server', '--config', bad, '--data-dir', dir, '--cluster-id', `${env.cluster}-bad`, '--api-listen', '127.0.0.1:0', '--proxy-listen', '127.0.0.1:0']);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('alert[0].webhook: "ftp://127.0.0.1/x": only http:// and https:// webhooks are supported');
      expect(r.stderr).toContain('alert[0].on: unknown kind "disk-full"; valid kinds: crashloop, rollout-failed, oom, node-unreachable, node-down, cert-failed');
      expect(r.stdout).not.toContain('api listening');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a service that keeps dying: one crashloop alert for many crashes, retried after the receiver’s 500, delivered once', async () => {
    const file = join(env.dataDir, 'crashy.toml');
    await writeFile(
      file,
      [
        '[[service]]',
        'name = "crashy"',
        `image = "${TEST_IMAGE}"`,
        'command = ["sh", "-c", "sleep 0.3; exit 1"]',
        'placement = { node = "n1" }',
        'stop_grace_secs = 0.5',
        '[service.restart]',
        'backoff_initial_secs = 1',
        'backoff_max_secs = 2',
      ].join('\n'),
    );
    const a = await run(['apply', '-f', file]);
    expect(a.code, a.stderr).toBe(0);
    const restarts = async () => {
      const s = JSON.parse((await run(['status', 'crashy', '-o', 'json'])).stdout) as { services: Array<{ instances: Array<{ restarts: number }> }> };
      return Math.max(0, ...s.services[0]!.instances.map((i) => i.restarts));
    };
    // Several crashes, and the first delivery (500) retried and answered 200.
    await waitFor(async () => (await restarts()) >= 5 && delivered('crashloop').length >= 1, 60_000, 'five crashes and a delivered crashloop alert', 250);
    const crashloops = posts.filter((p) => p.body.kind === 'crashloop');
    expect(crashloops.map((p) => p.status)).toEqual([500, 200]);
    expect(delivered('crashloop')).toHaveLength(1);
    const body = delivered('crashloop')[0]!.body;
    expect(Object.keys(body).sort()).toEqual(['instance', 'kind', 'message', 'node', 'service', 'time']);
    expect(body).toMatchObject({ kind: 'crashloop', service: 'crashy', node: 'n1' });
    expect(body.instance).toMatch(/^crashy-/);
    expect(body.message).toContain('crash-looping');
    expect(Number.isNaN(Date.parse(body.time))).toBe(false);
    expect(crashloops[0]!.contentType).toBe('application/json');
    // The retry is in the reconciliation log.
    const ev = await run(['events', '-o', 'json']);
    const deliveries = ev.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { reconciler: string; action: string; outcome: string; reason: string }).filter((e) => e.action === 'alert.deliver');
    expect(deliveries.map((e) => `${e.reconciler} ${e.outcome} ${e.reason}`)).toEqual(['alert failed HTTP 500', 'alert ok HTTP 200']);
    // Still crash-looping a few crashes later: nothing more.
    const before = await restarts();
    await waitFor(async () => (await restarts()) >= before + 2, 30_000, 'two more crashes', 250);
    expect(posts.filter((p) => p.body.kind === 'crashloop')).toHaveLength(2);
    console.log(`crashloop: ${await restarts()} restarts, ${delivered('crashloop').length} alert delivered (after one 500)`);
    await run(['delete', 'crashy']);
  });

  it('a service killed by the OOM killer again and again: one oom alert within the minute, naming the instance and the hint', async () => {
    const file = join(env.dataDir, 'hungry.toml');
    await writeFile(
      file,
      [
        '[[service]]',
        'name = "hungry"',
        `image = "${TEST_IMAGE}"`,
        OOM_COMMAND,
        'placement = { node = "n1" }',
        'stop_grace_secs = 0.5',
        '[service.resources]',
        'memory = "8m"',
        '[service.restart]',
        'backoff_initial_secs = 0.5',
        'backoff_max_secs = 1',
      ].join('\n'),
    );
    const a = await run(['apply', '-f', file]);
    expect(a.code, a.stderr).toBe(0);
    const ooms = async () => {
      const ev = await run(['events', '--service', 'hungry', '-o', 'json']);
      return ev.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { action: string; reason: string }).filter((e) => e.action === 'slot.update' && e.reason.startsWith('oom-killed')).length;
    };
    await waitFor(async () => (await ooms()) >= 3 && delivered('oom').length >= 1, 45_000, 'three OOM kills and an oom alert', 250);
    const oomPosts = posts.filter((p) => p.body.kind === 'oom');
    expect(oomPosts).toHaveLength(1);
    expect(oomPosts[0]!.body).toMatchObject({ kind: 'oom', service: 'hungry', node: 'n1' });
    expect(oomPosts[0]!.body.instance).toMatch(/^hungry-/);
    expect(oomPosts[0]!.body.message).toMatch(/killed by the kernel's OOM killer.*resources\.memory/);
    console.log(`oom: ${await ooms()} OOM kills, ${oomPosts.length} oom alert`);
    await run(['delete', 'hungry']);
  });

  it('an agent process killed: one node-unreachable alert for its node', async () => {
    const t0 = Date.now();
    process.kill(agent!.pid, 'SIGKILL');
    await agent!.exited;
    await waitFor(() => delivered('node-unreachable').length >= 1, 20_000, 'a node-unreachable alert', 50);
    console.log(`agent kill -9 → node-unreachable alert received ${Date.now() - t0} ms (heartbeat timeout 1 s)`);
    const body = delivered('node-unreachable')[0]!.body;
    expect(body).toMatchObject({ kind: 'node-unreachable', service: null, instance: null, node: 'n2' });
    expect(body.message).toContain('node n2 is unreachable');
    // Staying unreachable alerts nothing more.
    await holdsFor(() => posts.filter((p) => p.body.kind === 'node-unreachable').length === 1, 3_000, 'one node-unreachable alert');
  });
});
