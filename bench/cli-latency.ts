/**
 * `orca status` wall time (Node start included), median of N, beside the same in one run:
 * `node -e 0` (Node's own start) and `docker ps` (the Docker CLI asking its daemon).
 *
 *   node dist/bench/cli-latency.js [runs=10]
 */
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { cleanup, orca, ORCA, startServer, stopServer, testEnv, waitFor } from '../test/e2e/harness.js';
import { median, percentile, report, timeCommand } from './lib.js';

const runs = Number(process.argv[2] ?? 10);
const env = await testEnv('bench-cli');
const server = await startServer(env);
try {
  const manifest = join(env.dataDir, 'svc.toml');
  await writeFile(manifest, '[[service]]\nname = "web"\nimage = "orca-example/web:1"\nreplicas = 2\nport = 80\nstop_grace_secs = 1\n');
  const base = ['--api', server.api, '--data-dir', env.dataDir];
  await orca([...base, 'apply', '-f', manifest]);
  await waitFor(async () => JSON.parse((await orca([...base, 'status', '-o', 'json'])).stdout).services[0].replicas.running === 2, 30_000, 'running');

  const sample = (fn: () => number) => {
    fn(); // warm the page cache
    return Array.from({ length: runs }, fn);
  };
  const status = sample(() => timeCommand(process.execPath, [ORCA, ...base, 'status']));
  const statusJson = sample(() => timeCommand(process.execPath, [ORCA, ...base, 'status', '-o', 'json']));
  const nodeStart = sample(() => timeCommand(process.execPath, ['-e', '0']));
  const dockerPs = sample(() => timeCommand('docker', ['ps', '--filter', `label=orca.cluster=${env.cluster}`]));
  report(`CLI wall time, ms (${runs} runs each, same machine, same run)`, ['command', 'p50', 'p95', 'min'], [
    ['orca status', median(status), percentile(status, 95), Math.min(...status)],
    ['orca status -o json', median(statusJson), percentile(statusJson, 95), Math.min(...statusJson)],
    ['node -e 0 (baseline)', median(nodeStart), percentile(nodeStart, 95), Math.min(...nodeStart)],
    ['docker ps (baseline)', median(dockerPs), percentile(dockerPs, 95), Math.min(...dockerPs)],
  ]);
  process.stdout.write(`orca status over docker ps: ${(median(status) / median(dockerPs)).toFixed(2)}x; over bare node start: +${(median(status) - median(nodeStart)).toFixed(0)} ms\n`);
} finally {
  await stopServer(server);
  await cleanup(env.cluster, env.dataDir);
}
