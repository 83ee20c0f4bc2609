/**
 * How the control path grows with the number of services: N services × 3 replicas applied to an
 * in-process server (hosts/server-host.ts startServerHost with FakeRuntime on systemClock and memory
 * stores), for N = 200 and 2000. Per N:
 *   apply      control.apply(N manifest files) — the API path (parse, store, publish);
 *   converged  from the start of apply until agent.idle() and all 3N containers running;
 *   heap       heapUsed after a forced gc, after convergence minus before apply;
 *   resync     one agent.resyncAll() with everything converged (must take no action);
 *   no-op      control.apply of the same N files again (all `unchanged`; asserted: zero mutating
 *              runtime calls, until the agent is idle again).
 * FakeRuntime calls are instantaneous but not free (list scans every container); the time spent
 * inside them is measured and shown apart ("in fake"). Baseline in the same process: FakeRuntime
 * alone doing the least any orchestrator must ask of it (create + start 3N, one list per service),
 * time and heap. The growth factor 200 → 2000 is ×10 when linear, ×100 when quadratic.
 *
 *   node dist/bench/scale.js      (re-runs itself under --expose-gc, one process per N, each warmed up first)
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { flushMicrotasks, seededRng, sleep, systemClock } from '../core/clock.js';
import { silentLogger } from '../core/log.js';
import { parseManifestText } from '../manifest/index.js';
import { FakeRuntime } from '../runtime/fake-runtime.js';
import { clusterNetwork, LABEL } from '../runtime/labels.js';
import type { ContainerSpec, LogOptions, ObservedContainer, Runtime, RuntimeEvent } from '../runtime/types.js';
import { toContainerSpec } from '../controllers/container/container-spec.js';
import { instanceHash } from '../controllers/container/instance-hash.js';
import type { Agent } from '../agent/agent.js';
import { memoryStore } from '../store/index.js';
import { loadServerConfig } from '../server/config.js';
import { startServerHost } from '../hosts/server-host.js';
import type { ManifestFile } from '../server/control-plane.js';
import { report } from './lib.js';

const SIZES = [200, 2000];
const WARMUP_SERVICES = 100;
const REPLICAS = 3;
const IMAGE = 'orca-test/busybox:1';
const CONVERGE_TIMEOUT_MS = 300_000;

interface Figures {
  n: number;
  containers: number;
  applyMs: number;
  convergeMs: number;
  convergeFakeMs: number;
  convergeLists: number;
  convergeMutating: number;
  heapMB: number;
  resyncMs: number;
  resyncFakeMs: number;
  resyncLists: number;
  resyncMutating: number;
  noopMs: number;
  noopMutating: number;
  noopUnchanged: number;
  fakeAloneMs: number;
  fakeAloneHeapMB: number;
}

/** The Runtime port over a FakeRuntime, adding up the time spent inside its calls. */
class TimedRuntime implements Runtime {
  ms = 0;
  constructor(private readonly rt: FakeRuntime) {}
  /** Fake calls do all their work before their first await, so the synchronous part is their cost. */
  private t<R>(fn: () => R): R {
    const s = performance.now();
    try {
      return fn();
    } finally {
      this.ms += performance.now() - s;
    }
  }
  ping() { return this.t(() => this.rt.ping()); }
  exec(id: string, command: string[], timeoutMs: number) { return this.t(() => this.rt.exec(id, command, timeoutMs)); }
  listeners(id: string) { return this.t(() => this.rt.listeners(id)); }
  hasImage(image: string) { return this.t(() => this.rt.hasImage(image)); }
  imageHealthcheck(image: string) { return this.t(() => this.rt.imageHealthcheck(image)); }
  imageExposedPorts(image: string) { return this.t(() => this.rt.imageExposedPorts(image)); }
  create(spec: ContainerSpec) { return this.t(() => this.rt.create(spec)); }
  start(id: string) { return this.t(() => this.rt.start(id)); }
  stop(id: string, graceSecs: number) { return this.t(() => this.rt.stop(id, graceSecs)); }
  kill(id: string, signal: string) { return this.t(() => this.rt.kill(id, signal)); }
  remove(id: string, opts?: { force?: boolean }) { return this.t(() => this.rt.remove(id, opts)); }
  ensureNetwork(name: string, labels: Record<string, string>) { return this.t(() => this.rt.ensureNetwork(name, labels)); }
  inspectNetwork(name: string) { return this.t(() => this.rt.inspectNetwork(name)); }
  connect(id: string, network: string, aliases: string[]) { return this.t(() => this.rt.connect(id, network, aliases)); }
  ensureVolume(name: string, labels: Record<string, string>) { return this.t(() => this.rt.ensureVolume(name, labels)); }
  listVolumes(labels: Record<string, string>) { return this.t(() => this.rt.listVolumes(labels)); }
  removeVolume(name: string) { return this.t(() => this.rt.removeVolume(name)); }
  list(labels: Record<string, string>): Promise<ObservedContainer[]> { return this.t(() => this.rt.list(labels)); }
  inspect(id: string) { return this.t(() => this.rt.inspect(id)); }
  logs(id: string, opts: LogOptions): AsyncIterable<string> { return this.rt.logs(id, opts); }
  events(labels: Record<string, string>, signal: AbortSignal): AsyncIterable<RuntimeEvent> { return this.rt.events(labels, signal); }
}

