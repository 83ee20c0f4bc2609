/**
 * Zero loss under kill -9 (SPEC §3.5 "with ≥ 2 replicas, killing one instance under load loses no
 * request"; §3.1 "route gone ≤ 100 ms after the event"), beside nginx in the same run.
 *
 * Load: CLIENTS sequential keep-alive GET loops (test/e2e/http-client.ts, Host hello.localhost)
 * for SECS seconds (bounded in count too). Every KILL_EVERY_MS one of the 2 replicas gets
 * SIGKILL on its main process (docker inspect .State.Pid; docker-init, init on), alternating
 * between the two, and only when both are ready (else the kill waits until they are).
 * A request fails on a transport error or any status but 200; failures are broken down.
 *
 * Orca: `orca server`, a 2-replica service of TEST_IMAGE running busybox httpd that answers its
 * hostname (test/e2e/proxy.test.ts), readiness GET /ready every 0.2 s, restart reset_after 2 s
 * (each slot runs ~5 s between its kills, so every kill is a first failure: no crash-loop delay).
 * Per kill: how long the dead instance stayed in the routing table = the `time` of its
 * `route.remove` line in `orca events -o json` minus the wall time of the kill (same host clock;
 * the server keeps no other view of its table outside the process), and until its replacement
 * was ready (`instance.ready` of the new instance of that slot).
 *
 * Baseline: nginx (2 workers, static upstream with both replicas' 127.0.0.1:PORT, keepalive 64,
 * `proxy_next_upstream error timeout`, default passive checks max_fails=1 fail_timeout=10s) in
 * front of 2 `docker run --restart=always --init -p 127.0.0.1:PORT:80` containers of the same
 * image and command (fixed ports, so they survive their restarts), killed the same way; two
 * variants, each on fresh containers: nginx's default passive checks, and max_fails=0.
 * Orca first, then its server is stopped, then nginx's run (a running server removes containers
 * labelled with its cluster that it does not own).
 *
 *   node dist/bench/zero-loss.js [seconds=30]
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { sleep, systemClock } from '../core/clock.js';
import { DockerRuntime } from '../runtime/docker-runtime.js';
import { LABEL } from '../runtime/labels.js';
import { TEST_IMAGE, ensureTestImages } from '../test/images.js';
import { cleanup, cli, startServer, stopServer, testEnv, type ServerProcess } from '../test/e2e/harness.js';
import { httpClient } from '../test/e2e/http-client.js';
import { breakdown, containerMainPid, docker, ensureDebianTool, freePorts, httpStatus, parseEvents, percentile, report, series, startNginx, type Nginx } from './lib.js';

const secs = Number(process.argv[2] ?? 30);
if (!Number.isInteger(secs) || secs < 5 || secs > 300) {
  process.stderr.write('usage: node dist/bench/zero-loss.js [seconds=30]  (5..300)\n');
  process.exit(2);
}
const SERVICE = 'hello';
const HOST = 'hello.localhost';
const CLIENTS = 4;
const KILL_EVERY_MS = 3_000;
/** Per client: a bound on the count whatever the speed. */
const MAX_REQUESTS_PER_CLIENT = 500_000;
const REQUEST_TIMEOUT_MS = 5_000;
/** Longest wait for both replicas to be ready before a kill. */
const READY_WAIT_MS = 10_000;
const CMD = 'mkdir -p /tmp/www && hostname > /tmp/www/index.html && echo ok > /tmp/www/ready && exec httpd -f -p 80 -h /tmp/www';

interface Kill {
  /** Replica slot (0 or 1) and who was killed. */
  slot: number;
  instance: string;
  containerId: string;
  /** Wall time (ms since epoch) and performance.now() of the SIGKILL. */
  wall: number;
  at: number;
  /** ms from when the kill was due to the kill: the ready check (and any wait for both ready). */
  waitedMs: number;
  /** ms from the kill to Docker's `die` event of the container (the daemon's timestamp). */
  die?: number;
}

interface LoadResult {
  sent: number;
  ok: number;
  failed: number;
  failures: Map<string, number>;
  /** performance.now() of each failure. */
  failedAt: number[];
  servedBy: Set<string>;
  ms: number;
}

