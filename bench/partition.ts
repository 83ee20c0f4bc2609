/**
 * A frozen node (SPEC §3.1: node `unreachable` after heartbeat_timeout_secs, `down` after
 * node_down_grace_secs more, its instances rescheduled on healthy nodes; reconnecting leaves
 * "no duplicate instance after reconcile"), beside the configured timeouts.
 *
 * `orca server --heartbeat-interval 0.5 --heartbeat-timeout 3 --node-down-grace 5` (its embedded
 * agent is n1) plus a second `orca agent` n2 (its own data dir, reconnect 0.2 / 0.5 s), both on
 * this Docker daemon; a 4-replica service (TEST_IMAGE, `sleep 3600`, no port: ready once
 * running) spread 2 + 2. ROUNDS times: SIGSTOP the agent at t0, then measure from t0 to
 *   unreachable / down: `orca nodes -o json` showing n2 so (polled back to back, 50 ms apart; a
 *     CLI call takes a few hundred ms, so the polled figure is late by up to one call), and the
 *     node.unreachable / node.down events' own `time`;
 *   4 ready on n1: `orca status -o json` showing 4 running ready instances on n1 (polled), and the
 *     last `container.create` (create + start) event on n1 (no port, no probe: ready once started);
 * then SIGCONT at t1 and measure from t1 to n2 `ready` again, and to no duplicate: exactly 4
 * running containers of the service in `docker ps` (polled every 50 ms; the most seen meanwhile
 * is shown; and the thawed agent's last `container.remove` event). Between rounds the service is re-spread by scaling to 2 and back to 4 (the new
 * slots go to the emptier node, as in test/e2e/multinode.test.ts). Watchdogs stay at their
 * default (30 s): what happens here comes from heartbeats and the session, not the safety net.
 * Clean-up: SIGCONT then SIGTERM to the agent by pid, the server stopped, only this cluster's
 * containers removed.
 *
 *   node dist/bench/partition.js [rounds=3]      (ORCA_BENCH_VERBOSE=1: each round's events on stderr)
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep, systemClock } from '../core/clock.js';
import { DockerRuntime } from '../runtime/docker-runtime.js';
import { LABEL } from '../runtime/labels.js';
import { TEST_IMAGE, ensureTestImages } from '../test/images.js';
import { cleanup, cli, startAgentProcess, startServer, stopAgentProcess, stopServer, testEnv, waitFor, type AgentProcess, type ServerProcess } from '../test/e2e/harness.js';
import { docker, parseEvents, percentile, report } from './lib.js';

const rounds = Number(process.argv[2] ?? 3);
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 10) {
  process.stderr.write('usage: node dist/bench/partition.js [rounds=3]  (1..10)\n');
  process.exit(2);
}
const SERVICE = 'spread';
const HB_INTERVAL_S = 0.5;
const HB_TIMEOUT_S = 3;
const DOWN_GRACE_S = 5;
const SERVER_FLAGS = ['--heartbeat-interval', String(HB_INTERVAL_S), '--heartbeat-timeout', String(HB_TIMEOUT_S), '--node-down-grace', String(DOWN_GRACE_S)];
const AGENT_FLAGS = ['--reconnect-initial', '0.2', '--reconnect-max', '0.5'];
const POLL_MS = 50;
const PHASE_TIMEOUT_MS = 60_000;

interface Instance {
  id: string;
  node: string;
  state: string;
  ready: boolean;
  containerId: string | null;
}
interface Node {
  name: string;
  state: string;
}

interface Round {
  spread: string;
  /** ms from t0 (SIGSTOP): polled through the CLI / from the event's own time. */
  unreachablePolled: number;
  unreachableEvent: number;
  downPolled: number;
  downEvent: number;
  movedPolled: number;
  movedEvent: number;
  /** ms from t1 (SIGCONT). */
  backPolled: number;
  backEvent: number;
  noDuplicate: number;
  /** The last container.remove event of the thawed n2 (its moved-away instances). */
  dupRemovedEvent: number;
  mostContainers: number;
}

