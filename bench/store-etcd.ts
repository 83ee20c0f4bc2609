/**
 * The cost of the store on etcd (issue 14, SPEC §3.11), beside the embedded LevelDB store in the
 * same run.
 *
 * Two `orca server`s on 127.0.0.1 (ports chosen by the OS, temp data dirs, each its own
 * --cluster-id, --no-local-agent so no container starts and only the store and the scheduler
 * work): one on LevelDB in its data directory (the baseline), one with --store on a one-member
 * etcd started here (loopback, temp data dir; etcd fsyncs its WAL as LevelDB does its log).
 *
 * 1. `orca apply -f web.toml` wall time (Node start included): each run a new GREETING, so each
 *    is a new revision (`service/web configured`). Runs alternate between the two servers.
 * 2. `orca status` wall time (5 services stored), alternating the same way.
 * 3. In-process, without the CLI: the Store calls behind them, on a LevelStore and an EtcdStore
 *    opened here (commitRevisions of one service, listServices of 5, getKv), to show the store's
 *    own share.
 *
 *   node dist/bench/store-etcd.js [runs=10]
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { systemClock } from '../core/clock.js';
import type { ServiceSpec } from '../manifest/types.js';
import { openLevelStore } from '../store/index.js';
import { EtcdStore } from '../store/etcd-store.js';
import type { Store } from '../store/types.js';
import { startEtcd } from '../test/etcd.js';
import { cleanup, ORCA, startServer, stopServer, testEnv, type ServerProcess } from '../test/e2e/harness.js';
import { median, percentile, report, timeCommand } from './lib.js';

const runs = Number(process.argv[2] ?? 10);
if (!Number.isInteger(runs) || runs < 1 || runs > 1000) throw new Error(`runs must be 1-1000, got ${process.argv[2]}`);

const etcd = await startEtcd();
const level = await testEnv('bench-level');
const onEtcd = await testEnv('bench-etcd');
const servers: ServerProcess[] = [];
const scratch = await mkdtemp(join(tmpdir(), 'orca-bench-store-'));
try {
  const levelServer = await startServer({ ...level, extra: ['--no-local-agent'] });
  servers.push(levelServer);
  const etcdServer = await startServer({ ...onEtcd, extra: ['--no-local-agent', '--store', etcd.storeUrl] });
  servers.push(etcdServer);
  const targets = [
    { name: 'LevelDB (embedded)', base: ['--api', levelServer.api, '--data-dir', level.dataDir], dir: level.dataDir },
    { name: 'etcd (1 member)', base: ['--api', etcdServer.api, '--data-dir', onEtcd.dataDir], dir: onEtcd.dataDir },
  ];

  let n = 0;
  const manifest = async (dir: string, services = 1) => {
    const file = join(dir, `bench-${++n}.toml`);
    const text = Array.from({ length: services }, (_, i) => `[[service]]\nname = "${i === 0 ? 'web' : `svc${i}`}"\nimage = "orca-example/web:1"\nreplicas = 2\nport = 80\nenv = { GREETING = "run-${n}" }\n`).join('\n');
    await writeFile(file, text);
    return file;
  };
  const apply = async (t: (typeof targets)[number], services = 1) => timeCommand(process.execPath, [ORCA, ...t.base, 'apply', '-f', await manifest(t.dir, services)]);

  // Warm-up: five services stored on each, one of each command.
  for (const t of targets) {
    await apply(t, 5);
    timeCommand(process.execPath, [ORCA, ...t.base, 'status']);
  }
  const applyMs: number[][] = targets.map(() => []);
  const statusMs: number[][] = targets.map(() => []);
  for (let i = 0; i < runs; i++) {
    for (const [j, t] of targets.entries()) applyMs[j]!.push(await apply(t));
    for (const [j, t] of targets.entries()) statusMs[j]!.push(timeCommand(process.execPath, [ORCA, ...t.base, 'status']));
  }
  const rows = (what: string, ms: number[][]) => targets.map((t, j) => [`${what} — ${t.name}`, median(ms[j]!), percentile(ms[j]!, 95), Math.min(...ms[j]!)]);
  report(`CLI wall time, ms (${runs} runs each, interleaved, same machine, same run)`, ['command — store', 'p50', 'p95', 'min'], [...rows('orca apply', applyMs), ...rows('orca status', statusMs)]);

  // The store calls alone.
  const spec = (name: string, image: string): ServiceSpec => ({
    name,
    image,
    env: {},
    replicas: 2,
    stopGraceSecs: 10,
    init: true,
    labels: {},
    resources: {},
    restart: { policy: 'always', backoffInitialSecs: 1, backoffMaxSecs: 60, resetAfterSecs: 60 },
    deploy: { strategy: 'start-first', readyTimeoutSecs: 60 },
  });
  const stores: Array<{ name: string; store: Store }> = [
    { name: 'LevelDB (embedded)', store: await openLevelStore(join(scratch, 'cluster.db')) },
    { name: 'etcd (1 member)', store: new EtcdStore({ endpoints: etcd.endpoints, prefix: `/orca-bench/${randomBytes(4).toString('hex')}` }) },
  ];
  await stores[1]!.store.open();
  const inProcess: Array<Array<string | number>> = [];
  const calls = runs * 10;
  for (const { name, store } of stores) {
    await store.commitRevisions(Array.from({ length: 5 }, (_, i) => ({ spec: spec(`s${i}`, 'x:1'), specHash: 'h', source: 'apply' as const, at: new Date(systemClock.now()).toISOString() })));
    await store.putKv('node/n1', { name: 'n1' });
    const time = async (fn: (i: number) => Promise<unknown>) => {
      const out: number[] = [];
      for (let i = 0; i < calls; i++) {
        const t0 = performance.now();
        await fn(i);
        out.push(performance.now() - t0);
      }
      return out;
    };
    const commit = await time((i) => store.commitRevisions([{ spec: spec('s0', `x:${i}`), specHash: `h${i}`, source: 'apply', at: new Date(systemClock.now()).toISOString() }]));
    const list = await time(() => store.listServices());
    const get = await time(() => store.getKv('node/n1'));
    inProcess.push([`commitRevisions (1 service) — ${name}`, median(commit), percentile(commit, 95)]);
    inProcess.push([`listServices (5) — ${name}`, median(list), percentile(list, 95)]);
    inProcess.push([`getKv — ${name}`, median(get), percentile(get, 95)]);
  }
  for (const { store } of stores) await store.close();
  report(`Store calls in process, ms (${calls} each)`, ['call — store', 'p50', 'p95'], inProcess);

  const ratio = (ms: number[][]) => (median(ms[1]!) / median(ms[0]!)).toFixed(2);
  process.stdout.write(`\netcd over LevelDB, p50: orca apply ${ratio(applyMs)}x (+${(median(applyMs[1]!) - median(applyMs[0]!)).toFixed(0)} ms), orca status ${ratio(statusMs)}x (+${(median(statusMs[1]!) - median(statusMs[0]!)).toFixed(0)} ms)\n`);
} finally {
  for (const s of servers) await stopServer(s);
  await cleanup(level.cluster, level.dataDir);
  await cleanup(onEtcd.cluster, onEtcd.dataDir);
  await rm(scratch, { recursive: true, force: true });
  await etcd.stop();
}
