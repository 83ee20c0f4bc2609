/**
 * The performance benches of the README's table in one go, one after another (never two at once:
 * they share the machine's cores with their baselines), each with the arguments that keep the
 * whole run under 15 minutes on 2 cores. Every bench prints its own table — Orca beside its
 * baseline from the same run, the median round with all rounds — and this prints how long each
 * took at the end. Output is also written to a log file (the last line says where).
 *
 *   node dist/bench/all.js [--only name,name] [--list]
 *
 * Run `bash scripts/ensure-docker.sh && npm run build` first, or `npm run bench`, which does both.
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { systemClock } from '../core/clock.js';
import { report } from './lib.js';

interface Entry {
  name: string;
  /** Script in dist/bench, without .js. */
  script: string;
  args: string[];
  what: string;
}

/** In the order of the table; the arguments keep each one short but still in rounds. */
export const ENTRIES: Entry[] = [
  { name: 'proxy', script: 'proxy', args: ['5', '3', 'B'], what: 'proxy req/s and p99, keep-alive backend (set B), vs nginx and Caddy' },
  { name: 'proxy-slow', script: 'proxy-slow', args: [], what: 'one request while a slow backend is saturated vs nginx and Caddy' },
  { name: 'proxy-scaling', script: 'proxy-scaling', args: ['5', '3'], what: 'proxy with 1, 2, 4 workers vs nginx with as many' },
  { name: 'converge', script: 'converge', args: ['--rounds', '3'], what: 'apply 40 services → all ready vs docker run -d ×40 at concurrency 8' },
  { name: 'cli', script: 'cli-latency', args: [], what: '`orca status` wall time vs node -e 0' },
  { name: 'idle', script: 'idle', args: [], what: 'idle server CPU and RSS at 5, 20, 100 services vs dockerd and node' },
];

function parseArgs(argv: string[]): { only: Set<string> | null; list: boolean } {
  let only: Set<string> | null = null;
  let list = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--list') list = true;
    else if (a === '--only') {
      const v = argv[++i];
      if (!v) throw new Error('--only needs a comma-separated list of names (see --list)');
      only = new Set(v.split(',').map((s) => s.trim()).filter(Boolean));
      const unknown = [...only].filter((n) => !ENTRIES.some((e) => e.name === n));
      if (unknown.length) throw new Error(`--only: no bench named ${unknown.join(', ')} (see --list)`);
    } else throw new Error(`unknown argument ${JSON.stringify(a)}; usage: node dist/bench/all.js [--only name,name] [--list]`);
  }
  return { only, list };
}

async function main(): Promise<void> {
  let opts: ReturnType<typeof parseArgs>;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n`);
    process.exit(2);
  }
  if (opts.list) {
    for (const e of ENTRIES) process.stdout.write(`${e.name.padEnd(14)} node dist/bench/${e.script}.js ${e.args.join(' ')}  — ${e.what}\n`);
    return;
  }
  const here = dirname(fileURLToPath(import.meta.url));
  const logPath = join(await mkdtemp(join(tmpdir(), 'orca-bench-all-')), 'bench.log');
  const log = createWriteStream(logPath);
  const out = (s: string) => {
    process.stdout.write(s);
    log.write(s);
  };
  const rows: Array<[string, string, string]> = [];
  const t0 = systemClock.now();
  let failed = 0;
  for (const e of ENTRIES) {
    if (opts.only && !opts.only.has(e.name)) continue;
    out(`\n===== ${e.name}: ${e.what}\n      node dist/bench/${e.script}.js ${e.args.join(' ')}\n`);
    const started = systemClock.now();
    const code = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, [join(here, `${e.script}.js`), ...e.args], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.on('data', (b: Buffer) => out(b.toString()));
      child.stderr.on('data', (b: Buffer) => {
        process.stderr.write(b);
        log.write(b);
      });
      child.on('error', (err) => {
        out(`could not start: ${err.message}\n`);
        resolve(1);
      });
      child.on('close', (c, sig) => resolve(c ?? (sig ? 1 : 0)));
    });
    const secs = (systemClock.now() - started) / 1000;
    if (code !== 0) failed++;
    rows.push([e.name, code === 0 ? 'ok' : `failed (exit ${code})`, secs.toFixed(0)]);
  }
  const total = (systemClock.now() - t0) / 1000;
  report(`bench/all: ${rows.length} benches in ${(total / 60).toFixed(1)} min`, ['bench', 'result', 'seconds'], rows);
  out(`\nfull output: ${logPath}\n`);
  await new Promise<void>((r) => log.end(r));
  process.exitCode = failed ? 1 : 0;
}

await main();
