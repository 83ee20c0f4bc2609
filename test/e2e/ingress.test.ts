/**
 * Ingress on every node (SPEC §3.11, §3.8) on real Docker: two agents on this host, each with its
 * own proxy (`--proxy-listen 127.0.0.1:0`), a service with a replica on each. Every agent's proxy
 * serves both replicas; a container reaches the service through its node's proxy as
 * orca.internal with the route's Host header; with the server SIGKILLed, both proxies keep
 * answering (a bounded loop) while a replica is kill -9'd: its node drops it from its own table at
 * once and heals it without the server, and the other node's proxy retries the dead address it
 * still lists on another backend. No request fails.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEST_IMAGE } from '../images.js';
import { systemClock, sleep } from '../../core/clock.js';
import { cleanup, cli, containerMainPid, dockerExec, startAgentProcess, startServer, stopAgentProcess, stopServer, testEnv, waitFor, type AgentProcess, type ServerProcess } from './harness.js';
import { httpClient } from './http-client.js';

interface Instance {
  id: string;
  node: string;
  state: string;
  ready: boolean;
  containerId: string | null;
}

const SERVER_FLAGS = ['--heartbeat-interval', '0.2', '--heartbeat-timeout', '2', '--node-down-grace', '60', '--watchdog-interval', '5'];
const AGENT_FLAGS = ['--reconnect-initial', '0.2', '--reconnect-max', '0.5', '--watchdog-interval', '5', '--label', 'ingress=yes', '--proxy-listen', '127.0.0.1:0'];
/** How long the loop runs with the control plane gone. */
const OUTAGE_MS = 30_000;

const MANIFEST = `[[service]]
name = "hello"
image = "${TEST_IMAGE}"
command = ["sh", "-c", "mkdir -p /tmp/www && hostname > /tmp/www/index.html && echo ok > /tmp/www/ready && exec httpd -f -p 80 -h /tmp/www"]
replicas = 2
port = 80
stop_grace_secs = 1
placement = { labels = { ingress = "yes" } }

[service.route]
host = "hello.localhost"

[service.readiness]
path = "/ready"
interval_secs = 0.2
timeout_secs = 0.5
failure_threshold = 1
initial_delay_secs = 0

[[service]]
name = "client"
image = "${TEST_IMAGE}"
command = ["sleep", "3600"]
placement = { node = "n2" }
stop_grace_secs = 0.5
`;

