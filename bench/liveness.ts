/**
 * Liveness (SPEC §3.1: "liveness probe fails failure_threshold times in a row → restart (new
 * container); target interval × threshold + start time"), beside Docker's own HEALTHCHECK with
 * the same probe, interval, timeout and retries in the same run.
 *
 * Orca: `orca server`, a 1-replica service of orca-example/web:1 with readiness GET /ready every
 * 0.2 s and liveness GET /healthz every 0.5 s, timeout 0.3 s, failure_threshold 3
 * (restart reset_after 1 s: each run waits ≥ 1 s after ready, so every failure is a first
 * failure and the replacement is not held back by the crash-loop backoff). RUNS times:
 * wait until one instance is ready, then at t0 start `docker exec <id> rm /www/healthz`, and
 * measure from t0 to
 *   (a) the first failing liveness probe: the time of the agent's "probe failed" debug line for
 *       that instance with failures = 1 (the probe's result, not an estimate);
 *   (b) the `instance.liveness-failed` event (its `time` in `orca events -o json`);
 *   (c) the replacement ready: its `instance.ready` event (and, as polled, `orca status` showing
 *       an instance with another id ready).
 * t0 is taken when `docker exec` is started, so each figure includes up to the exec's duration
 * (shown) before the file was really gone.
 *
 * Docker: `docker run --restart=always --init` of the same image with `--health-cmd "wget -q -O
 * /dev/null http://127.0.0.1/healthz"` and the same interval/timeout/retries, the same removal,
 * measured to its first failing check (its Health.Log) and to `health_status: unhealthy` (its
 * event). Docker only marks the container unhealthy; neither the health check nor
 * --restart=always restarts it: that is waited for up to NEVER_BOUND_MS and shown as "never".
 * Orca first, then its server is stopped, then Docker's runs.
 *
 *   node dist/bench/liveness.js [runs=5]
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { sleep, systemClock } from '../core/clock.js';
import { DockerRuntime } from '../runtime/docker-runtime.js';
import { LABEL } from '../runtime/labels.js';
import { buildExampleImages } from '../examples/images.js';
import { cleanup, cli, startServer, stopServer, testEnv, waitFor, type ServerProcess } from '../test/e2e/harness.js';
import { docker, parseEvents, percentile, report } from './lib.js';

const runs = Number(process.argv[2] ?? 5);
if (!Number.isInteger(runs) || runs < 1 || runs > 20) {
  process.stderr.write('usage: node dist/bench/liveness.js [runs=5]  (1..20)\n');
  process.exit(2);
}
const SERVICE = 'live';
const IMAGE = 'orca-example/web:1';
const INTERVAL_S = 0.5;
const THRESHOLD = 3;
const TIMEOUT_S = 0.3;
const CONFIGURED_MS = INTERVAL_S * THRESHOLD * 1000;
const NEVER_BOUND_MS = 10_000;
const RUN_TIMEOUT_MS = 20_000;
const execFileP = promisify(execFile);

interface OrcaRun {
  old: string;
  fresh: string;
  execMs: number;
  firstFail: number;
  livenessFailed: number;
  readyEvent: number;
  readyPolled: number;
}

interface DockerRun {
  execMs: number;
  firstFail: number;
  unhealthy: number;
  restarted: string;
}

interface Instance {
  id: string;
  state: string;
  ready: boolean;
  containerId: string | null;
}

/** `docker exec ID rm FILE` started at the returned wall time; resolves with how long it took. */
async function removeFile(containerId: string, file: string): Promise<{ t0: number; execMs: number }> {
  const t0 = systemClock.now();
  const p0 = performance.now();
  await execFileP('docker', ['exec', containerId, 'rm', file]);
  return { t0, execMs: performance.now() - p0 };
}

/** Time of the agent's first failing liveness probe of an instance (failures = 1) after t0, from the server's debug log. */
function firstFailingProbe(logs: string, instance: string, t0: number): number {
  for (const line of logs.split('\n')) {
    if (!line.includes('"probe failed"') || !line.includes(instance)) continue;
    try {
      const l = JSON.parse(line) as { time?: string; probe?: string; instance?: string; failures?: number };
      if (l.probe === 'liveness' && l.instance === instance && l.failures === 1 && l.time && Date.parse(l.time) >= t0 - 50) return Date.parse(l.time);
    } catch {
      /* not a JSON line */
    }
  }
  return NaN;
}

