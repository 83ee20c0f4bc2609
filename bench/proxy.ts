/**
 * Proxy throughput and latency (target "≥ 0.8× nginx throughput, p99 ≤ 1.5× nginx"):
 * wrk on loopback against the same backend three ways in one run — direct, through nginx, and
 * through Orca's proxy — each after a warm-up run of its own.
 *
 * Two backend sets:
 *   A. busybox httpd: the Orca-run container of orca-example/web:1 (1 replica, a route on
 *      bench.localhost). "direct" and nginx go to its published 127.0.0.1:hostPort; Orca's proxy
 *      is the real `orca server`'s, routing to the same container. busybox httpd forks per
 *      connection and closes each one after its response, so every request pays a connect and
 *      a fork behind any proxy: this set shows how little the proxy matters there.
 *   B. a keep-alive backend: a tiny Node http server in a child process on 127.0.0.1 (not in a
 *      container, so the server cannot route to it): Orca's proxy is constructed the way the
 *      server does it (proxy/proxy.ts, with the server's prom-client metrics adapter) in a child
 *      process of its own, with one static route to that backend. This set shows the proxy's
 *      own overhead.
 * nginx: a child `nginx -p tmpdir -c conf` (daemon off, 2 workers, access log off, upstream with
 * keepalive 64, proxy_http_version 1.1, Connection ""), killed by pid at the end. Ratios and the
 * target use it. Caddy, the second baseline: Debian's `caddy run` with a Caddyfile of its defaults
 * (bench/lib.ts startCaddy: admin and automatic HTTPS off, no access log, `reverse_proxy` to the
 * same backend), killed by pid at the end. For context two more lines, not part of the target:
 * nginx with 1 worker (the same CPU budget as the proxy's one event loop) and, in set A, the
 * in-child proxy to busybox (the proxy without the rest of the server beside it).
 * CPU µs/req: the CPU time (user + system, /proc/PID/stat) of the proxy's processes over the
 * measured runs ÷ the requests they served (nginx: master and workers; Orca's server: the whole
 * server process, its control plane included; "direct" has no proxy: -).
 * Everything shares this machine's CPUs (wrk too): figures compare within the run, not across
 * machines.
 *
 * Each target is measured in `rounds` interleaved rounds (default 3); the round with the median
 * req/s is shown, beside req/s of every round.
 *
 *   node dist/bench/proxy.js [seconds=10] [rounds=3] [sets=AB|A|B]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { systemClock } from '../core/clock.js';
import { createLogger } from '../core/log.js';
import { DockerRuntime } from '../runtime/docker-runtime.js';
import { buildExampleImages } from '../examples/images.js';
import { cleanup, orca, startServer, stopServer, testEnv, type ServerProcess } from '../test/e2e/harness.js';
import { httpClient } from '../test/e2e/http-client.js';
import { cpuTicks, ensureDebianTool, processTree, report, startCaddy, startNginx, ticksPerSec, wrk, type Caddy, type Nginx, type WrkResult } from './lib.js';

const HOST = 'bench.localhost';
const WRK = { threads: 2, connections: 50 };
const WARMUP_SECS = 3;
/** The backend B body: the same bytes as orca-example/web:1's index.html. */
const BODY = 'orca-example web v1';
const NGINX_A = 'nginx (2 workers) → busybox';
const NGINX_B = 'nginx (2 workers) → node';
const CADDY_A = 'caddy → busybox';
const CADDY_B = 'caddy → node';

const role = process.argv[2] === '--child' ? process.argv[3] : undefined;
if (role === 'backend') backendChild();
else if (role === 'proxy') await proxyChild(Number(process.argv[4]));
else await main();

// ---- children -----------------------------------------------------------------------------