const svcName = (i: number) => `svc-${String(i).padStart(4, '0')}`;
const manifests = (n: number): ManifestFile[] =>
  Array.from({ length: n }, (_, i) => ({ file: `${svcName(i)}.toml`, text: `[[service]]\nname = "${svcName(i)}"\nimage = "${IMAGE}"\nreplicas = ${REPLICAS}\n` }));

function heapMB(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run under node --expose-gc');
  gc();
  gc();
  return process.memoryUsage().heapUsed / 1024 / 1024;
}

function fakeRuntime(): FakeRuntime {
  const rt = new FakeRuntime(systemClock);
  rt.addImage(IMAGE, { cmd: ['sleep', '3600'] });
  return rt;
}

const running = async (rt: FakeRuntime) => (await rt.list({})).filter((c) => c.status === 'running').length;

/** Lets the agent drain the runtime events still queued after it went idle (not measured). */
async function settle(agent: Agent): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await sleep(systemClock, 20);
    await flushMicrotasks(20);
    await agent.idle();
  }
}

/** The baseline: what FakeRuntime costs for the same containers with no orchestrator in between. */
async function fakeAlone(n: number): Promise<{ ms: number; heapMB: number }> {
  const rt = fakeRuntime();
  const identity = { cluster: 'bench-alone', node: 'n1', advertise: '127.0.0.1' };
  const specs: ContainerSpec[] = [];
  for (const f of manifests(n)) {
    const parsed = parseManifestText(f.text, f.file);
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
    for (const { spec } of parsed.value) {
      for (let slot = 0; slot < spec.replicas; slot++) {
        specs.push(toContainerSpec({ service: spec.name, slot, revision: 1, specHash: instanceHash(spec), spec }, `${spec.name}-1-${slot}-abcd`, identity));
      }
    }
  }
  // The containers join the cluster network (SPEC §3.8), as the agent makes it first.
  const net = clusterNetwork(identity.cluster);
  await rt.ensureNetwork(net.name, net.labels);
  const h0 = heapMB();
  const t0 = performance.now();
  for (const s of specs) await rt.start(await rt.create(s));
  for (let i = 0; i < n; i++) await rt.list({ [LABEL.cluster]: identity.cluster, [LABEL.node]: identity.node, [LABEL.service]: svcName(i) });
  const ms = performance.now() - t0;
  if ((await running(rt)) !== specs.length) throw new Error('fake alone: not every container runs');
  return { ms, heapMB: heapMB() - h0 };
}