await buildExampleImages(new DockerRuntime());
const env = await testEnv('bench-liveness');
let server: ServerProcess | undefined;
const dockerIds: string[] = [];
const orcaRuns: OrcaRun[] = [];
const dockerRuns: DockerRun[] = [];
const started = performance.now();
try {
  // ---- Orca ---------------------------------------------------------------------------------
  // Debug level: the agent's "probe failed" lines carry the time of each failing probe.
  server = await startServer({ ...env, env: { ORCA_LOG_LEVEL: 'debug' } });
  const run = cli(server, env.dataDir);
  const manifest = join(env.dataDir, `${SERVICE}.toml`);
  await writeFile(
    manifest,
    `[[service]]
name = "${SERVICE}"
image = "${IMAGE}"
replicas = 1
port = 80
stop_grace_secs = 1

[service.readiness]
path = "/ready"
interval_secs = 0.2
timeout_secs = 0.5
failure_threshold = 1
initial_delay_secs = 0

[service.liveness]
path = "/healthz"
interval_secs = ${INTERVAL_S}
timeout_secs = ${TIMEOUT_S}
failure_threshold = ${THRESHOLD}
initial_delay_secs = 0

[service.restart]
reset_after_secs = 1
`,
  );
  const applied = await run(['apply', '-f', manifest, '--wait', '--timeout', '60']);
  if (applied.code !== 0) throw new Error(`orca apply failed: ${applied.stderr}`);
  const instances = async (): Promise<Instance[]> => {
    const r = await run(['status', SERVICE, '-o', 'json']);
    if (r.code !== 0) throw new Error(r.stderr);
    return (JSON.parse(r.stdout) as { services: Array<{ instances: Instance[] }> }).services[0]?.instances ?? [];
  };
  let current: Instance | undefined;
  await waitFor(async () => (current = (await instances()).find((i) => i.ready && i.state === 'running' && i.containerId)) !== undefined, 30_000, 'first instance ready', 50);
  for (let i = 0; i < runs; i++) {
    const old = current!;
    // Up ≥ reset_after (1 s) so this failure is a first failure.
    await sleep(systemClock, 1_200);
    const { t0, execMs } = await removeFile(old.containerId!, '/www/healthz');
    let fresh: Instance | undefined;
    await waitFor(
      async () => (fresh = (await instances()).find((x) => x.id !== old.id && x.ready && x.state === 'running' && x.containerId)) !== undefined,
      RUN_TIMEOUT_MS,
      `run ${i + 1}: a ready replacement of ${old.id}\n${server.logs().slice(-3000)}`,
      50,
    );
    const readyPolled = systemClock.now() - t0;
    const events = parseEvents((await run(['events', '--service', SERVICE, '-o', 'json'])).stdout);
    const at = (action: string, instance: string) => {
      const e = events.find((x) => x.action === action && x.instance === instance && Date.parse(x.time) >= t0 - 50);
      return e ? Date.parse(e.time) - t0 : NaN;
    };
    orcaRuns.push({
      old: old.id,
      fresh: fresh!.id,
      execMs,
      firstFail: firstFailingProbe(server.logs(), old.id, t0) - t0,
      livenessFailed: at('instance.liveness-failed', old.id),
      readyEvent: at('instance.ready', fresh!.id),
      readyPolled,
    });
    current = fresh;
  }
  await stopServer(server);

  // ---- Docker's HEALTHCHECK -----------------------------------------------------------------
  for (let i = 0; i < runs; i++) {
    const id = docker([
      'run', '-d', '--restart=always', '--init', '-p', '127.0.0.1::80',
      '--label', `${LABEL.cluster}=${env.cluster}`, '--label', 'orca.bench=liveness',
      '--health-cmd', 'wget -q -O /dev/null http://127.0.0.1:80/healthz', '--health-interval', `${INTERVAL_S}s`,
      '--health-timeout', `${TIMEOUT_S}s`, '--health-retries', String(THRESHOLD), '--health-start-period', '0s', IMAGE,
    ]);
    dockerIds.push(id);
    const health = () => docker(['inspect', '-f', '{{.State.Health.Status}}', id]);
    await waitFor(() => health() === 'healthy', 30_000, 'docker container healthy', 50);
    await sleep(systemClock, 1_200);
    const startedAt = docker(['inspect', '-f', '{{.State.StartedAt}} {{.RestartCount}}', id]);
    const { t0, execMs } = await removeFile(id, '/www/healthz');
    let firstFail = NaN;
    let unhealthyPolled = NaN;
    while (systemClock.now() - t0 < RUN_TIMEOUT_MS) {
      if (health() === 'unhealthy') {
        unhealthyPolled = systemClock.now() - t0;
        const log = JSON.parse(docker(['inspect', '-f', '{{json .State.Health.Log}}', id])) as Array<{ Start: string; ExitCode: number }>;
        const first = log.find((l) => l.ExitCode !== 0 && Date.parse(l.Start) >= t0 - 50);
        if (first) firstFail = Date.parse(first.Start) - t0;
        break;
      }
      await sleep(systemClock, 50);
    }
    // Docker's own timestamp of the health_status: unhealthy event.
    const ev = docker([
      'events', '--since', ((t0 - 1000) / 1000).toFixed(3), '--until', (systemClock.now() / 1000).toFixed(3),
      '--filter', `container=${id}`, '--filter', 'event=health_status', '--format', '{{.Status}} {{.TimeNano}}',
    ]);
    const line = ev.split('\n').find((l) => l.includes('unhealthy'));
    const unhealthy = line ? Number(BigInt(line.split(' ').at(-1) ?? '0') / 1000n) / 1000 - t0 : unhealthyPolled;
    let restarted = 'never';
    while (systemClock.now() - t0 < NEVER_BOUND_MS) {
      if (docker(['inspect', '-f', '{{.State.StartedAt}} {{.RestartCount}}', id]) !== startedAt) {
        restarted = `${systemClock.now() - t0} ms`;
        break;
      }
      await sleep(systemClock, 100);
    }
    if (restarted === 'never') restarted = `never (within ${NEVER_BOUND_MS / 1000} s; still ${health()})`;
    dockerRuns.push({ execMs, firstFail, unhealthy, restarted });
    docker(['rm', '-f', id]);
  }
} finally {
  await stopServer(server);
  for (const id of dockerIds) spawnQuiet(['rm', '-f', id]);
  await cleanup(env.cluster, env.dataDir);
}