await ensureTestImages(new DockerRuntime());
const env = await testEnv('bench-partition');
const agentDir = await mkdtemp(join(tmpdir(), `${env.cluster}-n2-`));
let server: ServerProcess | undefined;
let agent: AgentProcess | undefined;
const results: Round[] = [];
const started = performance.now();
try {
  server = await startServer({ ...env, extra: SERVER_FLAGS, env: { ORCA_LOG_LEVEL: 'info' } });
  const run = cli(server, env.dataDir);
  const token = (await readFile(join(env.dataDir, 'cluster.token'), 'utf8')).trim();
  agent = startAgentProcess({ api: server.api, node: 'n2', dataDir: agentDir, token, cluster: env.cluster, extra: AGENT_FLAGS });
  const nodes = async (): Promise<Node[]> => {
    const r = await run(['nodes', '-o', 'json']);
    if (r.code !== 0) throw new Error(r.stderr);
    return (JSON.parse(r.stdout) as { nodes: Node[] }).nodes;
  };
  const n2State = async () => (await nodes()).find((n) => n.name === 'n2')?.state;
  const instances = async (): Promise<Instance[]> => {
    const r = await run(['status', SERVICE, '-o', 'json']);
    if (r.code !== 0) throw new Error(r.stderr);
    return (JSON.parse(r.stdout) as { services: Array<{ instances: Instance[] }> }).services[0]?.instances ?? [];
  };
  const live = (l: Instance[], node: string) => l.filter((i) => i.node === node && i.state === 'running' && i.ready && i.containerId);
  const containers = () =>
    docker(['ps', '-q', '--filter', `label=${LABEL.cluster}=${env.cluster}`, '--filter', `label=${LABEL.service}=${SERVICE}`]).split('\n').filter(Boolean).length;
  const apply = async (replicas: number) => {
    const file = join(env.dataDir, `${SERVICE}-${replicas}.toml`);
    await writeFile(file, `[[service]]\nname = "${SERVICE}"\nimage = "${TEST_IMAGE}"\ncommand = ["sleep", "3600"]\nreplicas = ${replicas}\nstop_grace_secs = 0.5\n`);
    const r = await run(['apply', '-f', file, '--wait', '--timeout', '60']);
    if (r.code !== 0) throw new Error(`apply ${replicas} replicas: ${r.stderr}`);
  };
  await waitFor(async () => (await n2State()) === 'ready', 15_000, 'n2 ready');

  for (let r = 0; r < rounds; r++) {
    // ---- spread 2 + 2 -----------------------------------------------------------------------
    if (r > 0) {
      await waitFor(async () => (await n2State()) === 'ready', 15_000, 'n2 ready before re-spreading');
      await apply(2);
    }
    await apply(4);
    await waitFor(async () => live(await instances(), 'n1').length + live(await instances(), 'n2').length === 4 && containers() === 4, 30_000, '4 ready, 4 containers');
    const before = await instances();
    const spread = `${live(before, 'n1').length}+${live(before, 'n2').length}`;

    // ---- freeze n2 --------------------------------------------------------------------------
    const t0 = systemClock.now();
    process.kill(agent.pid, 'SIGSTOP');
    const round: Round = {
      spread,
      unreachablePolled: NaN,
      unreachableEvent: NaN,
      downPolled: NaN,
      downEvent: NaN,
      movedPolled: NaN,
      movedEvent: NaN,
      backPolled: NaN,
      backEvent: NaN,
      noDuplicate: NaN,
      dupRemovedEvent: NaN,
      mostContainers: 0,
    };
    const deadline = t0 + PHASE_TIMEOUT_MS;
    const pollNodes = (async () => {
      while (systemClock.now() < deadline && Number.isNaN(round.downPolled)) {
        const s = await n2State().catch(() => undefined);
        const at = systemClock.now() - t0;
        if ((s === 'unreachable' || s === 'down') && Number.isNaN(round.unreachablePolled)) round.unreachablePolled = at;
        if (s === 'down') round.downPolled = at;
        await sleep(systemClock, POLL_MS);
      }
    })();
    const pollMoved = (async () => {
      while (systemClock.now() < deadline) {
        const l = await instances().catch(() => []);
        if (live(l, 'n1').length === 4) {
          round.movedPolled = systemClock.now() - t0;
          return;
        }
        await sleep(systemClock, POLL_MS);
      }
    })();
    await Promise.all([pollNodes, pollMoved]);

    // ---- thaw n2 ----------------------------------------------------------------------------
    const t1 = systemClock.now();
    process.kill(agent.pid, 'SIGCONT');
    const deadline1 = t1 + PHASE_TIMEOUT_MS;
    const pollBack = (async () => {
      while (systemClock.now() < deadline1) {
        if ((await n2State().catch(() => undefined)) === 'ready') {
          round.backPolled = systemClock.now() - t1;
          return;
        }
        await sleep(systemClock, POLL_MS);
      }
    })();
    const pollDup = (async () => {
      while (systemClock.now() < deadline1) {
        const n = containers();
        round.mostContainers = Math.max(round.mostContainers, n);
        if (n === 4) {
          round.noDuplicate = systemClock.now() - t1;
          return;
        }
        await sleep(systemClock, POLL_MS);
      }
    })();
    await Promise.all([pollBack, pollDup]);

    const events = parseEvents((await run(['events', '-o', 'json', '--since', '5m'])).stdout);
    const firstAfter = (from: number, ok: (e: (typeof events)[number]) => boolean) => {
      const e = events.find((x) => Date.parse(x.time) >= from && ok(x));
      return e ? Date.parse(e.time) - from : NaN;
    };
    round.unreachableEvent = firstAfter(t0, (e) => e.node === 'n2' && e.action === 'node.unreachable');
    round.downEvent = firstAfter(t0, (e) => e.node === 'n2' && e.action === 'node.down');
    round.backEvent = firstAfter(t1, (e) => e.node === 'n2' && e.action === 'node.ready');
    // No port and no probe: an instance is ready once started, so the end of its container.create
    // (create and start; recorded when done), or of a separate container.start, is when.
    const starts = events.filter(
      (e) => e.node === 'n1' && (e.action === 'container.create' || e.action === 'container.start') && e.outcome === 'ok' && e.service === SERVICE && Date.parse(e.time) >= t0 && Date.parse(e.time) <= t1,
    );
    round.movedEvent = starts.length >= 2 ? Math.max(...starts.map((e) => Date.parse(e.time))) - t0 : NaN;
    const removes = events.filter((e) => e.node === 'n2' && e.action === 'container.remove' && e.outcome === 'ok' && e.service === SERVICE && Date.parse(e.time) >= t1);
    round.dupRemovedEvent = removes.length >= 2 ? Math.max(...removes.map((e) => Date.parse(e.time))) - t1 : NaN;
    results.push(round);
    process.stderr.write(`round ${r + 1}: ${JSON.stringify(round)}\n`);
    if (process.env.ORCA_BENCH_VERBOSE) {
      for (const e of events.filter((x) => Date.parse(x.time) >= t0)) {
        process.stderr.write(`  +${Date.parse(e.time) - t0} ms ${e.reconciler} ${e.node ?? '-'} ${e.action} ${e.instance ?? '-'} ${e.reason} ${e.outcome} ${e.durationMs} ms${e.message ? ` ${e.message}` : ''}\n`);
      }
    }
  }
} finally {
  await stopAgentProcess(agent);
  await stopServer(server);
  await cleanup(env.cluster, env.dataDir);
  await rm(agentDir, { recursive: true, force: true });
}

