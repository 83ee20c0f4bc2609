/**
 * How Orca's proxy scales with worker processes (`orca server --proxy-workers N`), beside nginx
 * with as many workers, in one run: wrk -t2 -c50 on loopback through each to the same keep-alive
 * Node backend (bench/proxy.ts's backend set B, started from that file: `--child backend`).
 *
 * Orca: a child process plays the server — the server's prom-client metrics, a ProxyPlane
 * (proxy/plane.ts) with N workers and one static route — for N = 1, 2 and 4. nginx: 1, 2 and 4
 * worker processes (bench/lib.ts startNginx: upstream keepalive 64, access log off). Every target
 * runs in `rounds` interleaved rounds (the order rotated each round), each run after a warm-up of
 * its own; the round with the median req/s is shown with req/s of every round, and req/s ÷ the
 * same proxy's 1-worker median (the scaling factor). Beside each Orca target: how the workers'
 * CPU time split over the measured runs (do all workers get connections?).
 *
 * wrk, the backend and the proxy share this machine's cores: on 2 cores no proxy can show more
 * than about 2 cores' worth, whatever its worker count — and less, since wrk and the backend need
 * CPU too. The output says how many cores there are.
 *
 *   node dist/bench/proxy-scaling.js [seconds=6] [rounds=3]     (~2.5 min with the defaults)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { systemClock } from '../core/clock.js';
import { createLogger } from '../core/log.js';
import { cpuTicks, ensureDebianTool, processTree, report, startNginx, ticksPerSec as clockTicksPerSec, wrk, type Nginx, type WrkResult } from './lib.js';

const HOST = 'bench.localhost';
const WRK = { threads: 2, connections: 50 };
const WARMUP_SECS = 2;
const WORKERS = [1, 2, 4];

if (process.argv[2] === '--child' && process.argv[3] === 'plane') await planeChild(Number(process.argv[4]), Number(process.argv[5]));
else await main();

/** The server's side of the proxy with N workers, one route to 127.0.0.1:backendPort; prints {"port":N,"pids":[…]}. */
async function planeChild(workers: number, backendPort: number): Promise<void> {
  const { ProxyPlane } = await import('../proxy/plane.js');
  const { Metrics } = await import('../server/metrics.js');
  const metrics = new Metrics({ instances: () => Promise.resolve([]), nodes: () => [] });
  const log = createLogger({ level: 'warn', pretty: false, destination: process.stderr });
  const plane = new ProxyPlane({
    log: log.child({ component: 'proxy' }),
    clock: systemClock,
    workers,
    metrics: {
      request: (route, status) => metrics.proxyRequest(route, status),
      requests: (route, status, count) => metrics.proxyRequest(route, status, count),
      upstreamSeconds: (route, seconds) => metrics.proxyUpstreamSeconds(route, seconds),
    },
  });
  plane.setRoutes([{ service: 'bench', host: HOST, path: '/', backends: [{ instance: 'b', address: `127.0.0.1:${backendPort}` }] }]);
  const { port } = await plane.listen('127.0.0.1', 0);
  process.stdout.write(`${JSON.stringify({ port, pids: plane.workerPids() })}\n`);
  process.once('SIGTERM', () => void plane.close().finally(() => process.exit(0)));
}

interface Child {
  pid: number;
  port: number;
  pids: number[];
  stop: () => Promise<void>;
}

