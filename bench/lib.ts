import type { EventRecord } from '../store/types.js';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep, systemClock } from '../core/clock.js';

/** Percentile (0..100) of a list of numbers, nearest-rank. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

export const median = (v: number[]) => percentile(v, 50);

/** Wall time of a command in ms (spawned, waited for). Throws when it fails. */
export function timeCommand(cmd: string, args: string[], env: Record<string, string> = {}): number {
  const t0 = systemClock.now();
  const r = spawnSync(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = systemClock.now() - t0;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr.toString()}`);
  return ms;
}

/** Prints rows as an aligned table with a title. */
export function report(title: string, header: string[], rows: Array<Array<string | number>>): void {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? fmt(c) : c)));
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  process.stdout.write(`\n${title}\n${line(header)}\n${cells.map(line).join('\n')}\n`);
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return '-';
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

/** Whether this file is the script node was asked to run. */
export function isMain(metaUrl: string): boolean {
  return process.argv[1] !== undefined && metaUrl === new URL(`file://${process.argv[1]}`).href;
}

/** HTTP status of a GET, or undefined when there is no answer within timeoutMs (refused, reset, slow). */
export async function httpStatus(url: string, timeoutMs: number): Promise<number | undefined> {
  const abort = new AbortController();
  const timer = systemClock.setTimeout(() => abort.abort(), timeoutMs);
  try {
    const res = await fetch(url, { signal: abort.signal });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return undefined;
  } finally {
    systemClock.clearTimeout(timer);
  }
}

/** Numbers as a compact space-separated series (rounded), with `-` for NaN. */
export function series(values: number[]): string {
  return values.map((v) => (Number.isFinite(v) ? v.toFixed(0) : '-')).join(' ');
}

// ---- helpers shared by the proxy, zero-loss, liveness and partition benches ----------------

/** Runs a command to completion; throws with its stderr when it fails. Returns stdout, trimmed. */
export function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}`);
  return r.stdout.trim();
}

export const docker = (args: string[]): string => run('docker', args);

export { containerMainPid } from '../test/e2e/harness.js';

/**
 * Makes sure `bin` is on the PATH, installing the Debian package `pkg` (apt-get update first,
 * quietly) when it is missing. Throws when it still is not there.
 */
export function ensureDebianTool(bin: string, pkg: string): void {
  const has = () => spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0 || spawnSync('test', ['-x', `/usr/sbin/${bin}`]).status === 0;
  if (has()) return;
  process.stderr.write(`${bin} not found: installing the Debian package ${pkg}\n`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  spawnSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env });
  const r = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', pkg], { stdio: ['ignore', 'ignore', 'pipe'], env, encoding: 'utf8' });
  if (r.status !== 0 || !has()) throw new Error(`could not install ${pkg} (for ${bin}): ${r.stderr}`);
}

/** The absolute path of a tool installed under /usr/sbin or on the PATH. */
export function toolPath(bin: string): string {
  const r = spawnSync('sh', ['-c', `command -v ${bin} || { test -x /usr/sbin/${bin} && echo /usr/sbin/${bin}; }`], { encoding: 'utf8' });
  const p = r.stdout.trim();
  if (!p) throw new Error(`${bin} not found`);
  return p;
}

import { freePort, freePorts } from '../test/ports.js';

export { freePort, freePorts };

/** Resolves once something accepts TCP connections on 127.0.0.1:port; throws at the deadline. */
export async function waitForPort(port: number, timeoutMs: number, alive: () => boolean = () => true): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = connect({ host: '127.0.0.1', port });
      sock.once('connect', () => {
        sock.destroy();
        resolve(true);
      });
      sock.once('error', () => resolve(false));
    });
    if (ok) return;
    if (!alive()) throw new Error(`the process that should listen on ${port} is gone`);
    if (performance.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await sleep(systemClock, 20);
  }
}

export interface Nginx {
  pid: number;
  port: number;
  dir: string;
  /** The error log so far. */
  errors: () => string;
  /** SIGTERM to the master by pid, waits for it, removes the temp dir. Idempotent. */
  stop: () => Promise<void>;
}

/**
 * nginx as a reverse proxy in its own temp dir (`-p dir -c dir/nginx.conf`, `daemon off`, a child
 * of this process): one upstream `backend` with `servers` (host:port each) and keepalive 64,
 * HTTP/1.1 to it with `Connection: ""`, access log off, pid/error log/temp paths in the dir.
 * `upstreamExtra` / `locationExtra` are appended inside the upstream / location blocks.
 */
export async function startNginx(o: { servers: string[]; serverName: string; workers?: number | 'auto'; upstreamExtra?: string; locationExtra?: string; serverSuffix?: string }): Promise<Nginx> {
  const nginx = toolPath('nginx');
  const dir = await mkdtemp(join(tmpdir(), 'orca-bench-nginx-'));
  // Workers may run as an unprivileged user: they must be able to reach the temp paths.
  await chmod(dir, 0o755);
  const port = await freePort();
  const conf = `worker_processes ${o.workers ?? 2};
