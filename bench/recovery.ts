/**
 * Recovery after `kill -9` of a container's main process (SPEC §3.1: "first replacement running
 * ≤ 1 s", and within 1.5× of Docker's own restart policy), beside Docker's `--restart=always`
 * measured in the same run.
 *
 * Per crash: SIGKILL to the container's main process by its host pid (what an operator's
 * `kill -9` does; with init on, that is docker-init) at t0, then
 *   t_running: until a container of the service is running again (Docker's `start` event as
 *              received here: for Orca a new container id, for Docker the same id);
 *   t_http:    until GET http://127.0.0.1:<its published port>/ answers 200 (polled every 10 ms).
 *
 * Orca: `orca server --watchdog-interval 30` (so healing comes from the event stream), a 1-replica
 * service with restart backoff_initial = backoff_max = reset_after = 0.05 s so the crash-loop
 * backoff does not dominate. Docker, two baselines on the same image, flags and spacing:
 *   same:  one `docker run --restart=always` container killed `crashes` times, like Orca's
 *          service (Docker's own backoff of 100 ms doubling, reset only after 10 s up, grows; the
 *          series stops when a restart takes longer than its time budget);
 *   fresh: a new `docker run --restart=always` container per crash, so each crash is its first
 *          failure, as each of Orca's is here (Docker's backoff at its floor, 100 ms).
 * Order: Orca's crashes, then the server is stopped, then Docker's (back-to-back, not
 * interleaved: a running server removes containers labelled with its cluster that it does not own).
 *
 *   node dist/bench/recovery.js [crashes=20]
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { sleep, systemClock } from '../core/clock.js';
import { DockerRuntime } from '../runtime/docker-runtime.js';
import { LABEL } from '../runtime/labels.js';
import type { RuntimeEvent } from '../runtime/types.js';
import { cleanup, orca, startServer, stopServer, testEnv, waitFor, type ServerProcess } from '../test/e2e/harness.js';
import { containerMainPid, docker, httpStatus, percentile, report, series } from './lib.js';

const crashes = Number(process.argv[2] ?? 20);
if (!Number.isInteger(crashes) || crashes < 1 || crashes > 100) {
  process.stderr.write('usage: node dist/bench/recovery.js [crashes=20]  (1..100)\n');
  process.exit(2);
}
const IMAGE = 'orca-example/web:1';
const SERVICE = 'rec';
/** Up-time before each kill (after the previous recovery answered HTTP). */
const SPACING_MS = 300;
/** A crash not recovered within this is recorded as a timeout. */
const CRASH_TIMEOUT_MS = 15_000;
/** Wall-time budget of Docker's same-container series (its backoff grows past any bound). */
const DOCKER_SAME_BUDGET_MS = 45_000;
const HTTP_POLL_MS = 10;
const HTTP_TIMEOUT_MS = 200;

/** One long-lived event stream; events kept with the time (performance.now) they arrived here. */
class EventTap {
  private seen: Array<{ at: number; ev: RuntimeEvent }> = [];
  private readonly wakers = new Set<() => void>();
  private readonly abort = new AbortController();
  private broken: unknown = undefined;

  constructor(rt: DockerRuntime, labels: Record<string, string>) {
    void this.pump(rt.events(labels, this.abort.signal));
  }

  private async pump(events: AsyncIterable<RuntimeEvent>): Promise<void> {
    try {
      for await (const ev of events) {
        this.seen.push({ at: performance.now(), ev });
        for (const w of [...this.wakers]) w();
      }
    } catch (err) {
      this.broken = err;
    }
    if (!this.abort.signal.aborted) this.broken ??= new Error('Docker event stream ended');
    for (const w of [...this.wakers]) w();
  }

  /** The first matching event that arrived at or after `since`; undefined at the deadline (performance.now ms). */
  async next(since: number, match: (e: RuntimeEvent) => boolean, deadline: number): Promise<{ at: number; ev: RuntimeEvent } | undefined> {
    this.seen = this.seen.filter((s) => s.at >= since - 60_000);
    for (;;) {
      const hit = this.seen.find((s) => s.at >= since && match(s.ev));
      if (hit) return hit;
      if (this.broken) throw this.broken;
      const left = deadline - performance.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const done = () => {
          this.wakers.delete(done);
          systemClock.clearTimeout(timer);
          resolve();
        };
        const timer = systemClock.setTimeout(done, left);
        this.wakers.add(done);
      });
    }
  }

  close(): void {
    this.abort.abort();
  }
}

interface Sample {
  /** ms from the kill to each point; NaN when it did not happen in time. */
  die: number;
  running: number;
  http: number;
  newId?: string;
}

