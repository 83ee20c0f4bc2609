/**
 * A control plane of three servers on a three-member etcd, with two agents (issue 14, SPEC
 * §3.11): one leader, standbys that answer the API, failover without churn when the leader is
 * killed, and a paused leader fenced and stepping down when it wakes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEST_IMAGE } from '../images.js';
import { startEtcd, type EtcdProcess } from '../etcd.js';
import { cleanup, orca, startAgentProcess, startServer, stopAgentProcess, stopServer, testEnv, waitFor, type AgentProcess, type ServerProcess } from './harness.js';

const LEASE_SECS = 2;
const SERVER_FLAGS = ['--no-local-agent', '--heartbeat-interval', '0.2', '--heartbeat-timeout', '1.5', '--node-down-grace', '3', '--watchdog-interval', '2', '--leader-lease-secs', String(LEASE_SECS)];
const AGENT_FLAGS = ['--reconnect-initial', '0.2', '--reconnect-max', '0.5', '--watchdog-interval', '2'];

interface Member {
  name: string;
  address: string;
  role: string;
}

describe('three servers on etcd, two agents', () => {
  let env: { cluster: string; dataDir: string };
  let etcd: EtcdProcess;
  const dirs: string[] = [];
  const servers = new Map<string, ServerProcess>();
  const agents: AgentProcess[] = [];
  let token: string;
  let keyFile: string;
  let apis = '';

  const run = (args: string[], timeoutMs?: number) => orca(['--api', apis, '--token', token, ...args], {}, timeoutMs);
  const viaServer = (name: string, args: string[]) => orca(['--api', servers.get(name)!.api, '--token', token, ...args]);
  const members = async (from?: string): Promise<Member[]> => {
    const r = from ? await viaServer(from, ['servers', '-o', 'json']) : await run(['servers', '-o', 'json']);
    if (r.code !== 0) throw new Error(r.stderr);
    return (JSON.parse(r.stdout) as { servers: Member[] }).servers;
  };
  const leaderName = async (from?: string) => (await members(from)).find((m) => m.role === 'leader')?.name ?? null;
  const startOne = async (name: string) => {
    const dataDir = name === 's1' ? env.dataDir : await mkdtemp(join(tmpdir(), `${env.cluster}-${name}-`));
    if (name !== 's1') dirs.push(dataDir);
    // The servers of one control plane share the admin token and the cluster key (SPEC §3.11).
    await writeFile(join(dataDir, 'cluster.token'), `${token}\n`, { mode: 0o600 });
    const s = await startServer({ cluster: env.cluster, dataDir, node: name, extra: [...SERVER_FLAGS, '--store', etcd.storeUrl, '--cluster-key-file', keyFile] });
    servers.set(name, s);
    return s;
  };
  const containers = () =>
    execFileSync('docker', ['ps', '-q', '--filter', `label=orca.cluster=${env.cluster}`])
      .toString()
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((id) => execFileSync('docker', ['inspect', '-f', '{{.Id}} {{.State.StartedAt}} {{index .Config.Labels "orca.service"}}/{{index .Config.Labels "orca.slot"}}', id]).toString().trim())
      .sort();
  const sessionsSince = (s: ServerProcess, t: number) =>
    s
      .logs()
      .split('\n')
      .filter((l) => l.includes('"agent session established"'))
      .map((l) => JSON.parse(l) as { time: string; node: string })
      .filter((l) => Date.parse(l.time) >= t);

  beforeAll(async () => {
    env = await testEnv('ha');
    etcd = await startEtcd({ members: 3 });
    token = randomBytes(24).toString('hex');
    const shared = await mkdtemp(join(tmpdir(), `${env.cluster}-shared-`));
    dirs.push(shared);
    keyFile = join(shared, 'cluster.key');
    await writeFile(keyFile, randomBytes(32), { mode: 0o600 });
    await startOne('s1');
    await waitFor(async () => (await leaderName('s1')) === 's1', 15_000, 's1 leads');
    await startOne('s2');
    await startOne('s3');
    apis = ['s1', 's2', 's3'].map((n) => servers.get(n)!.api).join(',');
    for (const node of ['n1', 'n2']) {
      const dataDir = await mkdtemp(join(tmpdir(), `${env.cluster}-${node}-`));
      dirs.push(dataDir);
      agents.push(startAgentProcess({ api: apis, node, dataDir, token, cluster: env.cluster, extra: AGENT_FLAGS }));
    }
    await waitFor(async () => {
      const r = await run(['nodes', '-o', 'json']);
      const nodes = r.code === 0 ? (JSON.parse(r.stdout) as { nodes: Array<{ name: string; state: string }> }).nodes : [];
      return nodes.filter((n) => n.state === 'ready').length === 2;
    }, 30_000, 'both agents joined');
    const file = join(env.dataDir, 'web.toml');
    await writeFile(file, `[[service]]\nname = "web"\nimage = "${TEST_IMAGE}"\ncommand = ["sleep", "3600"]\nreplicas = 2\nstop_grace_secs = 0.5\n`);
    const r = await run(['apply', '-f', file, '--wait', '--timeout', '60']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  }, 120_000);

  afterAll(async () => {
    for (const a of agents) await stopAgentProcess(a);
    for (const s of servers.values()) {
      try {
        process.kill(s.pid, 'SIGCONT');
      } catch {
        /* gone */
      }
      await stopServer(s);
    }
    await etcd?.stop();
    await cleanup(env.cluster, env.dataDir);
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('one leader; orca servers from any server lists all three; a standby answers the API (status, apply)', async () => {
    for (const from of ['s1', 's2', 's3']) {
      const m = await members(from);
      expect(m.map((x) => x.name).sort()).toEqual(['s1', 's2', 's3']);
      expect(m.filter((x) => x.role === 'leader')).toHaveLength(1);
    }
    const standby = (await members()).find((m) => m.role === 'standby')!.name;
    const st = await viaServer(standby, ['status', 'web', '-o', 'json']);
    expect(st.code, st.stderr).toBe(0);
    const inst = (JSON.parse(st.stdout) as { services: Array<{ instances: Array<{ node: string; ready: boolean }> }> }).services[0]!.instances;
    expect(inst.filter((i) => i.ready).map((i) => i.node).sort()).toEqual(['n1', 'n2']);
  });

  it('kill -9 of the leader: a standby leads within lease + 2 s, the agents are back within 3 s more, no node unreachable, no container restarted, an apply during the failover succeeds', async () => {
    const before = containers();
    expect(before).toHaveLength(2);
    const old = (await leaderName())!;
    const killedAt = Date.now();
    process.kill(servers.get(old)!.pid, 'SIGKILL');
    const survivors = ['s1', 's2', 's3'].filter((n) => n !== old);
    // An apply of a change, sent right after the kill to every server: it must succeed within its --timeout.
    const extra = join(env.dataDir, 'api.toml');
    await writeFile(extra, `[[service]]\nname = "api"\nimage = "${TEST_IMAGE}"\ncommand = ["sleep", "3600"]\nreplicas = 1\nstop_grace_secs = 0.5\n`);
    const applying = run(['apply', '-f', extra, '--timeout', '30'], 40_000);

    let newLeader: string | null = null;
    await waitFor(async () => {
      for (const s of survivors) {
        const l = await leaderName(s).catch(() => null);
        if (l && l !== old) newLeader = l;
      }
      return newLeader !== null;
    }, 15_000, 'a new leader', 50);
    const ledAt = Date.now();
    const leader = servers.get(newLeader!)!;
    await waitFor(() => new Set(sessionsSince(leader, killedAt).map((l) => l.node)).size === 2, 15_000, 'both agents with the new leader', 50);
    const connectedAt = Math.max(...sessionsSince(leader, killedAt).map((l) => Date.parse(l.time)));
    console.log(`failover: ${old} killed → ${newLeader} leads in ${ledAt - killedAt} ms → both agents connected ${connectedAt - ledAt} ms later`);
    expect(ledAt - killedAt, 'new leader within lease + 2 s').toBeLessThanOrEqual(LEASE_SECS * 1000 + 2000);
    expect(connectedAt - ledAt, 'agents connected within 3 s of the new leader').toBeLessThanOrEqual(3000);

    const applied = await applying;
    expect(applied.code, applied.stdout + applied.stderr).toBe(0);
    // Nothing moved and nothing restarted: the same containers, started when they were.
    await waitFor(() => containers().length === 3, 30_000, 'the api replica started');
    expect(containers().filter((c) => c.endsWith('web/0') || c.endsWith('web/1'))).toEqual(before);
    const ev = await run(['events', '-o', 'json', '--since', '2m']);
    const nodeEvents = ev.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { action: string; time: string })
      .filter((e) => /^node\.(unreachable|down)$/.test(e.action) && Date.parse(e.time) >= killedAt);
    expect(nodeEvents).toEqual([]);
  });

  it('a leader paused past its lease is replaced; woken, it steps down and acts on nothing of its stale view, and no slot runs twice', async () => {
    const old = (await leaderName())!;
    const s = servers.get(old)!;
    const survivors = [...servers.keys()].filter((n) => n !== old && servers.get(n)!.child.exitCode === null && servers.get(n)!.child.signalCode === null);
    process.kill(s.pid, 'SIGSTOP');
    let next: string | null = null;
    await waitFor(async () => {
      for (const n of survivors) {
        const l = await leaderName(n).catch(() => null);
        if (l && l !== old) next = l;
      }
      return next !== null;
    }, 20_000, 'another server leads', 100);
    const wokeAt = Date.now();
    process.kill(s.pid, 'SIGCONT');
    await waitFor(() => s.logs().split('\n').some((l) => l.includes('standing by') && Date.parse((JSON.parse(l) as { time: string }).time) >= wokeAt - 100), 15_000, 'the old leader steps down');
    // Its own view agrees: it stands by, the other leads.
    await waitFor(async () => (await leaderName(old).catch(() => null)) === next, 10_000, 'the old leader names the new one');
    // Its stale view acted on nothing: woken with every heartbeat minutes old in its memory, it
    // marked no node unreachable or down (its lease had run out: it no longer led, and etcd would
    // have refused its writes — the fence itself is tested in leadership.test.ts and the store's tests).
    const ev = await run(['events', '-o', 'json', '--since', '2m']);
    const nodeEvents = ev.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { action: string; time: string })
      .filter((e) => /^node\.(unreachable|down)$/.test(e.action) && Date.parse(e.time) >= wokeAt - 60_000);
    expect(nodeEvents).toEqual([]);
    const nodes = JSON.parse((await run(['nodes', '-o', 'json'])).stdout) as { nodes: Array<{ state: string }> };
    expect(nodes.nodes.map((n) => n.state)).toEqual(['ready', 'ready']);
    // One container per slot, always.
    const slots = containers().map((c) => c.split(' ')[2]);
    expect(new Set(slots).size).toBe(slots.length);
  });
  it('etcd loses its quorum (two of three members killed): the servers say so, apply fails with exit 1 and a clear message, the containers run on; quorum back: a leader again and apply works', async () => {
    const before = containers();
    const alive = [...servers.keys()].filter((n) => servers.get(n)!.child.exitCode === null && servers.get(n)!.child.signalCode === null);
    await etcd.member(1).kill9();
    await etcd.member(2).kill9();
    try {
      // Every server that is up reports the store, not a hang.
      await waitFor(async () => {
        const r = await viaServer(alive[0]!, ['servers']);
        return r.code === 1 && /etcd/i.test(r.stderr);
      }, 30_000, 'orca servers reports the store', 500);
      const file = join(env.dataDir, 'web-noquorum.toml');
      await writeFile(file, `[[service]]\nname = "web"\nimage = "${TEST_IMAGE}"\ncommand = ["sleep", "3601"]\nreplicas = 2\nstop_grace_secs = 0.5\n`);
      const t0 = Date.now();
      const r = await run(['apply', '-f', file], 60_000);
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stderr).toMatch(/etcd|quorum|store/i);
      expect(Date.now() - t0).toBeLessThan(30_000);
      // The workloads do not notice.
      expect(containers()).toEqual(before);
    } finally {
      await etcd.member(1).restart();
      await etcd.member(2).restart();
    }
    await waitFor(async () => (await leaderName().catch(() => null)) !== null, 30_000, 'a leader once quorum is back', 500);
    await waitFor(async () => {
      const r = await run(['nodes', '-o', 'json']);
      return r.code === 0 && (JSON.parse(r.stdout) as { nodes: Array<{ state: string }> }).nodes.every((n) => n.state === 'ready');
    }, 30_000, 'nodes ready', 500);
    const file = join(env.dataDir, 'api2.toml');
    await writeFile(file, `[[service]]\nname = "api2"\nimage = "${TEST_IMAGE}"\ncommand = ["sleep", "3600"]\nreplicas = 1\nstop_grace_secs = 0.5\n`);
    const ok = await run(['apply', '-f', file, '--wait', '--timeout', '60'], 90_000);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(containers().filter((c) => before.includes(c))).toEqual(before);
  });
});
