/**
 * The dashboard (SPEC §6) open in chromium through a crash storm: does the page stay bounded and
 * quick? A real server on real Docker; `services` services whose containers exit a second after
 * they start (restart backoff 0.2 s doubling to 2 s), so the stream carries a steady storm of
 * status changes, events and recoveries for the whole run; the dashboard signed in and open in
 * headless Debian chromium (playwright-core).
 *
 * Printed: the page's JS heap in use (CDP Performance.getMetrics JSHeapUsedSize, and again after
 * a forced garbage collection), its element count and DOM node count (CDP Nodes), log rows and
 * recoveries kept, at the start, every minute and at the end; and event → pixel: every 10 s a
 * separate healthy service's container is killed with kill -9 and the time from the kill (host
 * clock) to the page changing that service's row (window.__orcaUi.lastRenderAt, same machine's
 * clock) is taken — p50/p95/max over the run. The baseline is the page at the start of the storm.
 *
 *   node dist/bench/dashboard.js [--minutes N (default 10)] [--services N (default 20)] [--quick]
 *
 * --quick: 1 minute, 5 services, a reading every 20 s (to check the bench itself works).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { sleep, systemClock } from '../core/clock.js';
import { TEST_IMAGE, ensureTestImages } from '../test/images.js';
import { DockerRuntime } from '../runtime/docker-runtime.js';
import { cleanup, orca, startServer, stopServer, testEnv, waitFor, type ServerProcess } from '../test/e2e/harness.js';
import { launchChromium, lastRenderAt, pageMetrics, signIn } from '../test/browser.js';
import { containerMainPid, percentile, report, run } from './lib.js';

function parseArgs(argv: string[]) {
  const o = { minutes: 10, services: 20, readEverySec: 60, quick: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) usage(`${a} needs a positive number`);
      return v;
    };
    if (a === '--minutes') o.minutes = val();
    else if (a === '--services') o.services = Math.round(val());
    else if (a === '--quick') o.quick = true;
    else usage(`unknown argument ${a}`);
  }
  if (o.quick) Object.assign(o, { minutes: 1, services: 5, readEverySec: 20 });
  if (o.services > 200) usage('--services: at most 200');
  return o;
}
function usage(why: string): never {
  process.stderr.write(`${why}\nusage: node dist/bench/dashboard.js [--minutes N] [--services N] [--quick]\n`);
  process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));
const out = (s: string) => process.stdout.write(`${s}\n`);
const MB = (b: number) => (b / 1048576).toFixed(1);
const PROBE = 'probe';
const KILL_EVERY_MS = 10_000;

interface Reading {
  at: string;
  heapBytes: number;
  heapAfterGcBytes: number;
  elements: number;
  domNodes: number;
  logRows: number;
  recoveries: number;
  rendered: number;
}

const started = performance.now();
const env = await testEnv('bench-dash');
let server: ServerProcess | undefined;
const browser = await launchChromium();
try {
  await ensureTestImages(new DockerRuntime());
  server = await startServer({ ...env, extra: ['--watchdog-interval', '60'] });
  const token = (await readFile(join(env.dataDir, 'cluster.token'), 'utf8')).trim();
  const dir = await mkdtemp(join(tmpdir(), 'orca-bench-dash-'));
  const file = join(dir, 'storm.toml');
  let toml = `[[service]]\nname = "${PROBE}"\nimage = "${TEST_IMAGE}"\ncommand = ["sleep", "3600"]\nstop_grace_secs = 0.5\n[service.restart]\nbackoff_initial_secs = 0.05\nbackoff_max_secs = 0.05\nreset_after_secs = 0.05\n`;
  for (let i = 0; i < opts.services; i++) {
    toml += `\n[[service]]\nname = "storm-${String(i).padStart(3, '0')}"\nimage = "${TEST_IMAGE}"\ncommand = ["sh", "-c", "sleep 1; exit 1"]\nstop_grace_secs = 0.2\n[service.restart]\nbackoff_initial_secs = 0.2\nbackoff_max_secs = 2\nreset_after_secs = 30\n`;
  }
  await writeFile(file, toml);
  const applied = await orca(['--api', server.api, '--data-dir', env.dataDir, 'apply', '-f', file]);
  if (applied.code !== 0) throw new Error(`apply failed: ${applied.stderr}`);

  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await signIn(page, server.api, token);
  await page.locator(`tr[data-testid="service-row"][data-service="${PROBE}"][data-state="healthy"]`).waitFor({ timeout: 60_000 });

  const cdp = await ctx.newCDPSession(page);
  const read = async (label: string): Promise<Reading> => {
    const before = await pageMetrics(page);
    await cdp.send('HeapProfiler.collectGarbage');
    const after = await pageMetrics(page);
    const inPage = await page.evaluate(() => ({
      elements: document.getElementsByTagName('*').length,
      logRows: document.querySelectorAll('[data-testid="event-row"]').length,
      recoveries: Number(document.querySelector('[data-testid="recovery-chart"]')?.getAttribute('data-count') ?? 0),
      rendered: (window as unknown as { __orcaUi: { rendered: number } }).__orcaUi.rendered,
    }));
    const r = { at: label, heapBytes: before.heapBytes, heapAfterGcBytes: after.heapBytes, domNodes: after.domNodes, ...inPage };
    out(`${label}: heap ${MB(r.heapBytes)} MB (${MB(r.heapAfterGcBytes)} MB after GC), ${r.elements} elements, ${r.domNodes} DOM nodes, ${r.logRows} log rows, ${r.recoveries} recoveries, ${r.rendered} row renders`);
    return r;
  };

  const readings: Reading[] = [await read('start')];
  const e2p: number[] = [];
  const runMs = opts.minutes * 60_000;
  const t0 = systemClock.now();
  let nextRead = t0 + opts.readEverySec * 1000;
  let nextKill = t0 + 2000;
  let killsMissed = 0;
  while (systemClock.now() - t0 < runMs) {
    const now = systemClock.now();
    if (now >= nextKill) {
      nextKill = now + KILL_EVERY_MS;
      try {
        const st = JSON.parse((await orca(['--api', server.api, '--data-dir', env.dataDir, 'status', PROBE, '-o', 'json'])).stdout) as {
          services: Array<{ instances: Array<{ state: string; containerId: string | null }> }>;
        };
        const victim = st.services[0]?.instances.find((i) => i.state === 'running' && i.containerId);
        if (!victim) throw new Error('probe not running');
        const pid = containerMainPid(victim.containerId!);
        const k = Date.now();
        process.kill(pid, 'SIGKILL');
        let at = 0;
        await waitFor(async () => (at = await lastRenderAt(page, PROBE)) > k, 20_000, 'probe row changed', 10);
        e2p.push(at - k);
      } catch (err) {
        killsMissed++;
        out(`a probe kill was not measured: ${(err as Error).message}`);
      }
    }
    if (systemClock.now() >= nextRead) {
      nextRead += opts.readEverySec * 1000;
      readings.push(await read(`${((systemClock.now() - t0) / 60_000).toFixed(1)} min`));
    }
    await sleep(systemClock, 200);
  }
  readings.push(await read('end'));
  const crashes = run('sh', ['-c', `docker ps -a -q --filter label=orca.cluster=${env.cluster} | wc -l`]);

  report(
    `dashboard in chromium, ${opts.services} crash-looping services (exit 1 s after start) + 1 probe, ${opts.minutes} min`,
    ['when', 'heap MB', 'heap after GC MB', 'elements', 'DOM nodes', 'log rows', 'recoveries', 'row renders'],
    readings.map((r) => [r.at, MB(r.heapBytes), MB(r.heapAfterGcBytes), String(r.elements), String(r.domNodes), String(r.logRows), String(r.recoveries), String(r.rendered)]),
  );
  const first = readings[0]!;
  const last = readings.at(-1)!;
  report('event → pixel: kill -9 of the probe container → its row changed on the page, ms', ['kills', 'p50', 'p95', 'max', 'not measured'], [
    [String(e2p.length), percentile(e2p, 50), percentile(e2p, 95), e2p.length ? Math.max(...e2p) : NaN, String(killsMissed)],
  ]);
  out(
    `heap after GC: ${MB(first.heapAfterGcBytes)} MB at the start → ${MB(last.heapAfterGcBytes)} MB at the end; elements ${first.elements} → ${last.elements}; ` +
      `${last.rendered - first.rendered} row renders; ${crashes.trim()} containers of the cluster on Docker now; page errors: ${pageErrors.length === 0 ? 'none' : pageErrors.join('; ')}`,
  );
  await ctx.close();
} finally {
  await browser.close();
  await stopServer(server);
  // Docker may hold the cluster network's endpoints a moment after its containers are gone.
  for (let attempt = 1; ; attempt++) {
    try {
      await cleanup(env.cluster, env.dataDir);
      break;
    } catch (err) {
      if (attempt === 5) {
        await rm(env.dataDir, { recursive: true, force: true });
        out(`cleanup left something behind: ${(err as Error).message}`);
        break;
      }
      await sleep(systemClock, 2000);
    }
  }
  out(`total ${((performance.now() - started) / 1000).toFixed(0)} s`);
}