/** One server with N services: the figures. */
async function run(n: number): Promise<Omit<Figures, 'fakeAloneMs' | 'fakeAloneHeapMB'>> {
  const dataDir = await mkdtemp(join(tmpdir(), 'orca-bench-scale-'));
  const cfg = await loadServerConfig({
    dataDir,
    nodeName: 'n1',
    clusterId: `bench-scale-${n}`,
    apiListen: '127.0.0.1:0',
    proxyListen: '127.0.0.1:0',
    watchdogInterval: '3600',
  });
  if (!cfg.ok) throw new Error(cfg.errors.join('\n'));
  const fake = fakeRuntime();
  const timed = new TimedRuntime(fake);
  const server = await startServerHost(cfg.value, {
    log: silentLogger(),
    runtime: timed,
    clock: systemClock,
    rng: seededRng(1),
    openStore: async () => {
      const s = memoryStore();
      await s.open();
      return s;
    },
  });
  try {
    await server.ready();
    const agent = server.agent;
    if (!agent) throw new Error('no local agent');
    const files = manifests(n);
    const want = n * REPLICAS;

    // (a) apply and converge
    const h0 = heapMB();
    fake.resetCalls();
    timed.ms = 0;
    const t0 = performance.now();
    const applied = await server.control.apply(files, false);
    const applyMs = performance.now() - t0;
    if (!applied.ok || applied.value.some((r) => r.action !== 'created')) throw new Error(`apply: ${JSON.stringify(applied).slice(0, 500)}`);
    let checks = 0;
    for (;;) {
      await agent.idle();
      checks++; // each check is one list call on the fake directly (not timed)
      if ((await running(fake)) === want) break;
      if (performance.now() - t0 > CONVERGE_TIMEOUT_MS) throw new Error(`not converged after ${CONVERGE_TIMEOUT_MS} ms`);
      await sleep(systemClock, 5);
    }
    const convergeMs = performance.now() - t0;
    const convergeFakeMs = timed.ms;
    const convergeLists = fake.calls.list - checks;
    const convergeMutating = fake.mutatingCalls();
    await settle(agent);
    const heap = heapMB() - h0;

    // (b) one full resync, converged
    fake.resetCalls();
    timed.ms = 0;
    const t1 = performance.now();
    await agent.resyncAll();
    const resyncMs = performance.now() - t1;
    const resyncFakeMs = timed.ms;
    const resyncLists = fake.calls.list;
    const resyncMutating = fake.mutatingCalls();
    await settle(agent);

    // (c) no-op re-apply
    fake.resetCalls();
    const t2 = performance.now();
    const again = await server.control.apply(files, false);
    const noopMs = performance.now() - t2;
    await settle(agent);
    const noopUnchanged = again.ok ? again.value.filter((r) => r.action === 'unchanged').length : 0;
    const noopMutating = fake.mutatingCalls();
    if (noopUnchanged !== n || noopMutating !== 0) {
      throw new Error(`no-op re-apply: ${noopUnchanged}/${n} unchanged, ${noopMutating} mutating runtime calls (want ${n}, 0)`);
    }
    return {
      n, containers: want, applyMs, convergeMs, convergeFakeMs, convergeLists, convergeMutating, heapMB: heap,
      resyncMs, resyncFakeMs, resyncLists, resyncMutating, noopMs, noopMutating, noopUnchanged,
    };
  } finally {
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function child(n: number): Promise<void> {
  await run(WARMUP_SERVICES); // JIT warm-up, so N=200 is not measured cold
  await fakeAlone(WARMUP_SERVICES);
  const figures = await run(n);
  const alone = await fakeAlone(n);
  process.stdout.write(`RESULT ${JSON.stringify({ ...figures, fakeAloneMs: alone.ms, fakeAloneHeapMB: alone.heapMB })}\n`);
  process.exit(0); // the fake containers' `sleep 3600` timers would keep the process alive
}

function parent(): void {
  const script = process.argv[1] as string;
  const results: Figures[] = [];
  for (const n of SIZES) {
    const r = spawnSync(process.execPath, ['--expose-gc', script, '--child', String(n)], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      timeout: 15 * 60_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    const line = r.stdout?.split('\n').find((l) => l.startsWith('RESULT '));
    if (r.status !== 0 || !line) {
      process.stderr.write(`scale: N=${n} failed (status ${r.status}, signal ${r.signal})\n${r.stdout ?? ''}`);
      process.exit(1);
    }
    results.push(JSON.parse(line.slice('RESULT '.length)) as Figures);
  }
  const [a, b] = results as [Figures, Figures];
  const g = (k: keyof Figures) => `×${(b[k] / a[k]).toFixed(1)}`;
  const ms = (v: number) => v;
  process.stdout.write(
    `scale: N services × ${REPLICAS} replicas, in-process server on FakeRuntime (systemClock) and memory stores; ` +
      `one process per N, warmed up with ${WARMUP_SERVICES} services first. Growth ${a.n} → ${b.n}: ×10 linear, ×100 quadratic.\n`,
  );
  report(
    'time, ms ("in fake": inside FakeRuntime calls; baseline: FakeRuntime alone, create+start 3N and N lists)',
    ['N', 'containers', 'apply (API)', 'converged', 'in fake', 'resync', 'in fake', 'no-op apply', 'baseline: fake alone'],
    [
      ...results.map((r) => [String(r.n), String(r.containers), ms(r.applyMs), ms(r.convergeMs), ms(r.convergeFakeMs), ms(r.resyncMs), ms(r.resyncFakeMs), ms(r.noopMs), ms(r.fakeAloneMs)]),
      ['growth', g('containers'), g('applyMs'), g('convergeMs'), g('convergeFakeMs'), g('resyncMs'), g('resyncFakeMs'), g('noopMs'), g('fakeAloneMs')],
    ],
  );
  report(
    'memory (heapUsed after gc, MB; memory store and FakeRuntime included) and runtime calls',
    ['N', 'heap', 'KB/container', 'fake alone heap', 'lists to converge', 'mutating to converge', 'resync lists', 'resync mutating', 'no-op mutating'],
    [
      ...results.map((r) => [
        String(r.n), r.heapMB, (r.heapMB * 1024) / r.containers, r.fakeAloneHeapMB,
        String(r.convergeLists), String(r.convergeMutating), String(r.resyncLists), String(r.resyncMutating), String(r.noopMutating),
      ]),
      ['growth', g('heapMB'), '', g('fakeAloneHeapMB'), g('convergeLists'), g('convergeMutating'), g('resyncLists'), '', ''],
    ],
  );
  const orcaOnly = (r: Figures) => r.convergeMs - r.convergeFakeMs;
  process.stdout.write(
    `converged minus time in fake: ${orcaOnly(a).toFixed(0)} → ${orcaOnly(b).toFixed(0)} ms (×${(orcaOnly(b) / orcaOnly(a)).toFixed(1)}); ` +
      `resync minus time in fake: ${(a.resyncMs - a.resyncFakeMs).toFixed(0)} → ${(b.resyncMs - b.resyncFakeMs).toFixed(0)} ms ` +
      `(×${((b.resyncMs - b.resyncFakeMs) / (a.resyncMs - a.resyncFakeMs)).toFixed(1)})\n` +
      `no-op re-apply: all ${a.n} / ${b.n} unchanged, 0 mutating runtime calls (asserted); resync took ${a.resyncMutating} / ${b.resyncMutating} mutating calls\n`,
  );
}

if (process.argv[2] === '--child') await child(Number(process.argv[3]));
else parent();