// ---- report -----------------------------------------------------------------------------------
const out = (s: string) => process.stdout.write(`${s}\n`);
const downAt = (HB_TIMEOUT_S + DOWN_GRACE_S) * 1000;
out(`partition: SIGSTOP of agent n2 (4 replicas spread 2+2), server --heartbeat-interval ${HB_INTERVAL_S} --heartbeat-timeout ${HB_TIMEOUT_S} --node-down-grace ${DOWN_GRACE_S}; agent --reconnect-initial 0.2 --reconnect-max 0.5`);
out(`event = the event's own time in \`orca events -o json\`; polled = first seen by back-to-back \`orca nodes|status -o json\` / \`docker ps\` (late by up to one call)`);
report(
  `from SIGSTOP, ms (configured: unreachable ${HB_TIMEOUT_S * 1000} ms after the last heartbeat, down ${downAt} ms)`,
  ['round', 'spread', 'unreachable event', 'polled', 'down event', 'polled', '4 ready on n1 event', 'polled'],
  results.map((x, i) => [String(i + 1), x.spread, x.unreachableEvent, x.unreachablePolled, x.downEvent, x.downPolled, x.movedEvent, x.movedPolled]),
);
report(
  'from SIGCONT, ms',
  ['round', 'n2 ready event', 'polled', 'n2 removed its 2 (last container.remove event)', 'exactly 4 containers (no duplicate), polled', 'most containers seen'],
  results.map((x, i) => [String(i + 1), x.backEvent, x.backPolled, x.dupRemovedEvent, x.noDuplicate, String(x.mostContainers)]),
);
const p50 = (k: keyof Round) => percentile(results.map((x) => x[k] as number).filter(Number.isFinite), 50);
report('p50 beside the configuration, ms', ['what', 'measured p50 (event)', 'configured', 'measured − configured'], [
  ['unreachable', p50('unreachableEvent'), HB_TIMEOUT_S * 1000, p50('unreachableEvent') - HB_TIMEOUT_S * 1000],
  ['down', p50('downEvent'), downAt, p50('downEvent') - downAt],
  ['4 ready on n1 (rescheduled)', p50('movedEvent'), downAt, p50('movedEvent') - downAt],
  ['no duplicate after SIGCONT', p50('noDuplicate'), NaN, NaN],
]);
const ok =
  results.every((x) => Number.isFinite(x.unreachableEvent) && x.unreachableEvent <= HB_TIMEOUT_S * 1000 + 500) &&
  results.every((x) => Number.isFinite(x.downEvent) && x.downEvent <= downAt + 500) &&
  results.every((x) => Number.isFinite(x.noDuplicate));
out(
  `\ntarget: "as configured" (unreachable after ${HB_TIMEOUT_S} s, down after ${HB_TIMEOUT_S}+${DOWN_GRACE_S} s, within one heartbeat interval) and no duplicate after reconcile: ${ok ? 'met' : 'NOT met'}`,
);
out(`total ${((performance.now() - started) / 1000).toFixed(0)} s`);
