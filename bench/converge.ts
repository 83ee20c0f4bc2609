/**
 * Convergence: `orca apply` of N one-replica services → all ready, beside `docker run -d` ×N of the
 * same image at concurrency C, in interleaved rounds of the same run.
 *
 *   node dist/bench/converge.js [--rounds 4] [--services 40] [--concurrency 8] [--no-tap]
 *                               [--baseline-network user|bridge]
 *
 * What each figure measures (t0: just before the first command):
 *   orca answering: every service's container answers GET / on its published port with 200 (seen
 *                   from here: Docker's start event, one inspect for the port, GETs every 20 ms);
 *   orca ready:     then `GET /v1/status` (polled every 50 ms from there on) says every service
 *                   has its replica ready — Orca's own readiness (an implicit TCP check of the
 *                   port), which is what `orca status` shows; this is Orca's figure;
 *   docker:         `docker run -d --init -p 127.0.0.1::80` ×N, C at a time, until every container
 *                   answers GET / with 200 (the same watcher as "orca answering").
 * The baseline's containers are on a user-defined bridge network made for the bench (as Orca's
 * are on the cluster network: joining one costs Docker more than the default bridge), unless
 * --baseline-network bridge. Both networks exist before the first round (a warm-up apply makes
 * Orca's), so neither round pays for making one.
 *
 * The breakdown: the server's Docker socket is a relay that counts API calls by kind and their
 * time to the response head (bench/docker-tap.ts), from t0 until every container answers (before
 * the status polls, which inspect). The docker CLI of the baseline goes through the same relay.
 */
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { sleep, systemClock } from '../core/clock.js';
import { DockerRuntime } from '../runtime/docker-runtime.js';
import { LABEL } from '../runtime/labels.js';
import { buildExampleImages, EXAMPLE_WEB_V1 } from '../examples/images.js';
import { cleanup, orca, startServer, stopServer, testEnv, waitFor, type ServerProcess } from '../test/e2e/harness.js';
import { DockerTap, callName, type CallStats } from './docker-tap.js';
import { docker, httpStatus, median, report, series } from './lib.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : fallback;
}
const rounds = Number(arg('rounds', '4'));
const services = Number(arg('services', '40'));
const concurrency = Number(arg('concurrency', '8'));
const useTap = !process.argv.includes('--no-tap');
const baselineNet = arg('baseline-network', 'user');
if (![rounds, services, concurrency].every((n) => Number.isInteger(n) && n >= 1 && n <= 500) || !['user', 'bridge'].includes(baselineNet)) {
  process.stderr.write('usage: node dist/bench/converge.js [--rounds 4] [--services 40] [--concurrency 8] [--no-tap] [--baseline-network user|bridge]\n');
  process.exit(2);
}
const ROUND_TIMEOUT_MS = 120_000;

const rt = new DockerRuntime();
await buildExampleImages(rt);
const env = await testEnv('bench-converge');
const tap = useTap ? new DockerTap(join(env.dataDir, 'docker-tap.sock')) : null;
await tap?.up();
const benchId = randomBytes(4).toString('hex');
const netName = `orca-bench-converge-${benchId}`;
if (baselineNet === 'user') docker(['network', 'create', '--label', `orca.bench=${benchId}`, netName]);

let server: ServerProcess | undefined;
const base = () => ['--api', (server as ServerProcess).api, '--data-dir', env.dataDir];

/**
 * Watches start events of containers with these labels from now; resolves (ms since t0) once
 * `count` of them answer GET / with 200 on their published port 80.
 */
