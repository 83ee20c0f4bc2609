/**
 * Failover of the control plane (SPEC §3.11: kill -9 of the leader → a standby leads ≤ lease +
 * 2 s; agents connected to it ≤ 3 s later; orca apply keeps working), beside the one-server
 * set-up it replaces: the same kill of a lone server on its embedded store, restarted at once (as
 * a supervisor would), until its API answers and the agents are back.
 *
 * Three `orca server --store etcd://… --leader-lease-secs 2 --no-local-agent` on a three-member
 * etcd (test/etcd.ts: loopback ports, temp dirs), two `orca agent --join a,b,c` (heartbeat 0.2 s),
 * a 2-replica service (no port). ROUNDS times: kill -9 the leader at t0, then from t0:
 *   leader: a surviving server's GET /v1/servers names another leader (polled every 25 ms);
 *   agents: both agents' sessions established at the new leader (its own log lines' time);
 *   apply: `orca apply --api a,b,c` of a changed manifest, started at t0, until it exits 0;
 * then the killed server is started again (it stands by) before the next round.
 * Baseline: a lone server (LevelDB) with the same two agents, kill -9 and restart at once:
 *   API: /healthz 200 again; agents: both sessions established again.
 *
 *   node dist/bench/failover.js [rounds=10]
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep, systemClock } from '../core/clock.js';
import { TEST_IMAGE, ensureTestImages } from '../test/images.js';
import { DockerRuntime } from '../runtime/docker-runtime.js';
import { startEtcd, type EtcdProcess } from '../test/etcd.js';
import { cleanup, orca, startAgentProcess, startServer, stopAgentProcess, stopServer, testEnv, waitFor, type AgentProcess, type ServerProcess } from '../test/e2e/harness.js';
import { percentile, report, series } from './lib.js';

const rounds = Number(process.argv[2] ?? 10);
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 30) {
  process.stderr.write('usage: node dist/bench/failover.js [rounds=10]  (1..30)\n');
  process.exit(2);
}
const LEASE_SECS = 2;
const COMMON = ['--no-local-agent', '--heartbeat-interval', '0.2', '--heartbeat-timeout', '1.5', '--node-down-grace', '5', '--watchdog-interval', '5'];
const AGENT_FLAGS = ['--reconnect-initial', '0.2', '--reconnect-max', '0.5', '--watchdog-interval', '5'];

interface Setup {
  cluster: string;
  token: string;
  dirs: string[];
  servers: Map<string, { proc: ServerProcess; dataDir: string }>;
  agents: AgentProcess[];
  apis: () => string;
}

const sessionsAt = (s: ServerProcess, since: number) =>
  s
    .logs()
    .split('\n')
    .filter((l) => l.includes('"agent session established"'))
    .map((l) => JSON.parse(l) as { time: string; node: string })
    .filter((l) => Date.parse(l.time) >= since);

async function leaderOf(api: string, token: string): Promise<string | null> {
  try {
    const r = await fetch(`${api}/v1/servers`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(1000) });
    if (!r.ok) return null;
    const body = (await r.json()) as { servers: Array<{ name: string; role: string }> };
    return body.servers.find((s) => s.role === 'leader')?.name ?? null;
  } catch {
    return null;
  }
}

async function manifest(dir: string, round: number): Promise<string> {
  const file = join(dir, `web-${round}.toml`);
  await writeFile(file, `[[service]]\nname = "web"\nimage = "${TEST_IMAGE}"\ncommand = ["sleep", "${3600 + round}"]\nreplicas = 2\nstop_grace_secs = 0.5\n[service.deploy]\nstrategy = "start-first"\n`);
  return file;
}

async function startAgents(s: Setup, join: string): Promise<void> {
  for (const node of ['n1', 'n2']) {
    const dataDir = await mkdtemp(join_(tmpdir(), `${s.cluster}-${node}-`));
    s.dirs.push(dataDir);
    s.agents.push(startAgentProcess({ api: join, node, dataDir, token: s.token, cluster: s.cluster, extra: AGENT_FLAGS }));
  }
}
const join_ = join;

async function waitNodesReady(run: (a: string[]) => ReturnType<typeof orca>): Promise<void> {
  await waitFor(async () => {
    const r = await run(['nodes', '-o', 'json']);
    return r.code === 0 && (JSON.parse(r.stdout) as { nodes: Array<{ state: string }> }).nodes.filter((n) => n.state === 'ready').length === 2;
  }, 60_000, 'both agents ready');
}

async function ha(): Promise<{ leader: number[]; agents: number[]; apply: number[] }> {
  const env = await testEnv('bench-ha');
  const etcd: EtcdProcess = await startEtcd({ members: 3 });
  const s: Setup = { cluster: env.cluster, token: randomBytes(24).toString('hex'), dirs: [], servers: new Map(), agents: [], apis: () => [...s.servers.values()].map((x) => x.proc.api).join(',') };
  const shared = await mkdtemp(join(tmpdir(), `${env.cluster}-key-`));
  s.dirs.push(shared);
  const keyFile = join(shared, 'cluster.key');
  await writeFile(keyFile, randomBytes(32), { mode: 0o600 });
  const start = async (name: string, dataDir?: string, port?: string) => {
    const dir = dataDir ?? (await mkdtemp(join(tmpdir(), `${env.cluster}-${name}-`)));
    if (!dataDir) s.dirs.push(dir);
    await writeFile(join(dir, 'cluster.token'), `${s.token}\n`, { mode: 0o600 });
    // A restarted server comes back on its address (the agents were given it), as a supervisor's would.
    const at = port ? ['--api-listen', `127.0.0.1:${port}`] : [];
    const proc = await startServer({ cluster: env.cluster, dataDir: dir, node: name, extra: [...COMMON, '--store', etcd.storeUrl, '--cluster-key-file', keyFile, '--leader-lease-secs', String(LEASE_SECS), ...at] });
    s.servers.set(name, { proc, dataDir: dir });
  };
  const out = { leader: [] as number[], agents: [] as number[], apply: [] as number[] };
  try {
    await start('s1');
    await waitFor(async () => (await leaderOf(s.servers.get('s1')!.proc.api, s.token)) === 's1', 20_000, 's1 leads');
    await start('s2');
    await start('s3');
    const apisAtStart = s.apis();
    await startAgents(s, apisAtStart);
    const run = (a: string[], t?: number) => orca(['--api', s.apis(), '--token', s.token, ...a], {}, t);
    await waitNodesReady(run);
    const first = await run(['apply', '-f', await manifest(shared, 0), '--wait', '--timeout', '60']);
    if (first.code !== 0) throw new Error(first.stderr);
    for (let i = 1; i <= rounds; i++) {
      const api0 = [...s.servers.values()][0]!.proc.api;
      const old = (await leaderOf(api0, s.token))!;
      const oldEntry = s.servers.get(old)!;
      const survivors = [...s.servers.entries()].filter(([n]) => n !== old);
      const file = await manifest(shared, i);
      const t0 = Date.now();
      process.kill(oldEntry.proc.pid, 'SIGKILL');
      const applying = orca(['--api', survivors.map(([, x]) => x.proc.api).concat(oldEntry.proc.api).join(','), '--token', s.token, 'apply', '-f', file, '--timeout', '30'], {}, 40_000).then((r) => {
        if (r.code !== 0) throw new Error(`apply during failover: ${r.stderr}`);
        return Date.now() - t0;
      });
      let next: string | null = null;
      while (!next) {
        for (const [, x] of survivors) {
          const l = await leaderOf(x.proc.api, s.token);
          if (l && l !== old) next = l;
        }
        if (Date.now() - t0 > 20_000) throw new Error('no new leader within 20 s');
        if (!next) await sleep(systemClock, 25);
      }
      out.leader.push(Date.now() - t0);
      const leader = s.servers.get(next)!.proc;
      await waitFor(() => new Set(sessionsAt(leader, t0).map((l) => l.node)).size === 2, 20_000, 'agents at the new leader', 25);
      out.agents.push(Math.max(...sessionsAt(leader, t0).map((l) => Date.parse(l.time))) - t0);
      out.apply.push(await applying);
      await oldEntry.proc.exited;
      s.servers.delete(old);
      await start(old, oldEntry.dataDir, new URL(oldEntry.proc.api).port);
      process.stderr.write(`round ${i}: ${old} killed → ${next} leads ${out.leader.at(-1)} ms, agents ${out.agents.at(-1)} ms, apply ${out.apply.at(-1)} ms\n`);
    }
  } finally {
    for (const a of s.agents) await stopAgentProcess(a);
    for (const x of s.servers.values()) await stopServer(x.proc);
    await etcd.stop();
    await cleanup(env.cluster, env.dataDir);
    for (const d of s.dirs) await rm(d, { recursive: true, force: true });
  }
  return out;
}

async function lone(n: number): Promise<{ api: number[]; agents: number[] }> {
  const env = await testEnv('bench-lone');
  const s: Setup = { cluster: env.cluster, token: randomBytes(24).toString('hex'), dirs: [], servers: new Map(), agents: [], apis: () => '' };
  const out = { api: [] as number[], agents: [] as number[] };
  let proc: ServerProcess | undefined;
  try {
    await writeFile(join(env.dataDir, 'cluster.token'), `${s.token}\n`, { mode: 0o600 });
    proc = await startServer({ ...env, node: 's1', extra: COMMON });
    const api = proc.api;
    const port = new URL(api).port;
    const run = (a: string[], t?: number) => orca(['--api', api, '--token', s.token, ...a], {}, t);
    await startAgents(s, api);
    await waitNodesReady(run);
    const first = await run(['apply', '-f', await manifest(env.dataDir, 0), '--wait', '--timeout', '60']);
    if (first.code !== 0) throw new Error(first.stderr);
    for (let i = 1; i <= n; i++) {
      const t0 = Date.now();
      process.kill(proc.pid, 'SIGKILL');
      await proc.exited;
      // Restarted at once on the same port, as a supervisor would (the agents know that address).
      proc = await startServerOn(env, port);
      await waitFor(async () => (await fetch(`${api}/healthz`).then((r) => r.status, () => 0)) === 200, 30_000, 'api again', 25);
      out.api.push(Date.now() - t0);
      await waitFor(() => new Set(sessionsAt(proc!, t0).map((l) => l.node)).size === 2, 30_000, 'agents again', 25);
      out.agents.push(Math.max(...sessionsAt(proc, t0).map((l) => Date.parse(l.time))) - t0);
    }
  } finally {
    for (const a of s.agents) await stopAgentProcess(a);
    await stopServer(proc);
    await cleanup(env.cluster, env.dataDir);
    for (const d of s.dirs) await rm(d, { recursive: true, force: true });
  }
  return out;

  async function startServerOn(e: { cluster: string; dataDir: string }, p: string): Promise<ServerProcess> {
    const { spawn } = await import('node:child_process');
    const { ORCA } = await import('../test/e2e/harness.js');
    const child = spawn(process.execPath, [ORCA, 'server', '--data-dir', e.dataDir, '--cluster-id', e.cluster, '--node-name', 's1', '--api-listen', `127.0.0.1:${p}`, '--proxy-listen', '127.0.0.1:0', ...COMMON], {
      env: { ...process.env, ORCA_LOG_LEVEL: 'debug' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    child.stdout?.on('data', (d) => (text += d));
    child.stderr?.on('data', (d) => (text += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    return { child, api: `http://127.0.0.1:${p}`, proxy: null, pid: child.pid as number, logs: () => text, exited };
  }
}

await ensureTestImages(new DockerRuntime());
const t = Date.now();
const h = await ha();
const l = await lone(Math.min(rounds, 5));
const p = (v: number[], q: number) => Math.round(percentile(v, q));
process.stdout.write(`\nfailover, ms from kill -9 (${rounds} rounds; lease ${LEASE_SECS} s, heartbeat 0.2 s)\n`);
process.stdout.write(`  new leader   ${series(h.leader)}\n  agents back  ${series(h.agents)}\n  apply done   ${series(h.apply)}\n`);
process.stdout.write(`lone server restarted at once (${l.api.length} rounds)\n  api again    ${series(l.api)}\n  agents back  ${series(l.agents)}\n`);
report('control plane lost (kill -9), ms (same run)', ['how', 'p50 leader/API', 'p95 leader/API', 'p50 agents back', 'p95 agents back', 'p50 apply accepted', 'p95 apply accepted'], [
  ['3 servers on etcd: failover', p(h.leader, 50), p(h.leader, 95), p(h.agents, 50), p(h.agents, 95), p(h.apply, 50), p(h.apply, 95)],
  ['1 server (LevelDB), restarted at once', p(l.api, 50), p(l.api, 95), p(l.agents, 50), p(l.agents, 95), '-', '-'],
]);
const leaderOk = percentile(h.leader, 95) <= LEASE_SECS * 1000 + 2000;
const agentsOk = h.agents.every((a, i) => a - h.leader[i]! <= 3000);
process.stdout.write(`target: new leader ≤ lease + 2 s (${LEASE_SECS * 1000 + 2000} ms) — p95 ${p(h.leader, 95)} ms: ${leaderOk ? 'met' : 'NOT met'}; agents ≤ 3 s after — ${agentsOk ? 'met' : 'NOT met'}\n`);
process.stdout.write(`total ${Math.round((Date.now() - t) / 1000)} s\n`);