daemon off;
master_process on;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream backend {
${o.servers.map((s) => `    server ${s}${o.serverSuffix ?? ''};`).join('\n')}
    keepalive 64;
${o.upstreamExtra ?? ''}
  }
  server {
    listen 127.0.0.1:${port} default_server;
    server_name ${o.serverName};
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
${o.locationExtra ?? ''}
    }
  }
}
`;
  await writeFile(join(dir, 'nginx.conf'), conf);
  const child = spawn(nginx, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr += d));
  const errors = () => {
    try {
      return readFileSync(join(dir, 'error.log'), 'utf8') + stderr;
    } catch {
      return stderr;
    }
  };
  return supervise('nginx', child, dir, port, errors);
}

/**
 * A proxy child of this process once its port answers: stop() sends SIGTERM by pid, waits for
 * it and removes its temp dir (idempotent); a child that does not start is stopped and its
 * errors are thrown.
 */
async function supervise(name: string, child: ChildProcess, dir: string, port: number, errors: () => string): Promise<Nginx> {
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const alive = () => child.exitCode === null && child.signalCode === null;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (alive()) {
      process.kill(child.pid as number, 'SIGTERM');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitForPort(port, 10_000, alive);
  } catch (err) {
    const e = errors();
    await stop();
    throw new Error(`${name} did not start: ${String(err)}\n${e}`);
  }
  return { pid: child.pid as number, port, dir, errors, stop };
}

export interface Caddy {
  pid: number;
  port: number;
  dir: string;
  /** Its stderr so far (its log), the last 64 KiB. */
  errors: () => string;
  /** SIGTERM by pid, waits for it, removes the temp dir. Idempotent. */
  stop: () => Promise<void>;
}

/**
 * Caddy as a reverse proxy with its defaults (`caddy run --config dir/Caddyfile --adapter
 * caddyfile`, a child of this process): admin endpoint and automatic HTTPS off, no access log, one
 * plain-HTTP site for any host on 127.0.0.1:port (the benches send `Host: bench.localhost`), a
 * `reverse_proxy` to `servers` (host:port each; Caddy's default keep-alive transport and random
 * selection). HOME and XDG dirs point into the temp dir (Caddy autosaves its config there).
 */
export async function startCaddy(o: { servers: string[] }): Promise<Caddy> {
  const caddy = toolPath('caddy');
  const dir = await mkdtemp(join(tmpdir(), 'orca-bench-caddy-'));
  const port = await freePort();
  const conf = `{
	admin off
	auto_https off
}

