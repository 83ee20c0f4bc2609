/**
 * What an idle control plane costs: a real `orca server` (its agent in the same process) with N
 * one-replica services of orca-example/web:1, each with an HTTP readiness probe every second and
 * an HTTP liveness probe every 2 s as examples/web.toml has, all ready, nothing changing. After a
 * settle time, in rounds of --round-secs, measured over the same window each round:
 *   orca      CPU % of one core of the server and its children (/proc/PID/stat utime + stime),
 *             and the server's RSS (/proc/PID/status VmRSS) at the end of the round;
 *   dockerd   CPU % of the Docker daemon (baseline: what the engine underneath costs at rest);
 *   node      an idle `node -e "setInterval(()=>{},1e9)"`: its CPU and RSS (baseline: what a
 *             Node process costs doing nothing);
 *   probes    bench/probe-floor: the same HTTP probes on the same published ports from a bare
 *             Node loop with the server's own check (baseline: what the probes alone cost on
 *             this machine — the floor under the server's figure, whatever orchestrates them),
 *             in rounds of its own after the server's, as many and as long, with the server
 *             stopped (SIGSTOP) meanwhile so the two never probe at once.
 * One server grows through the sizes (5, then 20, then 100 services by default). Reported per
 * size: the median round and every round beside it. Goal (issue 17): ≤ 1.5 % CPU at 20 services,
 * growing sub-linearly; RSS ≤ 90 MB at 20.
 *
 *   node dist/bench/idle.js [--services 5,20,100] [--rounds 3] [--round-secs 10] [--settle-secs 10]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep, systemClock } from '../core/clock.js';
import { buildExampleImages, EXAMPLE_WEB_V1 } from '../examples/images.js';
import { DockerRuntime } from '../runtime/docker-runtime.js';
import { cleanup, cli, startServer, stopServer, testEnv, waitFor, type ServerProcess } from '../test/e2e/harness.js';
import { cpuTicks, median, processTree, report, ticksPerSec } from './lib.js';

interface Options {
  services: number[];
  rounds: number;
  roundSecs: number;
  settleSecs: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { services: [5, 20, 100], rounds: 3, roundSecs: 10, settleSecs: 10 };
  const num = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new Error(`${flag} needs a number ≥ ${min}, got ${JSON.stringify(v)}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[++i];
    if (a === '--services') {
      o.services = (v ?? '').split(',').map((s) => num(a, s, 1));
      if (o.services.some((n, j) => j > 0 && n <= (o.services[j - 1] as number))) throw new Error('--services must grow: 5,20,100');
    } else if (a === '--rounds') o.rounds = num(a, v, 1);
    else if (a === '--round-secs') o.roundSecs = num(a, v, 1);
    else if (a === '--settle-secs') o.settleSecs = num(a, v, 0);
    else throw new Error(`unknown argument ${JSON.stringify(a)}; usage: node dist/bench/idle.js [--services 5,20,100] [--rounds 3] [--round-secs 10] [--settle-secs 10]`);
  }
  return o;
}

/** Resident memory of one process in MB (VmRSS). */
function rssMB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function dockerdPid(): number {
  const r = spawnSync('pgrep', ['-x', 'dockerd'], { encoding: 'utf8' });
  const pid = Number(r.stdout.trim().split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) throw new Error('dockerd is not running (pgrep -x dockerd found nothing)');
  return pid;
}

interface Round {
  orcaCpu: number;
  orcaRss: number;
  orcaProcs: number;
  dockerdCpu: number;
  nodeCpu: number;
  nodeRss: number;
  floorCpu: number;
}

/** One round: CPU of every process over the same window (a process tree's as of its start), RSS at its end. */
async function measureRound(serverPid: number, dockerd: number, idleNode: number, secs: number): Promise<Omit<Round, 'floorCpu'>> {
  const tree = processTree(serverPid);
  const treeTicks = () => processTree(serverPid).reduce((s, p) => s + cpuTicks(p), 0);
  const t0 = performance.now();
  const a = { orca: treeTicks(), dockerd: cpuTicks(dockerd), node: cpuTicks(idleNode) };
  await sleep(systemClock, secs * 1000);
  const b = { orca: treeTicks(), dockerd: cpuTicks(dockerd), node: cpuTicks(idleNode) };
  const wall = (performance.now() - t0) / 1000;
  const pct = (ticks: number) => (ticks / ticksPerSec() / wall) * 100;
  return {
    orcaCpu: pct(b.orca - a.orca),
    orcaRss: rssMB(serverPid),
    orcaProcs: tree.length,
    dockerdCpu: pct(b.dockerd - a.dockerd),
    nodeCpu: pct(b.node - a.node),
    nodeRss: rssMB(idleNode),
  };
}