function whenAnswering(labels: Record<string, string>, count: number, t0: number): { done: Promise<number>; stop: () => void } {
  const abort = new AbortController();
  const events = rt.events(labels, abort.signal);
  const answering = new Set<string>();
  const seen = new Set<string>();
  const done = new Promise<number>((resolve, reject) => {
    const timer = systemClock.setTimeout(() => reject(new Error(`only ${answering.size}/${count} answering after ${ROUND_TIMEOUT_MS} ms`)), ROUND_TIMEOUT_MS);
    const watch = async (id: string) => {
      const c = await rt.inspect(id);
      const port = c?.ports['80'];
      if (!port) return;
      while (!abort.signal.aborted) {
        if ((await httpStatus(`http://127.0.0.1:${port}/`, 500)) === 200) {
          answering.add(id);
          if (answering.size >= count) {
            systemClock.clearTimeout(timer);
            resolve(performance.now() - t0);
          }
          return;
        }
        await sleep(systemClock, 20);
      }
    };
    void (async () => {
      try {
        for await (const e of events) {
          if (e.kind !== 'start' || seen.has(e.containerId)) continue;
          seen.add(e.containerId);
          void watch(e.containerId).catch(() => undefined);
        }
      } catch (err) {
        if (!abort.signal.aborted) reject(err as Error);
      }
    })();
  });
  return { done, stop: () => abort.abort() };
}

async function token(): Promise<string> {
  return (await readFile(join(env.dataDir, 'cluster.token'), 'utf8')).trim();
}

/** Polls /v1/status until every one of `names` has its replicas ready. */
async function whenReady(names: string[]): Promise<void> {
  const auth = { authorization: `Bearer ${await token()}` };
  const want = new Set(names);
  await waitFor(
    async () => {
      const res = await fetch(`${(server as ServerProcess).api}/v1/status`, { headers: auth });
      if (res.status !== 200) return false;
      const body = (await res.json()) as { services: Array<{ name: string; replicas: { desired: number; ready: number } }> };
      const ready = body.services.filter((s) => want.has(s.name) && s.replicas.ready >= s.replicas.desired && s.replicas.desired > 0);
      return ready.length === want.size;
    },
    ROUND_TIMEOUT_MS,
    'all services ready',
    50,
  );
}

function manifest(names: string[]): string {
  return names.map((n) => `[[service]]\nname = "${n}"\nimage = "${EXAMPLE_WEB_V1}"\nreplicas = 1\nport = 80\nstop_grace_secs = 1\n`).join('\n');
}

async function orcaRound(round: number): Promise<{ answerMs: number; readyMs: number; calls: Map<string, CallStats> | null }> {
  const names = Array.from({ length: services }, (_, i) => `c${round}-${i}`);
  const file = join(env.dataDir, `round${round}.toml`);
  await writeFile(file, manifest(names));
  tap?.take();
  const t0 = performance.now();
  const w = whenAnswering({ [LABEL.cluster]: env.cluster }, services, t0);
  try {
    const r = await orca([...base(), 'apply', '-f', file], {}, ROUND_TIMEOUT_MS);
    if (r.code !== 0) throw new Error(`orca apply: ${r.stderr}`);
    const answerMs = await w.done;
    const calls = tap?.take() ?? null;
    await whenReady(names);
    const readyMs = performance.now() - t0;
    return { answerMs, readyMs, calls };
  } finally {
    w.stop();
    const d = await orca([...base(), 'delete', ...names], {}, ROUND_TIMEOUT_MS);
    if (d.code !== 0) throw new Error(`orca delete: ${d.stderr}`);
    await waitFor(async () => (await rt.list({ [LABEL.cluster]: env.cluster })).length === 0, ROUND_TIMEOUT_MS, 'round deleted', 200);
  }
}

function dockerRun(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('docker', args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...(tap ? { DOCKER_HOST: tap.dockerHost } : {}) } });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`docker ${args.join(' ')}: ${err}`))));
  });
}

async function dockerRound(round: number): Promise<{ answerMs: number; calls: Map<string, CallStats> | null }> {
  const label = `${benchId}-${round}`;
  tap?.take();
  const t0 = performance.now();
  const w = whenAnswering({ 'orca.bench': label }, services, t0);
  try {
    let next = 0;
    const worker = async () => {
      while (next < services) {
        next++;
        await dockerRun(['run', '-d', '--init', '--label', `orca.bench=${label}`, '--network', baselineNet === 'user' ? netName : 'bridge', '-p', '127.0.0.1::80', EXAMPLE_WEB_V1]);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, services) }, worker));
    const answerMs = await w.done;
    return { answerMs, calls: tap?.take() ?? null };
  } finally {
    w.stop();
    const ids = docker(['ps', '-aq', '--filter', `label=orca.bench=${label}`]).split('\n').filter(Boolean);
    if (ids.length) docker(['rm', '-f', ...ids]);
  }
}