const rt = new DockerRuntime();
const env = await testEnv('bench-recovery');
const tap = new EventTap(rt, { [LABEL.cluster]: env.cluster });
const dockerIds = new Set<string>();

/** performance.now() of the first 200 from the container's published port, NaN at the deadline. */
async function httpOkAt(id: string, deadline: number): Promise<number> {
  let port: number | null = null;
  while (port === null && performance.now() < deadline) {
    port = (await rt.inspect(id))?.hostPort ?? null;
    if (port === null) await sleep(systemClock, 5);
  }
  while (port !== null && performance.now() < deadline) {
    if ((await httpStatus(`http://127.0.0.1:${port}/`, HTTP_TIMEOUT_MS)) === 200) return performance.now();
    await sleep(systemClock, HTTP_POLL_MS);
  }
  return NaN;
}

/** Kills the main process of `target` and measures until `isReplacement`'s start and HTTP 200. */
async function crash(target: string, isReplacement: (e: RuntimeEvent) => boolean, timeoutMs: number): Promise<Sample> {
  const pid = containerMainPid(target);
  const t0 = performance.now();
  process.kill(pid, 'SIGKILL');
  const deadline = t0 + timeoutMs;
  const die = await tap.next(t0, (e) => e.kind === 'die' && e.containerId === target, deadline);
  const start = await tap.next(t0, (e) => e.kind === 'start' && isReplacement(e), deadline);
  if (!start) return { die: die ? die.at - t0 : NaN, running: NaN, http: NaN };
  const okAt = await httpOkAt(start.ev.containerId, deadline);
  return { die: die ? die.at - t0 : NaN, running: start.at - t0, http: okAt - t0, newId: start.ev.containerId };
}

/** The one running container of Orca's service (waits while a replacement settles). */
async function orcaCurrent(): Promise<string> {
  let id = '';
  await waitFor(
    async () => {
      const running = (await rt.list({ [LABEL.cluster]: env.cluster, [LABEL.service]: SERVICE })).filter((c) => c.status === 'running');
      id = running.length === 1 ? (running[0]?.id ?? '') : '';
      return id !== '';
    },
    10_000,
    `exactly one running container of ${SERVICE}`,
    20,
  );
  return id;
}

function dockerRun(kind: string): string {
  const id = docker([
    'run', '-d', '--restart=always', '--init', '-p', '127.0.0.1::80',
    '--label', `${LABEL.cluster}=${env.cluster}`, '--label', `orca.bench=${kind}`, IMAGE,
  ]);
  dockerIds.add(id);
  return id;
}

function dockerRemove(id: string): void {
  spawnSync('docker', ['rm', '-f', id], { stdio: 'ignore' });
  dockerIds.delete(id);
}

async function serving(id: string): Promise<void> {
  if (Number.isNaN(await httpOkAt(id, performance.now() + 10_000))) throw new Error(`container ${id.slice(0, 12)} does not answer HTTP`);
}

let server: ServerProcess | undefined;
const orcaS: Sample[] = [];
const sameS: Sample[] = [];
const freshS: Sample[] = [];
let sameNote = '';
const started = performance.now();
try {
  // ---- Orca -------------------------------------------------------------------------------
  server = await startServer({ ...env, extra: ['--watchdog-interval', '30'] });
  const manifest = join(env.dataDir, `${SERVICE}.toml`);
  await writeFile(
    manifest,
    `[[service]]\nname = "${SERVICE}"\nimage = "${IMAGE}"\nreplicas = 1\nport = 80\nstop_grace_secs = 1\n\n` +
      `[service.restart]\nbackoff_initial_secs = 0.05\nbackoff_max_secs = 0.05\nreset_after_secs = 0.05\n`,
  );
  const applied = await orca(['--api', server.api, '--data-dir', env.dataDir, 'apply', '-f', manifest]);
  if (applied.code !== 0) throw new Error(`orca apply failed: ${applied.stderr}`);
  await serving(await orcaCurrent());
  for (let i = 0; i < crashes; i++) {
    await sleep(systemClock, SPACING_MS);
    const current = await orcaCurrent();
    const s = await crash(current, (e) => e.containerId !== current && e.labels[LABEL.service] === SERVICE, CRASH_TIMEOUT_MS);
    orcaS.push(s);
    if (!s.newId || Number.isNaN(s.http)) throw new Error(`orca: crash ${i + 1} not recovered within ${CRASH_TIMEOUT_MS} ms\n${server.logs().slice(-4000)}`);
  }
  await stopServer(server);

  // ---- Docker, one container, same spacing ------------------------------------------------
  const same = dockerRun('docker');
  await serving(same);
  const budgetEnd = performance.now() + DOCKER_SAME_BUDGET_MS;
  for (let i = 0; i < crashes; i++) {
    await sleep(systemClock, SPACING_MS);
    const left = budgetEnd - performance.now();
    if (left <= 1_000) {
      sameNote = `stopped before crash ${i + 1}: its ${DOCKER_SAME_BUDGET_MS / 1000} s budget is spent`;
      break;
    }
    const s = await crash(same, (e) => e.containerId === same, Math.min(CRASH_TIMEOUT_MS, left));
    sameS.push(s);
    if (!s.newId || Number.isNaN(s.http)) {
      sameNote = `crash ${i + 1}: no restart within ${(Math.min(CRASH_TIMEOUT_MS, left) / 1000).toFixed(1)} s (Docker's backoff); series stopped`;
      break;
    }
  }
  dockerRemove(same);

  // ---- Docker, a fresh container per crash ------------------------------------------------
  for (let i = 0; i < crashes; i++) {
    const id = dockerRun('docker-fresh');
    await serving(id);
    await sleep(systemClock, SPACING_MS);
    freshS.push(await crash(id, (e) => e.containerId === id, CRASH_TIMEOUT_MS));
    dockerRemove(id);
  }
} finally {
  tap.close();
  await stopServer(server);
  for (const id of [...dockerIds]) dockerRemove(id);
  await cleanup(env.cluster, env.dataDir);
}