/** CLIENTS sequential GET loops through `proxy` with Host HOST, until stop() or `deadline` (performance.now). */
function load(proxy: string, deadline: number) {
  const http = httpClient(proxy);
  const r: LoadResult = { sent: 0, ok: 0, failed: 0, failures: new Map(), failedAt: [], servedBy: new Set(), ms: 0 };
  const t0 = performance.now();
  let stopped = false;
  const fail = (why: string) => {
    r.failed++;
    r.failedAt.push(performance.now());
    r.failures.set(why, (r.failures.get(why) ?? 0) + 1);
  };
  const loop = async () => {
    for (let n = 0; n < MAX_REQUESTS_PER_CLIENT && !stopped && performance.now() < deadline; n++) {
      r.sent++;
      try {
        const res = await http.get(HOST, '/', REQUEST_TIMEOUT_MS);
        if (res.status === 200) {
          r.ok++;
          r.servedBy.add(res.body.trim());
        } else fail(`HTTP ${res.status} ${res.body.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 60)}`);
      } catch (err) {
        const e = err as { code?: string; message?: string };
        fail(e.code ?? e.message ?? String(err));
      }
    }
  };
  const done = Promise.all(Array.from({ length: CLIENTS }, loop)).then(() => {
    r.ms = performance.now() - t0;
    http.close();
    return r;
  });
  return {
    done,
    stop: async () => {
      stopped = true;
      return done;
    },
  };
}

/**
 * Every KILL_EVERY_MS until `deadline` - 1 s: waits until `bothReady`, then SIGKILLs the main
 * process of `victim(slot)`, alternating slot 0 and 1.
 */
async function killLoop<T>(
  start: number,
  deadline: number,
  bothReady: () => Promise<T | undefined>,
  victim: (slot: number, ready: T) => { instance: string; containerId: string },
): Promise<Kill[]> {
  const kills: Kill[] = [];
  for (let k = 1; ; k++) {
    const due = start + k * KILL_EVERY_MS;
    if (due > deadline - 1_000) break;
    await sleep(systemClock, Math.max(0, due - performance.now()));
    const waitFrom = performance.now();
    let ready = await bothReady();
    while (ready === undefined && performance.now() - waitFrom < READY_WAIT_MS && performance.now() < deadline - 1_000) {
      await sleep(systemClock, 50);
      ready = await bothReady();
    }
    if (ready === undefined) continue;
    const slot = (k - 1) % 2;
    const v = victim(slot, ready);
    const pid = containerMainPid(v.containerId);
    const wall = systemClock.now();
    const at = performance.now();
    process.kill(pid, 'SIGKILL');
    kills.push({ slot, ...v, wall, at, waitedMs: at - waitFrom });
  }
  return kills;
}

interface Instance {
  id: string;
  state: string;
  ready: boolean;
  containerId: string | null;
}

const slotOf = (instance: string) => Number(instance.split('-').at(-2));

/** Docker's `die` events of this cluster's containers between two wall times: container id → times (ms since epoch). */
function dockerDies(cluster: string, fromMs: number, toMs: number): Map<string, number[]> {
  const lines = docker([
    'events', '--since', (fromMs / 1000).toFixed(3), '--until', (toMs / 1000).toFixed(3),
    '--filter', `label=${LABEL.cluster}=${cluster}`, '--filter', 'event=die', '--format', '{{.Actor.ID}} {{.TimeNano}}',
  ]);
  const out = new Map<string, number[]>();
  for (const line of lines.split('\n').filter(Boolean)) {
    const [id, nano] = line.split(' ');
    if (!id || !nano) continue;
    out.set(id, [...(out.get(id) ?? []), Number(BigInt(nano) / 1000n) / 1000]);
  }
  return out;
}

/** Fills each kill's `die` from Docker's events (the first die of that container at or after the kill). */
function noteDies(kills: Kill[], cluster: string, fromMs: number): void {
  const dies = dockerDies(cluster, fromMs - 1_000, systemClock.now());
  for (const k of kills) {
    const t = (dies.get(k.containerId) ?? []).find((d) => d >= k.wall - 5);
    if (t !== undefined) k.die = t - k.wall;
  }
}

