/**
 * A database healed with its data (issue on stateful services): time from `kill -9` of the
 * database's main process to the web service answering with the right count again, beside
 * Docker's `--restart=always` on the same database container with a named volume, same run.
 *
 * The pair is examples/counter.toml's: `orca-example/redis:7` (Debian's redis-server,
 * append-only file with fsync on every write, on a volume) and `orca-example/counter:1` (busybox
 * httpd CGI that INCRs `hits` in `redis:6379` by name on a user-defined network). Per crash:
 * `writes` hits through the counter's published port (each answer is an acknowledged write),
 * SIGKILL to the database's main process by its host pid at t0, then GET /cgi-bin/count every
 * 20 ms until it answers `hits <every acknowledged write>`: t_right. A count below that would
 * be a lost write and is reported as such.
 *
 * Orca: `orca server --watchdog-interval 30` (healing from Docker events), redis with
 * `volumes = { data = "/data" }` and restart backoff_initial = backoff_max = 0.2 s. Docker: a
 * network with the alias `redis`, a named volume, `docker run --restart=always --init`; its
 * backoff is 100 ms doubling, reset after 10 s up, so the crashes are spaced `spacing` seconds
 * (default 11) for both, and every crash is a first failure for both.
 *
 *   node dist/bench/stateful.js [crashes=5] [spacing-secs=11] [writes=20]
 */
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sleep, systemClock } from '../core/clock.js';
import { DockerRuntime } from '../runtime/docker-runtime.js';
import { LABEL } from '../runtime/labels.js';
import { buildExampleImages } from '../examples/images.js';
import { EXAMPLE_COUNTER, EXAMPLE_REDIS } from '../examples/counter-images.js';
import { cleanup, orca, startServer, stopServer, testEnv, waitFor, type ServerProcess } from '../test/e2e/harness.js';
import { containerMainPid, docker, percentile, report, series } from './lib.js';

const crashes = Number(process.argv[2] ?? 5);
const spacingMs = Number(process.argv[3] ?? 11) * 1000;
const writes = Number(process.argv[4] ?? 20);
if (!Number.isInteger(crashes) || crashes < 1 || crashes > 50 || !(spacingMs >= 0 && spacingMs <= 120_000) || !Number.isInteger(writes) || writes < 1 || writes > 1000) {
  process.stderr.write('usage: node dist/bench/stateful.js [crashes=5 (1..50)] [spacing-secs=11 (0..120)] [writes=20 (1..1000)]\n');
  process.exit(2);
}
const POLL_MS = 20;
const CRASH_TIMEOUT_MS = 30_000;

interface Sample {
  /** ms from the kill to the right count; NaN when it did not come in time. */
  right: number;
  /** Acknowledged writes the database no longer had (should be 0). */
  lost: number;
}

/** GET with a short timeout: the body, or undefined on any failure. */
async function get(url: string, timeoutMs = 1000): Promise<{ status: number; body: string } | undefined> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return { status: r.status, body: await r.text() };
  } catch {
    return undefined;
  }
}

const hitsOf = (body: string | undefined) => {
  const m = /^hits (\d+)/.exec(body ?? '');
  return m ? Number(m[1]) : undefined;
};

/** Writes `n` hits through the counter at `base`; returns the last acknowledged count. */
async function write(base: string, n: number): Promise<number> {
  let last = 0;
  for (let i = 0; i < n; i++) {
    const r = await get(`${base}/cgi-bin/hit`);
    const h = r?.status === 200 ? hitsOf(r.body) : undefined;
    if (h === undefined) throw new Error(`write ${i + 1} through ${base} failed: ${r ? `${r.status} ${r.body.trim()}` : 'no answer'}`);
    last = h;
  }
  return last;
}

/** Kills the database's main process and measures until the count is right again. */
async function crash(base: string, redisId: string): Promise<Sample> {
  const acked = await write(base, writes);
  const t0 = performance.now();
  process.kill(containerMainPid(redisId), 'SIGKILL');
  // The old count can still be read before the kill lands: wait for the database to go first.
  await waitFor(async () => (await get(`${base}/cgi-bin/count`, 500))?.status !== 200, 5_000, 'the database to go', 5).catch(() => undefined);
  let seen: number | undefined;
  while (performance.now() - t0 < CRASH_TIMEOUT_MS) {
    seen = hitsOf((await get(`${base}/cgi-bin/count`, 1000))?.body);
    if (seen !== undefined) return { right: seen >= acked ? performance.now() - t0 : NaN, lost: Math.max(0, acked - seen) };
    await sleep(systemClock, POLL_MS);
  }
  return { right: NaN, lost: 0 };
}