/** The proxy address an agent logged ("proxy listening"), once it did. */
function proxyOf(a: AgentProcess): string | null {
  const line = a.logs().split('\n').find((l) => l.includes('"proxy listening"'));
  return line ? (JSON.parse(line) as { proxy: string }).proxy.replace(/^http:\/\//, '') : null;
}

/** The agent's log records with this message, parsed (`at`: the record's time in ms). */
function records(a: AgentProcess, msg: string): Array<Record<string, unknown> & { at: number }> {
  return a
    .logs()
    .split('\n')
    .filter((l) => l.includes(`"msg":"${msg}"`))
    .flatMap((l) => {
      try {
        const r = JSON.parse(l) as Record<string, unknown> & { time: string };
        return [{ ...r, at: Date.parse(r.time) }];
      } catch {
        return [];
      }
    });
}

describe('ingress on every node (real Docker)', () => {
  let env: { cluster: string; dataDir: string };
  const agentDirs: string[] = [];
  let server: ServerProcess | undefined;
  const agents: Record<string, AgentProcess> = {};
  const proxies: Record<string, ReturnType<typeof httpClient>> = {};
  const ports: Record<string, number> = {};
  let run: ReturnType<typeof cli>;

  const instances = async (service = 'hello'): Promise<Instance[]> => {
    const r = await run(['status', service, '-o', 'json']);
    if (r.code !== 0) throw new Error(r.stderr);
    return (JSON.parse(r.stdout) as { services: Array<{ instances: Instance[] }> }).services[0]!.instances;
  };
  /** Hostnames (container ids) seen answering through a node's proxy in n requests. */
  const servedBy = async (node: string, n: number): Promise<Set<string>> => {
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) {
      const r = await proxies[node]!.get('hello.localhost');
      if (r.status === 200) seen.add(r.body.trim());
    }
    return seen;
  };

  beforeAll(async () => {
    env = await testEnv('ingress');
    server = await startServer({ ...env, extra: SERVER_FLAGS });
    run = cli(server, env.dataDir);
    const token = (await readFile(join(env.dataDir, 'cluster.token'), 'utf8')).trim();
    for (const node of ['n2', 'n3']) {
      const dir = await mkdtemp(join(tmpdir(), `${env.cluster}-${node}-`));
      agentDirs.push(dir);
      agents[node] = startAgentProcess({ api: server.api, node, dataDir: dir, token, cluster: env.cluster, extra: AGENT_FLAGS });
    }
    for (const node of ['n2', 'n3']) {
      await waitFor(() => proxyOf(agents[node]!) !== null, 20_000, `${node}'s proxy listening\n${agents[node]!.logs()}`);
      const address = proxyOf(agents[node]!)!;
      ports[node] = Number(address.split(':')[1]);
      proxies[node] = httpClient(address);
    }
    await waitFor(async () => JSON.parse((await run(['nodes', '-o', 'json'])).stdout).nodes.filter((n: { state: string }) => n.state === 'ready').length === 3, 20_000, 'three nodes ready');
    const file = join(env.dataDir, 'ingress.toml');
    await writeFile(file, MANIFEST);
    const r = await run(['apply', '-f', file, '--wait', '--timeout', '90']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });

  afterAll(async () => {
    for (const p of Object.values(proxies)) p.close();
    for (const a of Object.values(agents)) await stopAgentProcess(a);
    await stopServer(server, 'SIGKILL');
    await cleanup(env.cluster, env.dataDir);
    for (const d of agentDirs) await rm(d, { recursive: true, force: true });
  });

  it('the replicas run one on each agent, and each agent’s proxy serves both', async () => {
    const all = (await instances()).filter((i) => i.ready);
    expect(all.map((i) => i.node).sort()).toEqual(['n2', 'n3']);
    const expected = new Set(all.map((i) => i.containerId!.slice(0, 12)));
    for (const node of ['n2', 'n3']) {
      await waitFor(async () => (await servedBy(node, 6)).size === 2, 15_000, `${node}'s proxy serving both replicas`);
      const seen = await servedBy(node, 6);
      expect(seen, node).toEqual(expected);
    }
    // An unknown host is the proxy's own 404, as on the server's proxy.
    expect((await proxies.n2!.get('nobody.localhost')).status).toBe(404);
  });

  it('a container reaches the service through its node’s proxy as orca.internal, with the route’s Host header', async () => {
    const client = (await instances('client')).find((i) => i.state === 'running' && i.containerId);
    expect(client?.node).toBe('n2');
    const hosts = dockerExec(client!.containerId!, 'cat', '/etc/hosts').toString();
    const gateway = execFileSync('docker', ['network', 'inspect', '-f', '{{range .IPAM.Config}}{{.Gateway}} {{end}}', `orca-${env.cluster}`]).toString().trim().split(' ')[0];
    // What the container sees as orca.internal is where the proxies listen: the cluster network's gateway.
    expect(hosts).toMatch(new RegExp(`^${gateway!.replace(/\./g, '\\.')}\\s+orca\\.internal$`, 'm'));
    await waitFor(() => agents.n2!.logs().includes('proxy listening on the cluster network gateway'), 10_000, 'n2 listening on the gateway');
    const replicas = new Set((await instances()).filter((i) => i.ready).map((i) => i.containerId!.slice(0, 12)));
    const fetchInside = () =>
      dockerExec(client!.containerId!, 'busybox', 'timeout', '5', 'wget', '-qO-', '--header', 'Host: hello.localhost', `http://orca.internal:${ports.n2}/`).toString().trim();
    const seen = new Set([fetchInside(), fetchInside(), fetchInside(), fetchInside()]);
    expect([...seen].every((s) => replicas.has(s)), [...seen].join(',')).toBe(true);
    // The other node's proxy listens on the gateway too, at its own port.
    expect(replicas.has(dockerExec(client!.containerId!, 'busybox', 'timeout', '5', 'wget', '-qO-', '--header', 'Host: hello.localhost', `http://orca.internal:${ports.n3}/`).toString().trim())).toBe(true);
  });

  it('with every server SIGKILLed, each agent’s proxy keeps serving; a kill -9’d replica leaves its node’s table at once and is healed there, no request failing', async () => {
    const before = (await instances()).filter((i) => i.ready);
    const victim = before.find((i) => i.node === 'n2')!;
    const survivor = before.find((i) => i.node === 'n3')!;
    await stopServer(server, 'SIGKILL');

    const result = { sent: 0, failed: 0, failures: [] as string[], by: { n2: new Map<string, number>(), n3: new Map<string, number>() } };
    let stop = false;
    let killedAt = 0;
    const loop = (async () => {
      const end = systemClock.now() + OUTAGE_MS;
      while (!stop && systemClock.now() < end) {
        for (const node of ['n2', 'n3'] as const) {
          result.sent++;
          try {
            const r = await proxies[node]!.get('hello.localhost');
            if (r.status !== 200) {
              result.failed++;
              result.failures.push(`${node} HTTP ${r.status} ${r.body.slice(0, 80)} at +${killedAt ? systemClock.now() - killedAt : -1} ms`);
            } else result.by[node].set(r.body.trim(), (result.by[node].get(r.body.trim()) ?? 0) + 1);
          } catch (err) {
            result.failed++;
            result.failures.push(`${node} ${String(err)}`);
          }
        }
        await sleep(systemClock, 20);
      }
    })();

    // Some traffic with the control plane gone, then the kill.
    await waitFor(() => result.sent >= 100, 10_000, 'traffic through both proxies');
    const pid = containerMainPid(victim.containerId!);
    killedAt = systemClock.now();
    process.kill(pid, 'SIGKILL');

    // n2 heals it on its own: a new container of the slot, serving through n2's proxy.
    const victimId = victim.containerId!.slice(0, 12);
    let healedId = '';
    await waitFor(
      () => {
        const ids = [...result.by.n2.keys()].filter((id) => id !== victimId && id !== survivor.containerId!.slice(0, 12));
        healedId = ids[0] ?? '';
        return healedId !== '';
      },
      20_000,
      `the healed replica serving through n2's proxy\n${agents.n2!.logs().slice(-3000)}`,
    );
    const healedMs = systemClock.now() - killedAt;
    await loop;
    stop = true;

    // How long the dead instance stayed in n2's own table: the first swap after the kill that no longer lists it.
    const swaps = records(agents.n2!, 'node route table swapped').filter((r) => r.at >= killedAt);
    const dropped = swaps.find((r) => Array.isArray(r.own) && !(r.own as string[]).includes(victim.id));
    expect(dropped, JSON.stringify(swaps.slice(0, 5))).toBeDefined();
    const droppedMs = dropped!.at - killedAt;

    console.log(
      `control plane gone ${OUTAGE_MS} ms: ${result.sent} requests through 2 agents' proxies, ${result.failed} failed; ` +
        `killed replica out of n2's table ${droppedMs} ms after kill -9; healed replica serving through n2 after ${healedMs} ms`,
    );
    expect(result.failures).toEqual([]);
    expect(result.sent).toBeGreaterThan(500);
    expect(droppedMs).toBeLessThan(1_000);
    // n3's proxy never learnt of the healed replica (no control plane), and lost nothing for it.
    expect(result.by.n3.has(healedId)).toBe(false);
    // No server came back meanwhile: the agents are still cut off.
    expect(agents.n2!.logs()).toContain('cannot reach the server');
  });
});
