/**
 * Time from `orca apply` of a 2-replica service to both containers running, beside
 * `docker run -d` of the same image twice (sequential, as an operator would type it) in the
 * same run. "Running" is Docker's own `start` event for each container.
 *
 *   node dist/bench/apply-to-running.js [rounds=5]
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { systemClock } from '../core/clock.js';
import { DockerRuntime } from '../runtime/docker-runtime.js';
import { LABEL } from '../runtime/labels.js';
import { cleanup, orca, startServer, stopServer, testEnv, waitFor } from '../test/e2e/harness.js';
import { median, report } from './lib.js';

const rounds = Number(process.argv[2] ?? 5);
const rt = new DockerRuntime();
const env = await testEnv('bench-apply');
const server = await startServer(env);
const base = ['--api', server.api, '--data-dir', env.dataDir];

/** ms from t0 until `count` start events of containers with these labels. */
async function startsAfter(labels: Record<string, string>, count: number, act: () => Promise<void> | void): Promise<number> {
  const abort = new AbortController();
  const events = rt.events(labels, abort.signal);
  const seen = new Set<string>();
  const t0 = systemClock.now();
  let t1 = 0;
  const done = (async () => {
    for await (const e of events) {
      if (e.kind !== 'start') continue;
      seen.add(e.containerId);
      if (seen.size >= count) {
        t1 = systemClock.now();
        break;
      }
    }
  })();
  await act();
  await Promise.race([done, new Promise((_, rej) => systemClock.setTimeout(() => rej(new Error('no start events')), 30_000))]);
  abort.abort();
  return t1 - t0;
}

const orcaTimes: number[] = [];
const dockerTimes: number[] = [];
try {
  for (let i = 0; i < rounds; i++) {
    const name = `bench${i}`;
    const manifest = join(env.dataDir, `${name}.toml`);
    await writeFile(manifest, `[[service]]\nname = "${name}"\nimage = "orca-example/web:1"\nreplicas = 2\nport = 80\nstop_grace_secs = 1\n`);
    orcaTimes.push(
      await startsAfter({ [LABEL.cluster]: env.cluster, [LABEL.service]: name }, 2, async () => {
        const r = await orca([...base, 'apply', '-f', manifest]);
        if (r.code !== 0) throw new Error(r.stderr);
      }),
    );
    const label = `orca.bench=${env.cluster}-${i}`;
    dockerTimes.push(
      await startsAfter({ 'orca.bench': `${env.cluster}-${i}` }, 2, () => {
        for (let k = 0; k < 2; k++) {
          const r = spawnSync('docker', ['run', '-d', '--label', label, '--label', `orca.cluster=${env.cluster}`, '--init', '-p', '127.0.0.1::80', 'orca-example/web:1']);
          if (r.status !== 0) throw new Error(r.stderr.toString());
        }
      }),
    );
    const r = await orca([...base, 'delete', name]);
    if (r.code !== 0) throw new Error(r.stderr);
    await waitFor(async () => (await rt.list({ [LABEL.service]: name, [LABEL.cluster]: env.cluster })).length === 0, 30_000, 'deleted');
  }
  report(`apply → 2 replicas running, ms (${rounds} rounds, same run)`, ['how', 'p50', 'min', 'max'], [
    ['orca apply (2 replicas)', median(orcaTimes), Math.min(...orcaTimes), Math.max(...orcaTimes)],
    ['docker run -d ×2 (baseline)', median(dockerTimes), Math.min(...dockerTimes), Math.max(...dockerTimes)],
  ]);
  process.stdout.write(`ratio orca / docker run ×2: ${(median(orcaTimes) / median(dockerTimes)).toFixed(2)}\n`);
} finally {
  await stopServer(server);
  await cleanup(env.cluster, env.dataDir);
}