function spawnQuiet(args: string[]): void {
  try {
    docker(args);
  } catch {
    /* already gone */
  }
}

// ---- report -----------------------------------------------------------------------------------
const out = (s: string) => process.stdout.write(`${s}\n`);
out(`liveness: GET /healthz every ${INTERVAL_S} s, timeout ${TIMEOUT_S} s, failure_threshold ${THRESHOLD} (interval × threshold = ${(CONFIGURED_MS / 1000).toFixed(1)} s); ${IMAGE}; /www/healthz removed at t0`);
out(`times are ms from t0 (when \`docker exec rm\` was started; its duration is shown), each from its own timestamp on this host's clock`);
report(
  'orca, per run',
  ['run', 'old → new instance', 'exec ms', '(a) first failing probe', '(b) liveness-failed event', '(c) replacement ready (event)', '(c) ready (status polled)'],
  orcaRuns.map((r, i) => [String(i + 1), `${r.old} → ${r.fresh}`, r.execMs, r.firstFail, r.livenessFailed, r.readyEvent, r.readyPolled]),
);
report(
  `docker HEALTHCHECK (same probe via wget, --health-interval ${INTERVAL_S}s --health-timeout ${TIMEOUT_S}s --health-retries ${THRESHOLD}) + --restart=always, per run`,
  ['run', 'exec ms', '(a) first failing check', '(b) health_status: unhealthy', '(c) restarted'],
  dockerRuns.map((r, i) => [String(i + 1), r.execMs, r.firstFail, r.unhealthy, r.restarted]),
);
const p50 = (l: number[]) => percentile(l.filter(Number.isFinite), 50);
report(`p50, ms (${runs} runs each, same run), beside the configured interval × threshold = ${CONFIGURED_MS} ms`, ['how', '(a) first failure', '(b) declared failed', '(b) − (a)', '(c) replaced and ready'], [
  ['orca', p50(orcaRuns.map((r) => r.firstFail)), p50(orcaRuns.map((r) => r.livenessFailed)), p50(orcaRuns.map((r) => r.livenessFailed - r.firstFail)), p50(orcaRuns.map((r) => r.readyEvent))],
  ['docker HEALTHCHECK', p50(dockerRuns.map((r) => r.firstFail)), p50(dockerRuns.map((r) => r.unhealthy)), p50(dockerRuns.map((r) => r.unhealthy - r.firstFail)), 'never'],
]);
const oFail = p50(orcaRuns.map((r) => r.livenessFailed));
const oReady = p50(orcaRuns.map((r) => r.readyEvent));
out(`\n(b) − (a) is the threshold at work: ${THRESHOLD - 1} more intervals = ${((THRESHOLD - 1) * INTERVAL_S * 1000).toFixed(0)} ms expected; (a) is up to one interval (${INTERVAL_S * 1000} ms) after t0 by phase.`);
out(`Docker detects as fast (same interval and retries) but only marks the container unhealthy: --restart=always acts on exits only, so it is never replaced (bounded wait ${NEVER_BOUND_MS / 1000} s). Orca replaces it.`);
// The file is gone at most `exec ms` after t0; the first failing probe starts within one interval
// of that, the threshold-th one (threshold − 1) intervals later and ends within its timeout.
const bound = (r: OrcaRun) => r.execMs + CONFIGURED_MS + TIMEOUT_S * 1000;
const within = orcaRuns.filter((r) => r.livenessFailed <= bound(r)).length;
out(
  `target: interval × threshold + start time — orca declared failed at p50 ${oFail.toFixed(0)} ms; ${within}/${orcaRuns.length} runs within exec + interval × threshold + one probe timeout ` +
    `(${(CONFIGURED_MS + TIMEOUT_S * 1000).toFixed(0)} ms + exec): ${within === orcaRuns.length ? 'met' : 'NOT met'}; ` +
    `replacement ready at p50 ${oReady.toFixed(0)} ms, start time ${(p50(orcaRuns.map((r) => r.readyEvent - r.livenessFailed))).toFixed(0)} ms p50 after the failure; docker: never replaced`,
);
out(`total ${((performance.now() - started) / 1000).toFixed(0)} s`);