function callRows(calls: Map<string, CallStats>[]): Array<Array<string | number>> {
  const sum = new Map<string, CallStats>();
  for (const m of calls) for (const [k, v] of m) {
    const s = sum.get(k) ?? { calls: 0, totalMs: 0 };
    s.calls += v.calls;
    s.totalMs += v.totalMs;
    sum.set(k, s);
  }
  const per = calls.length * services;
  return [...sum.entries()]
    .sort((a, b) => b[1].totalMs - a[1].totalMs)
    .map(([k, v]) => [callName(k), k, v.calls / per, v.totalMs / per, v.totalMs / v.calls]);
}

const orcaAnswer: number[] = [];
const orcaReady: number[] = [];
const dockerAnswer: number[] = [];
const orcaCalls: Map<string, CallStats>[] = [];
const dockerCalls: Map<string, CallStats>[] = [];
try {
  server = await startServer({ ...env, ...(tap ? { env: { DOCKER_HOST: tap.dockerHost } } : {}) });
  // Warm-up (not counted): makes the cluster network and warms both paths.
  const warm = join(env.dataDir, 'warm.toml');
  await writeFile(warm, manifest(['warm']));
  const a = await orca([...base(), 'apply', '-f', warm]);
  if (a.code !== 0) throw new Error(`orca apply: ${a.stderr}`);
  await whenReady(['warm']);
  await orca([...base(), 'delete', 'warm']);
  await waitFor(async () => (await rt.list({ [LABEL.cluster]: env.cluster })).length === 0, ROUND_TIMEOUT_MS, 'warm-up deleted', 200);

  for (let i = 0; i < rounds; i++) {
    // Interleaved, alternating which goes first.
    const runOrca = async () => {
      const o = await orcaRound(i);
      orcaAnswer.push(o.answerMs);
      orcaReady.push(o.readyMs);
      if (o.calls) orcaCalls.push(o.calls);
    };
    const runDocker = async () => {
      const d = await dockerRound(i);
      dockerAnswer.push(d.answerMs);
      if (d.calls) dockerCalls.push(d.calls);
    };
    if (i % 2 === 0) {
      await runOrca();
      await runDocker();
    } else {
      await runDocker();
      await runOrca();
    }
    process.stderr.write(`round ${i + 1}/${rounds}: orca ready ${orcaReady[i]?.toFixed(0)} ms (answering ${orcaAnswer[i]?.toFixed(0)}), docker ${dockerAnswer[i]?.toFixed(0)} ms\n`);
  }

  report(`apply ${services} services → all ready, ms (${rounds} rounds, interleaved; baseline on ${baselineNet === 'user' ? 'a user-defined bridge network' : 'the default bridge'})`, ['how', 'median', 'rounds'], [
    ['orca apply → all ready (orca status)', median(orcaReady), series(orcaReady)],
    ['orca apply → all answering GET /', median(orcaAnswer), series(orcaAnswer)],
    [`docker run -d ×${services}, ${concurrency} at a time → all answering`, median(dockerAnswer), series(dockerAnswer)],
  ]);
  const ratio = median(orcaReady) / median(dockerAnswer);
  process.stdout.write(`ratio orca ready / docker: ${ratio.toFixed(2)}× (goal ≤ 1.15×; answering: ${(median(orcaAnswer) / median(dockerAnswer)).toFixed(2)}×)\n`);
  if (tap) {
    report(`Orca's Docker API calls per service, t0 → all answering (${orcaCalls.length} rounds)`, ['call', 'pattern', 'calls/svc', 'ms/svc', 'ms/call'], callRows(orcaCalls));
    report(`docker run's Docker API calls per container (${dockerCalls.length} rounds)`, ['call', 'pattern', 'calls/ctr', 'ms/ctr', 'ms/call'], callRows(dockerCalls));
  }
} catch (err) {
  process.stderr.write(`${server?.logs().split('\n').slice(-30).join('\n') ?? ''}\n`);
  throw err;
} finally {
  await stopServer(server);
  await cleanup(env.cluster, env.dataDir);
  if (baselineNet === 'user') docker(['network', 'rm', netName]);
  await tap?.down();
}