await ensureTestImages(new DockerRuntime());
ensureDebianTool('nginx', 'nginx-light');
const env = await testEnv('bench-zero-loss');
let server: ServerProcess | undefined;
const nginxes: Nginx[] = [];
const dockerIds: string[] = [];
const out = (s: string) => process.stdout.write(`${s}\n`);
const started = performance.now();
let orcaLoad: LoadResult | undefined;
let orcaKills: Kill[] = [];
const baselines: Array<{ name: string; load: LoadResult; kills: Kill[] }> = [];
const perKill: Array<{ kill: Kill; inTable: number; dieToRemove: number; replacementReady: number; failedWithin1s: number }> = [];
try {
  // ---- Orca ---------------------------------------------------------------------------------
  server = await startServer({ ...env, env: { ORCA_LOG_LEVEL: 'info' } });
  const run = cli(server, env.dataDir);
  const manifest = join(env.dataDir, `${SERVICE}.toml`);
  await writeFile(
    manifest,
    `[[service]]
name = "${SERVICE}"
image = "${TEST_IMAGE}"
command = ["sh", "-c", "${CMD}"]
replicas = 2
port = 80
stop_grace_secs = 1

[service.route]
host = "${HOST}"

[service.readiness]
path = "/ready"
interval_secs = 0.2
timeout_secs = 0.5
failure_threshold = 1
initial_delay_secs = 0

[service.restart]
reset_after_secs = 2
`,
  );
  const applied = await run(['apply', '-f', manifest, '--wait', '--timeout', '60']);
  if (applied.code !== 0) throw new Error(`orca apply failed: ${applied.stderr}`);
  const readyOnes = async (): Promise<Instance[]> => {
    const r = await run(['status', SERVICE, '-o', 'json']);
    if (r.code !== 0) throw new Error(r.stderr);
    const all = (JSON.parse(r.stdout) as { services: Array<{ instances: Instance[] }> }).services[0]?.instances ?? [];
    return all.filter((i) => i.ready && i.state === 'running' && i.containerId);
  };
  {
    const wall0 = systemClock.now();
    const t0 = performance.now();
    const deadline = t0 + secs * 1000;
    const l = load(server.proxy!, deadline);
    orcaKills = await killLoop(
      t0,
      deadline,
      async () => {
        const ready = await readyOnes();
        return ready.length === 2 ? ready : undefined;
      },
      (slot, ready) => {
        const v = ready.find((i) => slotOf(i.id) === slot) ?? ready[0]!;
        return { instance: v.id, containerId: v.containerId! };
      },
    );
    orcaLoad = await l.done;
    await sleep(systemClock, 1_000);
    noteDies(orcaKills, env.cluster, wall0);
  }
  const events = parseEvents((await run(['events', '--service', SERVICE, '-o', 'json'])).stdout);
  for (const kill of orcaKills) {
    const removed = events.find((e) => e.action === 'route.remove' && e.instance === kill.instance);
    const ready = events.find(
      (e) => e.action === 'instance.ready' && e.instance !== null && e.instance !== kill.instance && slotOf(e.instance) === kill.slot && Date.parse(e.time) >= kill.wall,
    );
    const inTable = removed ? Date.parse(removed.time) - kill.wall : NaN;
    perKill.push({
      kill,
      inTable,
      dieToRemove: kill.die === undefined ? NaN : inTable - kill.die,
      replacementReady: ready ? Date.parse(ready.time) - kill.wall : NaN,
      failedWithin1s: orcaLoad.failedAt.filter((t) => t >= kill.at && t < kill.at + 1_000).length,
    });
  }
  await stopServer(server);

  // ---- nginx in front of Docker's --restart=always ------------------------------------------
  // Fresh containers for each variant: Docker's restart delay (100 ms doubling, reset after
  // 10 s up) would otherwise carry over from one variant to the next.
  const ports = await freePorts(2);
  const portReady = async (port: number) => (await httpStatus(`http://127.0.0.1:${port}/ready`, 500)) === 200;
  const bothUp = async () => ((await Promise.all(ports.map(portReady))).every(Boolean) ? true : undefined);
  const variants = [
    { name: 'nginx (default passive checks: max_fails=1 fail_timeout=10s)', suffix: '' },
    { name: 'nginx, max_fails=0 (never marks a server down)', suffix: ' max_fails=0' },
  ];
  for (const v of variants) {
    const ids: string[] = [];
    for (const port of ports) {
      const id = docker([
        'run', '-d', '--restart=always', '--init', '-p', `127.0.0.1:${port}:80`,
        '--label', `${LABEL.cluster}=${env.cluster}`, '--label', 'orca.bench=zero-loss', TEST_IMAGE, 'sh', '-c', CMD,
      ]);
      ids.push(id);
      dockerIds.push(id);
    }
    for (let i = 0; i < 200 && !(await bothUp()); i++) await sleep(systemClock, 50);
    if (!(await bothUp())) throw new Error('the docker containers do not answer');
    const nginx = await startNginx({
      servers: ports.map((p) => `127.0.0.1:${p}`),
      serverName: HOST,
      serverSuffix: v.suffix,
      locationExtra: '      proxy_next_upstream error timeout;',
    });
    nginxes.push(nginx);
    const wall0 = systemClock.now();
    const t0 = performance.now();
    const deadline = t0 + secs * 1000;
    const l = load(`127.0.0.1:${nginx.port}`, deadline);
    const kills = await killLoop(t0, deadline, bothUp, (slot) => ({ instance: `docker-${slot}`, containerId: ids[slot]! }));
    baselines.push({ name: v.name, load: await l.done, kills });
    await nginx.stop();
    noteDies(kills, env.cluster, wall0);
    for (const id of ids) docker(['rm', '-f', id]);
    dockerIds.splice(0, dockerIds.length, ...dockerIds.filter((x) => !ids.includes(x)));
  }
} finally {
  for (const n of nginxes) await n.stop();
  await stopServer(server);
  for (const id of dockerIds) spawnSync('docker', ['rm', '-f', id], { stdio: 'ignore' });
  await cleanup(env.cluster, env.dataDir);
}