// ---- report ---------------------------------------------------------------------------------
const done = (l: Sample[], k: 'die' | 'running' | 'http') => l.map((s) => s[k]).filter((v) => Number.isFinite(v));
const row = (name: string, l: Sample[]) => {
  const r = done(l, 'running');
  const h = done(l, 'http');
  return [name, `${r.length}/${l.length}`, percentile(done(l, 'die'), 50), percentile(r, 50), percentile(r, 95), percentile(h, 50), percentile(h, 95)];
};
const out = (s: string) => process.stdout.write(`${s}\n`);
out(`recovery after kill -9 of a container's main process (${IMAGE}, init on, Docker ${docker(['version', '-f', '{{.Server.Version}}'])})`);
out(`orca: --watchdog-interval 30 (healing from Docker events); restart backoff_initial = backoff_max = reset_after = 0.05 s,`);
out(`  so the crash-loop backoff does not dominate: each kill comes after ≥ ${SPACING_MS} ms up, so each is a first failure.`);
out(`docker: same flags (--init, -p 127.0.0.1::80) with --restart=always; its backoff is 100 ms doubling, reset after 10 s up.`);
out(`order: ${crashes} Orca crashes, then the server stopped, then Docker's (back-to-back, not interleaved); ${SPACING_MS} ms up before every kill.`);
out(`\nper crash, t_running ms:`);
out(`  orca          ${series(orcaS.map((s) => s.running))}`);
out(`  docker same   ${series(sameS.map((s) => s.running))}${sameNote ? `  (${sameNote})` : ''}`);
out(`  docker fresh  ${series(freshS.map((s) => s.running))}`);
out(`per crash, t_http ms:`);
out(`  orca          ${series(orcaS.map((s) => s.http))}`);
out(`  docker same   ${series(sameS.map((s) => s.http))}`);
out(`  docker fresh  ${series(freshS.map((s) => s.http))}`);
report(`kill -9 → recovered, ms from the kill (same run)`, ['how', 'recovered', 'die p50', 'running p50', 'running p95', 'http p50', 'http p95'], [
  row('orca (new container per crash)', orcaS),
  row('docker --restart=always, same container', sameS),
  row('docker --restart=always, fresh container', freshS),
]);
const p = (l: Sample[], k: 'running' | 'http', q: number) => percentile(done(l, k), q);
const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : '-');
for (const [name, base] of [['docker fresh (first failure each, like-for-like)', freshS], ['docker same (its backoff grown)', sameS]] as const) {
  out(
    `orca / ${name}: running p50 ${ratio(p(orcaS, 'running', 50), p(base, 'running', 50))}, p95 ${ratio(p(orcaS, 'running', 95), p(base, 'running', 95))}; ` +
      `http p50 ${ratio(p(orcaS, 'http', 50), p(base, 'http', 50))}, p95 ${ratio(p(orcaS, 'http', 95), p(base, 'http', 95))}`,
  );
}
const p50 = p(orcaS, 'running', 50);
const fresh50 = p(freshS, 'running', 50);
const met = p50 <= 1000 && p50 <= 1.5 * fresh50;
out(`target: p50 ≤ 1 s and within 1.5× of Docker's own — orca running p50 ${p50.toFixed(0)} ms, ${ratio(p50, fresh50)} docker fresh: ${met ? 'met' : 'NOT met'}`);
out(`total ${((performance.now() - started) / 1000).toFixed(0)} s`);
