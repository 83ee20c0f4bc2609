/**
 * One request's latency while a slow backend is saturated (issue 17's goal: Orca's p50 ≤ 3×
 * nginx's — a request must not wait in a queue behind the load).
 *
 * Backend: busybox httpd, the Orca-run orca-example/web:1 container with 2 replicas and a route on
 * bench.localhost (as bench/proxy.ts set A): it forks per connection and closes each one after its
 * response, so every request through any proxy pays a connect and a fork. Three proxies in front
 * of the same two containers: the real `orca server`'s proxy, nginx (2 workers, an upstream with
 * both published ports, bench/lib.ts startNginx) and Caddy (its defaults, reverse_proxy to both,
 * bench/lib.ts startCaddy).
 *
 * Per proxy and round: wrk -t2 -c20 for `secs` saturates the backends through the proxy, and
 * meanwhile, from 0.5 s after it starts until 0.5 s before it ends, a probe — one user — sends a
 * GET through the same proxy every 10 ms, one at a time on a keep-alive connection of its own: the
 * next leaves 10 ms after the previous one left, or at once when that one took longer. (Not an
 * open loop: on a slow machine busybox answers fewer than the 100 requests a second that would
 * add, and the probe would be measuring its own pile-up.) Each has a 5 s timeout; a timeout, a
 * reset or a non-200 is an error. Shown per proxy: the round with the median probe
 * p50, with p50/p99/max of its probes, beside the p50 and p99 of every round; the load's req/s;
 * and the proxy's CPU µs per request (its processes' /proc CPU time over the run ÷ the requests
 * of wrk and the probe; the orca row is the whole server process). Proxies are interleaved in
 * rounds, the order rotated each round.
 *
 *   node dist/bench/proxy-slow.js [secs=10] [rounds=3]     (about 110 s with the defaults)
 */
import http from 'node:http';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { sleep, systemClock } from '../core/clock.js';
import { DockerRuntime } from '../runtime/docker-runtime.js';
import { buildExampleImages } from '../examples/images.js';
import { cleanup, orca, startServer, stopServer, testEnv, type ServerProcess } from '../test/e2e/harness.js';
import { cpuTicks, ensureDebianTool, median, percentile, processTree, report, series, startCaddy, startNginx, ticksPerSec, wrk, type WrkResult } from './lib.js';

const HOST = 'bench.localhost';
const LOAD = { threads: 2, connections: 20 };
const PROBE_EVERY_MS = 10;
const PROBE_TIMEOUT_MS = 5_000;
/** The probe starts this long after the load and stops this long before its end. */
const MARGIN_MS = 500;
const GOAL = 3;
const ORCA = 'orca server proxy';
const NGINX = 'nginx (2 workers)';
const CADDY = 'caddy';

interface Target {
  name: string;
  port: number;
  pid: number;
}

interface Round {
  latencies: number[];
  errors: number;
  /** What the failed probes got: a status, "timeout" or an error code. */
  errorKinds: Map<string, number>;
  load: WrkResult;
  cpuTicks: number;
  p50: number;
  p99: number;
  max: number;
}

/** One GET through the proxy: its latency in ms, or what went wrong (a non-200 status, "timeout", an error code). */
function probeOnce(agent: http.Agent, port: number): Promise<number | string> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    let done = false;
    const finish = (failure?: string) => {
      if (done) return;
      done = true;
      resolve(failure ?? performance.now() - t0);
    };
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent, headers: { host: HOST }, timeout: PROBE_TIMEOUT_MS }, (res) => {
      res.resume();
      res.once('end', () => finish(res.statusCode === 200 ? undefined : String(res.statusCode)));
      res.once('error', (err: NodeJS.ErrnoException) => finish(err.code ?? 'error'));
    });
    req.once('timeout', () => {
      finish('timeout');
      req.destroy();
    });
    req.once('error', (err: NodeJS.ErrnoException) => finish(err.code ?? 'error'));
  });
}