function manifest(n: number): string {
  let out = '';
  for (let i = 1; i <= n; i++) {
    out += `[[service]]
name = "idle-${i}"
image = "${EXAMPLE_WEB_V1}"
replicas = 1
port = 80
stop_grace_secs = 1

[service.readiness]
path = "/ready"
interval_secs = 1
timeout_secs = 1
initial_delay_secs = 0

[service.liveness]
path = "/healthz"
interval_secs = 2
timeout_secs = 1
failure_threshold = 3

`;
  }
  return out;
}

/** The server's V8 heap and external memory from its /metrics (MB), to show what its RSS is made of. */
async function heapFigures(api: string, dataDir: string): Promise<string> {
  try {
    const token = readFileSync(join(dataDir, 'cluster.token'), 'utf8').trim();
    const text = await (await fetch(`${api}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
    const get = (name: string) => Number(new RegExp(`^orca_process_${name} ([0-9.e+]+)`, 'm').exec(text)?.[1]) / 1048576;
    return `heap used ${get('nodejs_heap_size_used_bytes').toFixed(0)} of ${get('nodejs_heap_size_total_bytes').toFixed(0)} MB, external ${get('nodejs_external_memory_bytes').toFixed(0)} MB`;
  } catch (err) {
    return `(no heap figures: ${String(err)})`;
  }
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  await buildExampleImages(new DockerRuntime());
  const env = await testEnv('bench-idle');
  let server: ServerProcess | undefined;
  const idleNode = spawn(process.execPath, ['-e', 'setInterval(()=>{},1e9)'], { stdio: 'ignore' });
  /** The probe floor of the size being measured (see bench/probe-floor.ts), and what each size's did. */
  const floors = new Set<ChildProcess>();
  const floorChecks = new Map<number, string>();
  /** The server's pid while it is stopped for the floor's rounds. */
  let stopped: number | undefined;
  const started = performance.now();
  let failed: string | null = null;
  const results: Array<{ n: number; rounds: Round[]; readyS: number; heap: string }> = [];
  try {
    const dockerd = dockerdPid();
    // Info level, as an operator runs it: debug lines would be work an idle server does not do.
    server = await startServer({ ...env, env: { ORCA_LOG_LEVEL: 'info' } });
    const run = cli(server, env.dataDir);
    const file = join(env.dataDir, 'idle.toml');
    for (const n of o.services) {
      const t0 = performance.now();
      await writeFile(file, manifest(n));
      const applied = await run(['apply', '-f', file, '--wait', '--timeout', String(Math.max(120, n * 3))], Math.max(120, n * 3) * 1000 + 30_000);
      if (applied.code !== 0) {
        // An overloaded machine (probes timing out, instances replaced) may never settle: report what was measured.
        failed = `${n} services: not all ready (${applied.stderr.trim().slice(0, 300)}); larger sizes skipped`;
        break;
      }
      let ports: number[] = [];
      await waitFor(
        async () => {
          const r = await run(['status', '-o', 'json']);
          const s = (JSON.parse(r.stdout) as { services: Array<{ instances: Array<{ ready: boolean; address: string | null }> }> }).services;
          ports = s.flatMap((x) => x.instances.map((i) => Number(i.address?.split(':').pop())));
          return s.length === n && s.every((x) => x.instances.length === 1 && x.instances.every((i) => i.ready));
        },
        120_000,
        `${n} services ready`,
        500,
      );
      const readyS = (performance.now() - t0) / 1000;
      process.stderr.write(`${n} services ready after ${readyS.toFixed(1)} s; settling ${o.settleSecs} s\n`);
      await sleep(systemClock, o.settleSecs * 1000);
      const rounds: Round[] = [];
      for (let r = 0; r < o.rounds; r++) {
        rounds.push({ ...(await measureRound(server.pid, dockerd, idleNode.pid as number, o.roundSecs)), floorCpu: NaN });
        const x = rounds[r] as Round;
        process.stderr.write(`  ${n} services, round ${r + 1}: orca ${x.orcaCpu.toFixed(2)} % ${x.orcaRss.toFixed(0)} MB, dockerd ${x.dockerdCpu.toFixed(2)} %, node ${x.nodeCpu.toFixed(2)} % ${x.nodeRss.toFixed(0)} MB\n`);
      }
      // Then the floor, in rounds of its own, with the server stopped (SIGSTOP) meanwhile: one
      // prober at a time, so neither disturbs the other (two sets of probes at 100 services load
      // this machine enough to time probes out — and liveness would replace instances).
      process.kill(server.pid, 'SIGSTOP');
      stopped = server.pid;
      const floor = spawn(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), 'probe-floor.js'), '--ports', ports.join(',')], { stdio: ['ignore', 'pipe', 'inherit'] });
      floors.add(floor);
      let floorOut = '';
      floor.stdout.setEncoding('utf8').on('data', (d: string) => (floorOut += d));
      await sleep(systemClock, 2_000);
      for (const x of rounds) {
        const t0 = performance.now();
        const before = cpuTicks(floor.pid as number);
        await sleep(systemClock, o.roundSecs * 1000);
        x.floorCpu = ((cpuTicks(floor.pid as number) - before) / ticksPerSec() / ((performance.now() - t0) / 1000)) * 100;
        process.stderr.write(`  ${n} services, the same probes alone: ${x.floorCpu.toFixed(2)} %\n`);
      }
      const ended = new Promise((r) => floor.once('exit', r));
      floor.kill('SIGTERM');
      await ended;
      floors.delete(floor);
      floorChecks.set(n, floorOut.trim());
      process.kill(server.pid, 'SIGCONT');
      stopped = undefined;
      // Its timers fire late once, all at once: let that pass before the next size.
      await sleep(systemClock, 3_000);
      results.push({ n, rounds, readyS, heap: await heapFigures(server.api, env.dataDir) });
    }
  } finally {
    for (const f of floors) f.kill('SIGTERM');
    if (stopped !== undefined) process.kill(stopped, 'SIGCONT');
    idleNode.kill('SIGTERM');
    await stopServer(server);
    await cleanup(env.cluster, env.dataDir);
  }
  const list = (v: number[]) => v.map((x) => x.toFixed(2)).join(' ');
  const rows: Array<Array<string | number>> = [];
  for (const { n, rounds } of results) {
    // The median round by Orca's CPU; every figure of the row is from that round but the floor's,
    // whose rounds are its own (its median).
    const m = [...rounds].sort((a, b) => a.orcaCpu - b.orcaCpu)[Math.floor((rounds.length - 1) / 2)] as Round;
    rows.push([`${n}`, m.orcaCpu, median(rounds.map((r) => r.floorCpu)), m.orcaRss, m.dockerdCpu, m.nodeCpu, m.nodeRss, list(rounds.map((r) => r.orcaCpu)), list(rounds.map((r) => r.floorCpu)), list(rounds.map((r) => r.orcaRss))]);
  }
  report(
    `Idle cost, median round of ${o.rounds} × ${o.roundSecs} s after ${o.settleSecs} s settled (CPU % of one core; server and its children; RSS of the server process, MB)`,
    ['services', 'orca CPU %', 'probes alone CPU %', 'orca RSS', 'dockerd CPU %', 'node CPU %', 'node RSS', 'orca CPU, all rounds', 'probes alone, all rounds', 'orca RSS, all rounds'],
    rows,
  );
  for (const r of results) process.stdout.write(`${r.n} services: all ready ${r.readyS.toFixed(0)} s after apply; ${r.heap}; ${floorChecks.get(r.n) ?? 'probe-floor: no figures'}\n`);
  if (failed) process.stdout.write(`${failed}\n`);
  const cpu = results.map(({ rounds }) => median(rounds.map((r) => r.orcaCpu)));
  if (results.length > 1) {
    const first = results[0] as { n: number };
    const last = results[results.length - 1] as { n: number };
    process.stdout.write(`CPU growth ${first.n} → ${last.n} services: ×${((cpu[cpu.length - 1] as number) / (cpu[0] as number)).toFixed(2)} (services ×${(last.n / first.n).toFixed(0)})\n`);
  }
  process.stdout.write(`total ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
}

await main();