/** A keep-alive HTTP server answering 200 BODY to everything; prints {"port":N} once listening. */
function backendChild(): void {
  const body = Buffer.from(BODY);
  const srv = http.createServer({ noDelay: true }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html', 'content-length': body.length });
    res.end(body);
  });
  srv.keepAliveTimeout = 65_000;
  srv.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: (srv.address() as { port: number }).port })}\n`));
  process.once('SIGTERM', () => process.exit(0));
}

/** Orca's proxy as the server builds it, one route to 127.0.0.1:backendPort; prints {"port":N}. */
async function proxyChild(backendPort: number): Promise<void> {
  const { Proxy } = await import('../proxy/proxy.js');
  const { Metrics } = await import('../server/metrics.js');
  const metrics = new Metrics({ instances: () => Promise.resolve([]), nodes: () => [] });
  const log = createLogger({ level: 'info', pretty: false, destination: process.stderr });
  const px = new Proxy({
    log: log.child({ component: 'proxy' }),
    clock: systemClock,
    metrics: {
      request: (route: string, status: number) => metrics.proxyRequest(route, status),
      upstreamSeconds: (route: string, seconds: number) => metrics.proxyUpstreamSeconds(route, seconds),
    },
  });
  px.setRoutes([{ service: 'bench', host: HOST, path: '/', backends: [{ instance: 'b', address: `127.0.0.1:${backendPort}` }] }]);
  const { port } = await px.listen('127.0.0.1', 0);
  process.stdout.write(`${JSON.stringify({ port })}\n`);
  process.once('SIGTERM', () => void px.close().finally(() => process.exit(0)));
}

// ---- driver -------------------------------------------------------------------------------

interface Child {
  proc: ChildProcess;
  port: number;
  stop: () => Promise<void>;
}

/** Runs this file with `--child ARGS`; resolves once it printed its port. Stopped by pid. */
function startChild(args: string[]): Promise<Child> {
  const proc = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
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
      reject(new Error(`child ${args.join(' ')} did not start: ${err}`));
    }, 10_000);
    proc.stdout?.on('data', (d) => {
      out += d;
      const line = out.split('\n').find((l) => l.startsWith('{"port"'));
      if (!line) return;
      systemClock.clearTimeout(timer);
      resolve({ proc, port: (JSON.parse(line) as { port: number }).port, stop });
    });
    void exited.then(() => reject(new Error(`child ${args.join(' ')} exited: ${err}`)));
  });
}

interface Target {
  name: string;
  url: string;
  /** The proxy's processes, read after each warm-up (nginx forks its workers late); none: no CPU figure. */
  pids?: () => number[];
}

interface Measured extends WrkResult {
  /** req/s of every round, in order. */
  all: number[];
  /** CPU µs of the proxy's processes per request over every measured run; NaN without pids. */
  cpuUsPerRequest: number;
}

/**
 * Measures every target `rounds` times, interleaved (round 1 of each, then round 2 …, the order
 * rotated by one each round), each run
 * after a warm-up run of its own; keeps, per target, the run with the median req/s, and the
 * spread of req/s over the rounds (the backend and the CPUs are shared, so single runs are noisy).
 */
async function measure(targets: Target[], secs: number, rounds: number): Promise<Map<string, Measured>> {
  for (const t of targets) {
    // Every target answers the same body before it is measured.
    const probe = httpClient(new URL(t.url).host);
    try {
      const res = await probe.get(HOST);
      if (res.status !== 200 || res.body.trim() !== BODY) throw new Error(`${t.name} (${t.url}) answers ${res.status} ${res.body.slice(0, 80)}`);
    } finally {
      probe.close();
    }
  }
  const all = new Map<string, WrkResult[]>(targets.map((t) => [t.name, []]));
  const cpu = new Map<string, { ticks: number; requests: number }>(targets.map((t) => [t.name, { ticks: 0, requests: 0 }]));
  const ticks = (pids: number[]) => pids.reduce((a, pid) => a + cpuTicks(pid), 0);
  for (let r = 0; r < rounds; r++) {
    // Rotated each round, so no target always runs right after the same one (TIME_WAIT sockets
    // and the backend's state carry over from one run to the next).
    for (const t of [...targets.slice(r % targets.length), ...targets.slice(0, r % targets.length)]) {
      await wrk(t.url, { ...WRK, durationSecs: WARMUP_SECS, host: HOST });
      const pids = t.pids?.() ?? [];
      const before = ticks(pids);
      const run = await wrk(t.url, { ...WRK, durationSecs: secs, host: HOST });
      all.get(t.name)!.push(run);
      const c = cpu.get(t.name)!;
      c.ticks += ticks(pids) - before;
      c.requests += run.requests;
    }
  }
  const out = new Map<string, Measured>();
  for (const t of targets) {
    const list = all.get(t.name)!;
    const sorted = [...list].sort((a, b) => a.rps - b.rps);
    const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
    const c = cpu.get(t.name)!;
    const cpuUsPerRequest = t.pids && c.requests > 0 ? (c.ticks * (1e6 / ticksPerSec())) / c.requests : NaN;
    out.set(t.name, { ...median, all: list.map((x) => x.rps), cpuUsPerRequest });
  }
  return out;
}

function table(title: string, results: Map<string, Measured>, nginxName: string): void {
  const ng = results.get(nginxName);
  const ratio = (a: number, b: number | undefined) => (b !== undefined && Number.isFinite(a) && b > 0 ? `${(a / b).toFixed(2)}x` : '-');
  const rows = [...results.entries()].map(([name, r]) => [
    name,
    r.rps,
    r.all.map((x) => x.toFixed(0)).join(' '),
    r.p50,
    r.p90,
    r.p99,
    r.max,
    `${r.non2xx}${r.socketErrors ? ` / ${r.socketErrors}` : ''}`,
    ratio(r.rps, ng?.rps),
    ratio(r.p99, ng?.p99),
    Number.isFinite(r.cpuUsPerRequest) ? r.cpuUsPerRequest.toFixed(0) : '-',
  ]);
  report(title, ['how', 'req/s', 'req/s by round', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'non-2xx / socket errors', 'req/s ÷ nginx', 'p99 ÷ nginx', 'CPU µs/req'], rows);
}

async function main(): Promise<void> {
  const secs = Number(process.argv[2] ?? 10);
  const rounds = Number(process.argv[3] ?? 3);
  const sets = process.argv[4] ?? 'AB';
  if (!Number.isInteger(secs) || secs < 1 || secs > 120 || !Number.isInteger(rounds) || rounds < 1 || rounds > 10 || !['AB', 'A', 'B'].includes(sets)) {
    process.stderr.write('usage: node dist/bench/proxy.js [seconds=10] [rounds=3] [sets=AB|A|B]  (1..120, 1..10)\n');
    process.exit(2);
  }
  ensureDebianTool('wrk', 'wrk');
  ensureDebianTool('nginx', 'nginx-light');
  ensureDebianTool('caddy', 'caddy');
  if (sets.includes('A')) await buildExampleImages(new DockerRuntime());

  const env = await testEnv('bench-proxy');
  let server: ServerProcess | undefined;
  const stops: Array<() => Promise<void>> = [];
  const started = performance.now();
  const out = (s: string) => process.stdout.write(`${s}\n`);
  const tree = (pid: number) => () => processTree(pid);
  try {
    // ---- A: busybox httpd in the Orca-run container ----------------------------------------
    let resultsA: Map<string, Measured> | undefined;
    if (sets.includes('A')) {
      server = await startServer({ ...env, env: { ORCA_LOG_LEVEL: 'info' } });
      const base = ['--api', server.api, '--data-dir', env.dataDir];
      const manifest = join(env.dataDir, 'bench.toml');
      await writeFile(
        manifest,
        `[[service]]\nname = "bench"\nimage = "orca-example/web:1"\nreplicas = 1\nport = 80\nstop_grace_secs = 1\n\n` +
          `[service.route]\nhost = "${HOST}"\n\n[service.readiness]\npath = "/ready"\ninterval_secs = 1\n`,
      );
      const applied = await orca([...base, 'apply', '-f', manifest, '--wait', '--timeout', '60']);
      if (applied.code !== 0) throw new Error(`orca apply failed: ${applied.stderr}`);
      const status = JSON.parse((await orca([...base, 'status', 'bench', '-o', 'json'])).stdout) as {
        services: Array<{ instances: Array<{ ready: boolean; address: string | null }> }>;
      };
      const address = status.services[0]?.instances.find((i) => i.ready)?.address;
      if (!address) throw new Error('no ready instance with an address');
      const nginxA: Nginx = await startNginx({ servers: [address], serverName: HOST });
      stops.push(nginxA.stop);
      const nginxA1: Nginx = await startNginx({ servers: [address], serverName: HOST, workers: 1 });
      stops.push(nginxA1.stop);
      const caddyA: Caddy = await startCaddy({ servers: [address] });
      stops.push(caddyA.stop);
      const proxyA = await startChild(['proxy', address.split(':')[1] ?? '']);
      stops.push(proxyA.stop);
      resultsA = await measure(
        [
          { name: 'direct (busybox httpd)', url: `http://${address}/` },
          { name: NGINX_A, url: `http://127.0.0.1:${nginxA.port}/`, pids: tree(nginxA.pid) },
          { name: 'orca server proxy → busybox', url: `http://${server.proxy}/`, pids: tree(server.pid) },
          { name: CADDY_A, url: `http://127.0.0.1:${caddyA.port}/`, pids: tree(caddyA.pid) },
          { name: 'nginx, 1 worker → busybox', url: `http://127.0.0.1:${nginxA1.port}/`, pids: tree(nginxA1.pid) },
          { name: 'orca proxy (in a child) → busybox', url: `http://127.0.0.1:${proxyA.port}/`, pids: tree(proxyA.proc.pid as number) },
        ],
        secs,
        rounds,
      );
      await nginxA.stop();
      await nginxA1.stop();
      await caddyA.stop();
      await proxyA.stop();
      await stopServer(server);
    }

    // ---- B: a keep-alive Node backend -----------------------------------------------------
    let resultsB: Map<string, Measured> | undefined;
    if (sets.includes('B')) {
      const backend = await startChild(['backend']);
      stops.push(backend.stop);
      const proxy = await startChild(['proxy', String(backend.port)]);
      stops.push(proxy.stop);
      const nginxB = await startNginx({ servers: [`127.0.0.1:${backend.port}`], serverName: HOST });
      stops.push(nginxB.stop);
      const nginxB1 = await startNginx({ servers: [`127.0.0.1:${backend.port}`], serverName: HOST, workers: 1 });
      stops.push(nginxB1.stop);
      const caddyB: Caddy = await startCaddy({ servers: [`127.0.0.1:${backend.port}`] });
      stops.push(caddyB.stop);
      resultsB = await measure(
        [
          { name: 'direct (node keep-alive)', url: `http://127.0.0.1:${backend.port}/` },
          { name: NGINX_B, url: `http://127.0.0.1:${nginxB.port}/`, pids: tree(nginxB.pid) },
          { name: 'orca proxy (in a child) → node', url: `http://127.0.0.1:${proxy.port}/`, pids: tree(proxy.proc.pid as number) },
          { name: CADDY_B, url: `http://127.0.0.1:${caddyB.port}/`, pids: tree(caddyB.pid) },
          { name: 'nginx, 1 worker → node', url: `http://127.0.0.1:${nginxB1.port}/`, pids: tree(nginxB1.pid) },
        ],
        secs,
        rounds,
      );
    }

    // ---- report ---------------------------------------------------------------------------
    out(`proxy throughput: wrk -t${WRK.threads} -c${WRK.connections} -d${secs}s --latency (after a ${WARMUP_SECS} s warm-up run each), Host: ${HOST}, loopback`);
    out(`${rounds} rounds, targets interleaved (order rotated each round); shown per target: the round with the median req/s (its latencies), and req/s of every round`);
    out(`machine: ${cpus().length} CPUs shared by wrk, the proxy under test and the backend; nginx: 2 workers, upstream keepalive 64; caddy: Debian's, its defaults`);
    out('CPU µs/req: CPU time of the proxy\'s processes over the measured runs ÷ requests (the orca server row: the whole server process)');
    if (resultsA) table('A. backend = busybox httpd in the Orca-run orca-example/web:1 container (fork + close per request; ratios to nginx 2 workers)', resultsA, NGINX_A);
    if (resultsB) table('B. backend = Node http server with keep-alive (child process, 127.0.0.1; ratios to nginx 2 workers)', resultsB, NGINX_B);
    const verdict = (o: Measured | undefined, ng: Measured | undefined) => {
      if (!o || !ng) return '-';
      const r = o.rps / ng.rps;
      const q = o.p99 / ng.p99;
      return `${r.toFixed(2)}× req/s, p99 ${q.toFixed(2)}×: ${r >= 0.8 && q <= 1.5 ? 'met' : 'NOT met'}`;
    };
    const vsCaddy = (o: Measured | undefined, c: Measured | undefined) => (o && c ? `${(o.rps / c.rps).toFixed(2)}× req/s, p99 ${(o.p99 / c.p99).toFixed(2)}×` : '-');
    out('');
    out(`target: ≥ 0.8× nginx throughput, p99 ≤ 1.5× nginx`);
    if (resultsA) out(`  A (busybox backend) orca server proxy vs nginx 2 workers: ${verdict(resultsA.get('orca server proxy → busybox'), resultsA.get(NGINX_A))}`);
    if (resultsB) out(`  B (keep-alive backend) orca proxy vs nginx 2 workers:     ${verdict(resultsB.get('orca proxy (in a child) → node'), resultsB.get(NGINX_B))}`);
    const a1 = resultsA ? `A ${verdict(resultsA.get('orca server proxy → busybox'), resultsA.get('nginx, 1 worker → busybox'))}` : '';
    const b1 = resultsB ? `B ${verdict(resultsB.get('orca proxy (in a child) → node'), resultsB.get('nginx, 1 worker → node'))}` : '';
    out(`  (same CPU budget, one event loop vs one nginx worker: ${[a1, b1].filter(Boolean).join('; ')})`);
    const ca = resultsA ? `A ${vsCaddy(resultsA.get('orca server proxy → busybox'), resultsA.get(CADDY_A))}` : '';
    const cb = resultsB ? `B ${vsCaddy(resultsB.get('orca proxy (in a child) → node'), resultsB.get(CADDY_B))}` : '';
    out(`  orca vs caddy (its defaults): ${[ca, cb].filter(Boolean).join('; ')}`);
    out(`total ${((performance.now() - started) / 1000).toFixed(0)} s`);
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    await stopServer(server);
    await cleanup(env.cluster, env.dataDir);
  }
}