/** The load through one proxy, with the probe beside it. */
async function runOnce(t: Target, secs: number): Promise<Round> {
  const pids = processTree(t.pid);
  const before = pids.reduce((a, p) => a + cpuTicks(p), 0);
  const load = wrk(`http://127.0.0.1:${t.port}/`, { ...LOAD, durationSecs: secs, host: HOST });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const results: Array<number | string> = [];
  try {
    await sleep(systemClock, MARGIN_MS);
    const start = performance.now();
    const end = start + secs * 1000 - 2 * MARGIN_MS;
    // One at a time, each leaving 10 ms after the previous one left (at once if that took longer).
    for (let at = start; at < end; ) {
      results.push(await probeOnce(agent, t.port));
      at += PROBE_EVERY_MS;
      const wait = at - performance.now();
      if (wait > 0) await sleep(systemClock, wait);
      else at = performance.now();
    }
    const result = await load;
    const ticks = pids.reduce((a, p) => a + cpuTicks(p), 0) - before;
    const latencies = results.filter((x): x is number => typeof x === 'number');
    const errorKinds = new Map<string, number>();
    for (const x of results) if (typeof x === 'string') errorKinds.set(x, (errorKinds.get(x) ?? 0) + 1);
    return {
      latencies,
      errors: results.length - latencies.length,
      errorKinds,
      load: result,
      cpuTicks: ticks,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max: latencies.length ? Math.max(...latencies) : NaN,
    };
  } finally {
    agent.destroy();
  }
}