/** Runs `node FILE ARGS`; resolves once it printed {"port":N,…}. Stopped by pid (SIGTERM). */
function startChild(file: string, args: string[]): Promise<Child> {
  const proc: ChildProcess = spawn(process.execPath, [file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr?.on('data', (d) => (err += d));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    process.kill(proc.pid as number, 'SIGTERM');
    await exited;
  };
  return new Promise((resolve, reject) => {
    const timer = systemClock.setTimeout(() => {
      void stop();
      reject(new Error(`${file} ${args.join(' ')} did not start: ${err}`));
    }, 15_000);
    proc.stdout?.on('data', (d) => {
      out += d;
      const line = out.split('\n').find((l) => l.startsWith('{"port"'));
      if (!line) return;
      systemClock.clearTimeout(timer);
      const j = JSON.parse(line) as { port: number; pids?: number[] };
      resolve({ pid: proc.pid as number, port: j.port, pids: j.pids ?? [], stop });
    });
    void exited.then(() => reject(new Error(`${file} ${args.join(' ')} exited: ${err}`)));
  });
}

interface Target {
  name: string;
  family: 'orca' | 'nginx';
  workers: number;
  port: number;
  /** The worker processes (Orca: the plane's workers; their split is shown). */
  pids: number[];
  /** Every process of the proxy (Orca: the primary and its workers; nginx: master and workers): their CPU per request is shown. */
  all: number[];
}

interface Measured extends WrkResult {
  all: number[];
  /** CPU ticks per worker over the measured runs. */
  cpu: number[];
  /** CPU microseconds per request over the measured runs, all of the proxy's processes. */
  cpuUsPerRequest: number;
  /** Of which the first process (Orca: the primary, merging the workers' metrics; nginx: the master). */
  firstUsPerRequest: number;
}

async function main(): Promise<void> {
  const secs = Number(process.argv[2] ?? 6);
  const rounds = Number(process.argv[3] ?? 3);
  if (!Number.isInteger(secs) || secs < 1 || secs > 120 || !Number.isInteger(rounds) || rounds < 1 || rounds > 10) {
    process.stderr.write('usage: node dist/bench/proxy-scaling.js [seconds=6] [rounds=3]  (1..120, 1..10)\n');
    process.exit(2);
  }
  ensureDebianTool('wrk', 'wrk');
  ensureDebianTool('nginx', 'nginx-light');
  const cores = availableParallelism();
  const ticksPerSec = clockTicksPerSec();
  const started = performance.now();
  const out = (s: string) => process.stdout.write(`${s}\n`);
  const stops: Array<() => Promise<void>> = [];
  try {
    // Backend set B of bench/proxy.ts, from that file.
    const backend = await startChild(fileURLToPath(new URL('./proxy.js', import.meta.url)), ['--child', 'backend']);
    stops.push(backend.stop);
    const targets: Target[] = [];
    for (const n of WORKERS) {
      const plane = await startChild(fileURLToPath(import.meta.url), ['--child', 'plane', String(n), String(backend.port)]);
      stops.push(plane.stop);
      targets.push({ name: `orca, ${n} worker${n > 1 ? 's' : ''}`, family: 'orca', workers: n, port: plane.port, pids: plane.pids, all: [plane.pid, ...plane.pids] });
    }
    for (const n of WORKERS) {
      const ng: Nginx = await startNginx({ servers: [`127.0.0.1:${backend.port}`], serverName: HOST, workers: n });
      stops.push(ng.stop);
      targets.push({ name: `nginx, ${n} worker${n > 1 ? 's' : ''}`, family: 'nginx', workers: n, port: ng.port, pids: [], all: [ng.pid] });
    }

    const runs = new Map<string, WrkResult[]>(targets.map((t) => [t.name, []]));
    const cpu = new Map<string, number[]>(targets.map((t) => [t.name, t.pids.map(() => 0)]));
    const cpuAll = new Map<string, { ticks: number; first: number; requests: number }>(targets.map((t) => [t.name, { ticks: 0, first: 0, requests: 0 }]));
    for (let r = 0; r < rounds; r++) {
      for (const t of [...targets.slice(r % targets.length), ...targets.slice(0, r % targets.length)]) {
        const url = `http://127.0.0.1:${t.port}/`;
        await wrk(url, { ...WRK, durationSecs: WARMUP_SECS, host: HOST });
        // nginx forks its workers after it listens: its process tree is read once it has served the warm-up.
        if (t.family === 'nginx') t.all = processTree(t.all[0]!);
        const before = t.pids.map(cpuTicks);
        const beforeAll = t.all.reduce((a, pid) => a + cpuTicks(pid), 0);
        const beforeFirst = cpuTicks(t.all[0]!);
        const run = await wrk(url, { ...WRK, durationSecs: secs, host: HOST });
        runs.get(t.name)!.push(run);
        const c = cpu.get(t.name)!;
        t.pids.forEach((pid, i) => (c[i] = (c[i] ?? 0) + cpuTicks(pid) - (before[i] ?? 0)));
        const a = cpuAll.get(t.name)!;
        a.ticks += t.all.reduce((x, pid) => x + cpuTicks(pid), 0) - beforeAll;
        a.first += cpuTicks(t.all[0]!) - beforeFirst;
        a.requests += run.requests;
      }
    }
    const results = new Map<string, Measured>();
    for (const t of targets) {
      const list = runs.get(t.name)!;
      const median = [...list].sort((a, b) => a.rps - b.rps)[Math.floor((list.length - 1) / 2)]!;
      const a = cpuAll.get(t.name)!;
      results.set(t.name, { ...median, all: list.map((x) => x.rps), cpu: cpu.get(t.name)!, cpuUsPerRequest: a.requests > 0 ? (a.ticks * (1e6 / ticksPerSec)) / a.requests : NaN, firstUsPerRequest: a.requests > 0 ? (a.first * (1e6 / ticksPerSec)) / a.requests : NaN });
    }

    out(`proxy scaling with worker processes: wrk -t${WRK.threads} -c${WRK.connections} -d${secs}s --latency (after a ${WARMUP_SECS} s warm-up each), Host: ${HOST}, loopback, backend: keep-alive Node http server (bench/proxy.ts set B)`);
    out(`${rounds} rounds, targets interleaved (order rotated each round); shown: the round with the median req/s, req/s of every round, and req/s ÷ the same proxy's 1-worker median`);
    out(`THIS MACHINE HAS ${cores} CORE${cores === 1 ? '' : 'S'}, shared by wrk, the backend and the proxy under test: no proxy can show more than ${cores} cores' worth here` +
      (cores < 4 ? `, so 4 workers cannot show 4 cores' worth (the 4-worker rows show the cost of more processes than cores, not 4-core scaling)` : ''));
    const rows = targets.map((t) => {
      const m = results.get(t.name)!;
      const one = results.get(`${t.family}, 1 worker`);
      const ng = results.get(`nginx, ${t.workers} worker${t.workers > 1 ? 's' : ''}`);
      const total = m.cpu.reduce((a, b) => a + b, 0);
      const split = t.family === 'orca' && total > 0 ? m.cpu.map((c) => `${Math.round((100 * c) / total)}%`).join('/') : '-';
      return [
        t.name,
        m.rps,
        m.all.map((x) => x.toFixed(0)).join(' '),
        m.p50,
        m.p99,
        `${m.non2xx}${m.socketErrors ? ` / ${m.socketErrors}` : ''}`,
        one ? `${(m.rps / one.rps).toFixed(2)}x` : '-',
        t.family === 'orca' && ng ? `${(m.rps / ng.rps).toFixed(2)}x` : '-',
        t.family === 'orca' && ng ? `${(m.p99 / ng.p99).toFixed(2)}x` : '-',
        m.cpuUsPerRequest,
        m.firstUsPerRequest,
        split,
      ];
    });
    report(
      'req/s and p99 by worker count (scaling = req/s ÷ same proxy with 1 worker; ÷ nginx = against nginx with as many workers)',
      ['how', 'req/s', 'req/s by round', 'p50 ms', 'p99 ms', 'non-2xx / socket errors', 'scaling', 'req/s ÷ nginx', 'p99 ÷ nginx', 'CPU µs/req', 'of which primary/master', 'worker CPU split'],
      rows,
    );
    out('');
    out('CPU µs/req: CPU time of all of the proxy\'s processes (Orca: the primary, which merges the metrics, and its workers; nginx: master and workers) over the measured runs ÷ requests.');
    out('It is what a request costs whatever the worker count; with k cores free for the proxy, req/s tops out near k × 1e6 ÷ it — the scaling this machine cannot show.');
    out(`of which primary/master: Orca's primary (the server's side: it adds the workers' metric batches to prom-client) or nginx's master; the figure with 1 worker is the plane's own overhead against the in-process proxy.`);
    out(`worker CPU split: how the Orca workers' CPU time divided (the kernel picks which worker accepts each connection).`);
    out(`total ${((performance.now() - started) / 1000).toFixed(0)} s`);
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  }
}
