/**
 * `orca status` wall time (Node start included) beside, in the same run, `node -e 0` (Node's
 * own start: the floor) and `docker ps` (the Docker CLI asking its daemon). Interleaved: each
 * round runs `orca status`, `orca status -o json`, `node -e 0` and `docker ps` once each, in
 * turn, so that a busy moment of the machine falls on all of them alike. Reports the median
 * round, p95 and every round, and orca status / node -e 0 against the goal (≤ 1.3×).
 *
 *   node dist/bench/cli-latency.js [rounds=15]
 */
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { cleanup, orca, ORCA, startServer, stopServer, testEnv, waitFor } from '../test/e2e/harness.js';
import { median, percentile, report, series, timeCommand } from './lib.js';

const GOAL = 1.3;
const rounds = Number(process.argv[2] ?? 15);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`rounds: a positive integer, not ${process.argv[2]}`);

const env = await testEnv('bench-cli');
const server = await startServer(env);
try {
  const manifest = join(env.dataDir, 'svc.toml');
  await writeFile(manifest, '[[service]]\nname = "web"\nimage = "orca-example/web:1"\nreplicas = 2\nport = 80\nstop_grace_secs = 1\n');
  const base = ['--api', server.api, '--data-dir', env.dataDir];
  await orca([...base, 'apply', '-f', manifest]);
  await waitFor(async () => JSON.parse((await orca([...base, 'status', '-o', 'json'])).stdout).services[0].replicas.running === 2, 30_000, 'running');

  const commands: Array<{ name: string; cmd: string; args: string[] }> = [
    { name: 'orca status', cmd: process.execPath, args: [ORCA, ...base, 'status'] },
    { name: 'orca status -o json', cmd: process.execPath, args: [ORCA, ...base, 'status', '-o', 'json'] },
    { name: 'node -e 0 (baseline)', cmd: process.execPath, args: ['-e', '0'] },
    { name: 'docker ps (baseline)', cmd: 'docker', args: ['ps', '--filter', `label=orca.cluster=${env.cluster}`] },
  ];
  for (const c of commands) timeCommand(c.cmd, c.args); // warm the page cache
  const times = commands.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) commands.forEach((c, i) => times[i]!.push(timeCommand(c.cmd, c.args)));

  report(
    `CLI wall time, ms: ${rounds} interleaved rounds (each round runs every command once, in turn), same machine, same run`,
    ['command', 'median', 'p95', 'min', 'every round'],
    commands.map((c, i) => [c.name, median(times[i]!), percentile(times[i]!, 95), Math.min(...times[i]!), series(times[i]!)]),
  );
  const [status, , nodeStart, dockerPs] = times.map((t) => median(t));
  const ratio = status! / nodeStart!;
  const perRound = times[0]!.map((t, r) => t / times[2]![r]!);
  process.stdout.write(
    `orca status / node -e 0: ${ratio.toFixed(2)}x (goal <= ${GOAL}x: ${ratio <= GOAL ? 'met' : 'not met'}; +${(status! - nodeStart!).toFixed(0)} ms; ` +
      `per round: median ${median(perRound).toFixed(2)}x, ${perRound.map((x) => x.toFixed(2)).join(' ')})\n` +
      `orca status / docker ps: ${(status! / dockerPs!).toFixed(2)}x\n`,
  );
} finally {
  await stopServer(server);
  await cleanup(env.cluster, env.dataDir);
}