const rt = new DockerRuntime();
await buildExampleImages(rt);
const env = await testEnv('bench-stateful');
const dockerNames: string[] = [];
let server: ServerProcess | undefined;
const orcaS: Sample[] = [];
const dockerS: Sample[] = [];
try {
  // ---- Orca -------------------------------------------------------------------------------
  server = await startServer({ ...env, extra: ['--watchdog-interval', '30'] });
  const manifest = join(env.dataDir, 'counter.toml');
  await writeFile(
    manifest,
    `[[service]]\nname = "redis"\nimage = "${EXAMPLE_REDIS}"\nport = 6379\nstop_grace_secs = 2\nvolumes = { data = "/data" }\n\n` +
      `[service.restart]\nbackoff_initial_secs = 0.2\nbackoff_max_secs = 0.2\nreset_after_secs = 1\n\n` +
      `[[service]]\nname = "counter"\nimage = "${EXAMPLE_COUNTER}"\nport = 80\nstop_grace_secs = 1\n`,
  );
  const run = (args: string[]) => orca(['--api', server!.api, '--data-dir', env.dataDir, ...args]);
  const applied = await run(['apply', '-f', manifest, '--wait', '--timeout', '60']);
  if (applied.code !== 0) throw new Error(`orca apply failed: ${applied.stderr}`);
  const status = JSON.parse((await run(['status', 'counter', '-o', 'json'])).stdout) as { services: Array<{ instances: Array<{ address: string }> }> };
  const counterBase = `http://${status.services[0]!.instances[0]!.address}`;
  const redisNow = async () => {
    let id = '';
    await waitFor(async () => {
      const running = (await rt.list({ [LABEL.cluster]: env.cluster, [LABEL.service]: 'redis' })).filter((c) => c.status === 'running');
      id = running.length === 1 ? running[0]!.id : '';
      return id !== '';
    }, 15_000, 'one running redis');
    return id;
  };
  for (let i = 0; i < crashes; i++) {
    const s = await crash(counterBase, await redisNow());
    orcaS.push(s);
    if (Number.isNaN(s.right)) throw new Error(`orca: crash ${i + 1}: count not right within ${CRASH_TIMEOUT_MS} ms (lost ${s.lost})\n${server.logs().slice(-3000)}`);
    await sleep(systemClock, spacingMs);
  }
  await stopServer(server);
  server = undefined;

  // ---- Docker: --restart=always with a named volume ---------------------------------------
  const net = `${env.cluster}-docker`;
  const vol = `${env.cluster}-docker-data`;
  docker(['network', 'create', '--label', `${LABEL.cluster}=${env.cluster}`, net]);
  docker(['volume', 'create', '--label', `${LABEL.cluster}=${env.cluster}`, vol]);
  const redisName = `${env.cluster}-redis`;
  const counterName = `${env.cluster}-counter`;
  dockerNames.push(redisName, counterName);
  docker(['run', '-d', '--name', redisName, '--restart=always', '--init', '--network', net, '--network-alias', 'redis', '-v', `${vol}:/data`, '--label', `${LABEL.cluster}=${env.cluster}`, EXAMPLE_REDIS]);
  docker(['run', '-d', '--name', counterName, '--restart=always', '--init', '--network', net, '-p', '127.0.0.1::80', '--label', `${LABEL.cluster}=${env.cluster}`, EXAMPLE_COUNTER]);
  const port = docker(['port', counterName, '80/tcp']).split('\n')[0]!.split(':').pop();
  const dockerBase = `http://127.0.0.1:${port}`;
  await waitFor(async () => hitsOf((await get(`${dockerBase}/cgi-bin/count`))?.body) !== undefined, 15_000, 'the docker pair to answer');
  for (let i = 0; i < crashes; i++) {
    const s = await crash(dockerBase, docker(['inspect', '-f', '{{.Id}}', redisName]));
    dockerS.push(s);
    if (Number.isNaN(s.right)) break;
    await sleep(systemClock, spacingMs);
  }
} finally {
  await stopServer(server);
  for (const n of dockerNames) spawnSync('docker', ['rm', '-f', n], { stdio: 'ignore' });
  spawnSync('docker', ['network', 'rm', `${env.cluster}-docker`], { stdio: 'ignore' });
  for (const v of docker(['volume', 'ls', '-q', '--filter', `label=${LABEL.cluster}=${env.cluster}`]).split('\n').filter(Boolean)) {
    spawnSync('docker', ['volume', 'rm', '-f', v], { stdio: 'ignore' });
  }
  await cleanup(env.cluster, env.dataDir);
  for (const v of docker(['volume', 'ls', '-q', '--filter', `label=${LABEL.cluster}=${env.cluster}`]).split('\n').filter(Boolean)) {
    spawnSync('docker', ['volume', 'rm', '-f', v], { stdio: 'ignore' });
  }
}

// ---- report ---------------------------------------------------------------------------------
const ok = (l: Sample[]) => l.map((s) => s.right).filter((v) => Number.isFinite(v));
const row = (name: string, l: Sample[]) => [name, `${ok(l).length}/${l.length}`, l.reduce((a, s) => a + s.lost, 0), percentile(ok(l), 50), percentile(ok(l), 95)];
const out = (s: string) => process.stdout.write(`${s}\n`);
out(`kill -9 of the database → the web service answers with every acknowledged write (redis-server ${EXAMPLE_REDIS}, appendfsync always)`);
out(`${writes} acknowledged writes before each of ${crashes} kills, ${spacingMs / 1000} s between kills (Docker's backoff resets after 10 s up)`);
out(`\nper crash, ms from the kill to the right count:`);
out(`  orca    ${series(orcaS.map((s) => s.right))}`);
out(`  docker  ${series(dockerS.map((s) => s.right))}`);
report('kill -9 of the database → right count again (same run)', ['how', 'recovered', 'lost writes', 'p50 ms', 'p95 ms'], [
  row('orca (new container, same volume)', orcaS),
  row('docker --restart=always, named volume', dockerS),
]);
const ratio = percentile(ok(orcaS), 50) / percentile(ok(dockerS), 50);
out(`orca / docker at p50: ${Number.isFinite(ratio) ? ratio.toFixed(2) : 'n/a'}×`);
