/**
 * The floor of an idle server's probe work, for bench/idle: the same HTTP probes the idle
 * services ask for — GET /ready every second and GET /healthz every 2 s on each published port —
 * made by a bare Node process with nothing else to do, using the server's own check
 * (controllers/health/checks.ts httpCheck: a plain socket, request line out, status line in,
 * closed). Its CPU is what those probes cost on this machine before any orchestration: the
 * connect, write and close on loopback through Docker's port forwarder are most of it. Runs until
 * SIGTERM, then prints `probe-floor: N checks, M failed` and exits; a failed check is never fatal.
 *
 *   node dist/bench/probe-floor.js --ports 32768,32769,… [--host 127.0.0.1]
 */
import { httpCheck } from '../controllers/health/checks.js';

function parseArgs(argv: string[]): { ports: number[]; host: string } {
  let ports: number[] = [];
  let host = '127.0.0.1';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[++i] ?? '';
    if (a === '--ports') ports = v.split(',').map(Number);
    else if (a === '--host') host = v;
    else throw new Error(`unknown argument ${JSON.stringify(a)}; usage: node dist/bench/probe-floor.js --ports P,P,… [--host 127.0.0.1]`);
  }
  if (ports.length === 0 || ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) throw new Error('--ports needs a comma-separated list of TCP ports');
  return { ports, host };
}

const { ports, host } = parseArgs(process.argv.slice(2));
/** Each second is cut in PHASES; a port is probed in its own phase, so the probes are spread as the server spreads its own (not a burst that would slow the server's probes down). */
const PHASES = 8;
let tick = 0;
let checked = 0;
let failed = 0;
const timer = setInterval(() => {
  const phase = tick % PHASES;
  const second = Math.floor(tick / PHASES);
  tick++;
  ports.forEach((port, i) => {
    if (i % PHASES !== phase) return;
    const checks = [httpCheck(host, port, '/ready', 1000)];
    if (second % 2 === 0) checks.push(httpCheck(host, port, '/healthz', 1000));
    for (const c of checks) {
      void c.then((r) => {
        checked++;
        if (!r.ok) failed++;
      });
    }
  });
}, 1000 / PHASES);
process.on('SIGTERM', () => {
  clearInterval(timer);
  process.stdout.write(`probe-floor: ${checked} checks, ${failed} failed\n`, () => process.exit(0));
});