// ---- report -----------------------------------------------------------------------------------
if (!orcaLoad) throw new Error('no Orca run');
out(`zero loss under kill -9: ${CLIENTS} sequential keep-alive GET loops for ${secs} s, one of 2 replicas killed every ${KILL_EVERY_MS / 1000} s (alternating, only when both ready)`);
out(`image ${TEST_IMAGE} (busybox httpd answering its hostname, a new connection per request behind any proxy), init on; Docker ${docker(['version', '-f', '{{.Server.Version}}'])}`);
const rate = (l: LoadResult) => (l.sent / (l.ms / 1000)).toFixed(0);
const row = (name: string, l: LoadResult, kills: Kill[]) => [name, String(kills.length), String(l.sent), rate(l), String(l.ok), String(l.failed), String(l.servedBy.size), breakdown(l.failures)];
report('requests (same run)', ['how', 'kills', 'sent', 'req/s', 'ok', 'failed', 'served by', 'failures'], [
  row('orca proxy (route reconciler, readiness 0.2 s)', orcaLoad, orcaKills),
  ...baselines.map((b) => row(`${b.name} → docker --restart=always ×2`, b.load, b.kills)),
]);
report(
  'orca, per kill: ms from the SIGKILL (wall clock) to each event (its own timestamp, same host clock)',
  ['kill', 'instance', 'kill late by (ready check) ms', '→ docker die', '→ route.remove (in the table)', 'die → route.remove', '→ replacement ready', 'failed ≤ 1 s after'],
  perKill.map((p, i) => [String(i + 1), p.kill.instance, p.kill.waitedMs, p.kill.die ?? NaN, p.inTable, p.dieToRemove, p.replacementReady, String(p.failedWithin1s)]),
);
const inTable = perKill.map((p) => p.inTable).filter(Number.isFinite);
const dies = perKill.map((p) => p.kill.die ?? NaN).filter(Number.isFinite);
out(`\norca, dead instance in the routing table, ms: ${series(perKill.map((p) => p.inTable))}  (p50 ${percentile(inTable, 50).toFixed(0)}, max ${Math.max(...inTable).toFixed(0)}; ${perKill.length - inTable.length} without a route.remove)`);
out(`  of which kill → Docker's die event (the daemon noticing, before Orca can): p50 ${percentile(dies, 50).toFixed(0)} ms; die → route.remove p50 ${percentile(perKill.map((p) => p.dieToRemove).filter(Number.isFinite), 50).toFixed(0)} ms`);
for (const b of baselines) {
  const d = b.kills.map((k) => k.die ?? NaN).filter(Number.isFinite);
  out(
    `${b.name}: ${b.kills.length} kills (late by, waiting for both to answer /ready, ms: ${series(b.kills.map((k) => k.waitedMs))}), kill → docker die p50 ${percentile(d, 50).toFixed(0)} ms; ` +
      `static upstream: the dead server never leaves its table, a failed attempt is retried on the other server (proxy_next_upstream error timeout)`,
  );
}
const met = orcaLoad.failed === 0 && inTable.length === perKill.length && inTable.every((t) => t <= 100);
out(
  `target: 0 failed, ≤ 100 ms in the table — orca ${orcaLoad.failed} failed, max ${inTable.length ? Math.max(...inTable).toFixed(0) : '-'} ms in the table ` +
    `(max ${perKill.length ? Math.max(...perKill.map((p) => p.dieToRemove)).toFixed(0) : '-'} ms after Docker's die event): ${met ? 'met' : 'NOT met'}; ` +
    `nginx: ${baselines.map((b) => `${b.load.failed} failed`).join(', ')}`,
);
out(`total ${((performance.now() - started) / 1000).toFixed(0)} s`);