/** "0", or "19: 502×10 timeout×9" over all rounds. */
function errorsOf(list: Round[]): string {
  const kinds = new Map<string, number>();
  for (const r of list) for (const [k, n] of r.errorKinds) kinds.set(k, (kinds.get(k) ?? 0) + n);
  const total = [...kinds.values()].reduce((a, n) => a + n, 0);
  if (total === 0) return '0';
  return `${total}: ${[...kinds.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k}×${n}`).join(' ')}`;
}

async function main(): Promise<void> {
  const secs = Number(process.argv[2] ?? 10);
  const rounds = Number(process.argv[3] ?? 3);
  if (!Number.isInteger(secs) || secs < 2 || secs > 120 || !Number.isInteger(rounds) || rounds < 1 || rounds > 10) {
    process.stderr.write('usage: node dist/bench/proxy-slow.js [secs=10] [rounds=3]  (2..120, 1..10)\n');
    process.exit(2);
  }
  ensureDebianTool('wrk', 'wrk');
  ensureDebianTool('nginx', 'nginx-light');
  ensureDebianTool('caddy', 'caddy');
  await buildExampleImages(new DockerRuntime());

  const env = await testEnv('bench-proxy-slow');
  let server: ServerProcess | undefined;
  const stops: Array<() => Promise<void>> = [];
  const started = performance.now();
  const out = (s: string) => process.stdout.write(`${s}\n`);
  try {
    server = await startServer({ ...env, env: { ORCA_LOG_LEVEL: 'info' } });
    const base = ['--api', server.api, '--data-dir', env.dataDir];
    const manifest = join(env.dataDir, 'bench.toml');
    await writeFile(
      manifest,
      `[[service]]\nname = "bench"\nimage = "orca-example/web:1"\nreplicas = 2\nport = 80\nstop_grace_secs = 1\n\n` +
        `[service.route]\nhost = "${HOST}"\n\n[service.readiness]\npath = "/ready"\ninterval_secs = 1\n`,
    );
    const applied = await orca([...base, 'apply', '-f', manifest, '--wait', '--timeout', '60']);
    if (applied.code !== 0) throw new Error(`orca apply failed: ${applied.stderr}`);
    const status = JSON.parse((await orca([...base, 'status', 'bench', '-o', 'json'])).stdout) as {
      services: Array<{ instances: Array<{ ready: boolean; address: string | null }> }>;
    };
    const addresses = (status.services[0]?.instances ?? []).filter((i) => i.ready && i.address).map((i) => i.address as string);
    if (addresses.length !== 2) throw new Error(`expected 2 ready instances with an address, got ${addresses.length}`);
    const [, proxyPort] = (server.proxy ?? '').split(':');
    const nginx = await startNginx({ servers: addresses, serverName: HOST });
    stops.push(nginx.stop);
    const caddy = await startCaddy({ servers: addresses });
    stops.push(caddy.stop);
    const targets: Target[] = [
      { name: ORCA, port: Number(proxyPort), pid: server.pid },
      { name: NGINX, port: nginx.port, pid: nginx.pid },
      { name: CADDY, port: caddy.port, pid: caddy.pid },
    ];
    const agent = new http.Agent({ keepAlive: false });
    for (const t of targets) {
      const ms = await probeOnce(agent, t.port);
      if (typeof ms !== 'number') throw new Error(`${t.name} (127.0.0.1:${t.port}) does not answer 200: ${ms}`);
    }
    agent.destroy();

    const all = new Map<string, Round[]>(targets.map((t) => [t.name, []]));
    for (let r = 0; r < rounds; r++) {
      for (const t of [...targets.slice(r % targets.length), ...targets.slice(0, r % targets.length)]) {
        all.get(t.name)!.push(await runOnce(t, secs));
      }
    }

    const chosen = new Map<string, Round>();
    for (const t of targets) {
      const sorted = [...all.get(t.name)!].sort((a, b) => a.p50 - b.p50);
      chosen.set(t.name, sorted[Math.floor((sorted.length - 1) / 2)]!);
    }
    const ng = chosen.get(NGINX);
    const rows = targets.map((t) => {
      const list = all.get(t.name)!;
      const m = chosen.get(t.name)!;
      const ticks = list.reduce((a, x) => a + x.cpuTicks, 0);
      const requests = list.reduce((a, x) => a + x.load.requests + x.latencies.length + x.errors, 0);
      return [
        t.name,
        String(m.latencies.length + m.errors),
        m.p50,
        m.p99,
        m.max,
        errorsOf(list),
        list.map((x) => x.p50.toFixed(1)).join(' '),
        list.map((x) => x.p99.toFixed(0)).join(' '),
        series(list.map((x) => x.load.rps)),
        median(list.map((x) => x.load.rps)),
        requests > 0 ? ((ticks * 1e6) / ticksPerSec() / requests).toFixed(0) : '-',
        ng ? `${(m.p50 / ng.p50).toFixed(2)}x` : '-',
      ];
    });

    out(`one request while a slow backend is saturated: busybox httpd (orca-example/web:1, 2 replicas, fork + close per connection) behind each proxy`);
    out(`load: wrk -t${LOAD.threads} -c${LOAD.connections} -d${secs}s, Host: ${HOST}; probe: a GET every ${PROBE_EVERY_MS} ms (one at a time, keep-alive, ${PROBE_TIMEOUT_MS / 1000} s timeout) through the same proxy, from ${MARGIN_MS / 1000} s after the load starts to ${MARGIN_MS / 1000} s before it ends`);
    out(`${rounds} rounds, proxies interleaved (order rotated each round); shown per proxy: the round with the median probe p50 (its probes), p50/p99 of every round`);
    out(`machine: ${cpus().length} CPUs shared by wrk, the probe, the proxy and the backends; nginx: 2 workers, upstream keepalive 64, both replicas; caddy: Debian's, its defaults, both replicas`);
    out('CPU µs/req: CPU time of the proxy\'s processes over every run ÷ (load + probe requests); the orca row is the whole server process');
    report(
      'probe latency through each proxy under load (ms; ratio: probe p50 ÷ nginx probe p50)',
      ['proxy', 'probes', 'p50 ms', 'p99 ms', 'max ms', 'errors (all rounds)', 'p50 by round', 'p99 by round', 'load req/s by round', 'load req/s', 'CPU µs/req', 'p50 ÷ nginx'],
      rows,
    );
    const o = chosen.get(ORCA);
    const n = chosen.get(NGINX);
    const c = chosen.get(CADDY);
    out('');
    if (o && n) {
      const ratio = o.p50 / n.p50;
      out(`goal: orca p50 ≤ ${GOAL}× nginx p50 — ${o.p50.toFixed(1)} ms vs ${n.p50.toFixed(1)} ms = ${ratio.toFixed(2)}×: ${ratio <= GOAL ? 'met' : 'NOT met'}`);
    }
    if (o && c) out(`orca vs caddy: p50 ${(o.p50 / c.p50).toFixed(2)}×, p99 ${(o.p99 / c.p99).toFixed(2)}×`);
    out(`total ${((performance.now() - started) / 1000).toFixed(0)} s`);
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    await stopServer(server);
    await cleanup(env.cluster, env.dataDir);
  }
}

await main();