http://:${port} {
	bind 127.0.0.1
	reverse_proxy ${o.servers.join(' ')}
}
`;
  await writeFile(join(dir, 'Caddyfile'), conf);
  const env = { ...process.env, HOME: dir, XDG_CONFIG_HOME: join(dir, 'config'), XDG_DATA_HOME: join(dir, 'data') };
  const child = spawn(caddy, ['run', '--config', join(dir, 'Caddyfile'), '--adapter', 'caddyfile'], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr = (stderr + d).slice(-65_536)));
  return supervise('caddy', child, dir, port, () => stderr);
}

/** A process and its descendants (from /proc/PID/task/TID/children); [pid] alone once it is gone. */
export function processTree(pid: number): number[] {
  const out = [pid];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const kids = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      for (const k of kids ? kids.split(/\s+/) : []) out.push(...processTree(Number(k)));
    }
  } catch {
    /* gone */
  }
  return out;
}

/** CPU time (user + system, clock ticks) of a process so far; 0 when it is gone. */
export function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

let clkTck: number | undefined;
/** Clock ticks per second of /proc/PID/stat's times (getconf CLK_TCK, usually 100). */
export function ticksPerSec(): number {
  clkTck ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return clkTck;
}

export interface WrkResult {
  rps: number;
  /** Latency percentiles and mean, ms. */
  p50: number;
  p90: number;
  p99: number;
  avg: number;
  max: number;
  requests: number;
  /** "connect 0, read 0, write 0, timeout 0" or "" when wrk printed no socket errors. */
  socketErrors: string;
  non2xx: number;
  raw: string;
}

/** wrk's "1.23ms" / "850.00us" / "1.02s" → ms. */
function wrkMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(v.trim());
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}

/** Parses `wrk --latency` output. */
export function parseWrk(raw: string): WrkResult {
  const pct = (p: string) => wrkMs(new RegExp(`^\\s*${p}%\\s+(\\S+)`, 'm').exec(raw)?.[1] ?? '');
  const lat = /^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)/m.exec(raw);
  const req = /(\d+) requests in/.exec(raw);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(raw);
  const sock = /Socket errors: (.*)$/m.exec(raw);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(raw);
  return {
    rps: Number(rps?.[1] ?? NaN),
    p50: pct('50'),
    p90: pct('90'),
    p99: pct('99'),
    avg: wrkMs(lat?.[1] ?? ''),
    max: wrkMs(lat?.[3] ?? ''),
    requests: Number(req?.[1] ?? NaN),
    socketErrors: sock?.[1]?.trim() ?? '',
    non2xx: Number(non2xx?.[1] ?? 0),
    raw,
  };
}

/**
 * Runs `wrk --latency -tT -cC -dDs [-H 'Host: h'] url` as a child (this event loop stays free)
 * and parses its output. Bounded: killed by pid after duration + 30 s.
 */
export function wrk(url: string, o: { threads: number; connections: number; durationSecs: number; host?: string }): Promise<WrkResult> {
  const args = ['--latency', `-t${o.threads}`, `-c${o.connections}`, `-d${o.durationSecs}s`, '--timeout', '5s'];
  if (o.host) args.push('-H', `Host: ${o.host}`);
  args.push(url);
  return new Promise((resolve, reject) => {
    const child = spawn(toolPath('wrk'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = systemClock.setTimeout(() => child.kill('SIGKILL'), (o.durationSecs + 30) * 1000);
    child.once('close', (code) => {
      systemClock.clearTimeout(timer);
      if (code !== 0) reject(new Error(`wrk ${args.join(' ')} failed (${code}): ${err}${out}`));
      else resolve(parseWrk(out));
    });
  });
}

/** One line of `orca events -o json`. */
export type OrcaEvent = EventRecord;

/** Parses `orca events -o json` output (one object a line). */
export function parseEvents(stdout: string): OrcaEvent[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim().startsWith('{'))
    .map((l) => JSON.parse(l) as OrcaEvent);
}

/** "a=3 b=1" from a count map, largest first. */
export function breakdown(counts: Map<string, number>): string {
  if (counts.size === 0) return '-';
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${n}× ${k}`)
    .join('; ');
}
