/**
 * The multi-process proxy (`orca server --proxy-workers 2`, proxy/plane.ts) on real Docker. To
 * know which worker serves a request, every other worker is stopped (SIGSTOP) meanwhile: the
 * kernel then hands each new connection to the one left running. Every request here opens a
 * connection of its own for that reason.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { TEST_IMAGE } from '../images.js';
import { sleep, systemClock } from '../../core/clock.js';
import { cleanup, cli, dockerExec, startServer, stopServer, testEnv, waitFor, type ServerProcess } from './harness.js';

const WORKERS = 2;

interface Instance {
  id: string;
  ready: boolean;
  containerId: string | null;
}

/** Each instance answers / with its container's hostname and /cgi-bin/slow after 3 s (a request to keep in flight). */
function manifest(): string {
  // The CGI script, as base64 (no quoting through TOML and sh); CRLF header lines, as HTTP wants them.
  const cgi = Buffer.from("#!/bin/sh\nsleep 3\nprintf 'Content-Type: text/plain\\r\\n\\r\\nslow-done\\n'\n").toString('base64');
  return `[[service]]
name = "hello"
image = "${TEST_IMAGE}"
# sh stays PID 1 and ends the container at once on SIGTERM: a request still in flight then is cut,
# so only the drain before the stop keeps it whole.
command = ["sh", "-c", "mkdir -p /tmp/www/cgi-bin && hostname > /tmp/www/index.html && echo ok > /tmp/www/ready && echo ${cgi} | base64 -d > /tmp/www/cgi-bin/slow && chmod +x /tmp/www/cgi-bin/slow && httpd -f -p 80 -h /tmp/www & trap 'exit 0' TERM; wait"]
replicas = 2
port = 80
stop_grace_secs = 8

[service.route]
host = "hello.localhost"

[service.readiness]
path = "/ready"
interval_secs = 0.2
timeout_secs = 0.5
failure_threshold = 1
initial_delay_secs = 0
`;
}

/** One GET on a connection of its own (closed after), with a Host header. */
function getFresh(proxy: string, vhost: string, path = '/', timeoutMs = 10_000): Promise<{ status: number; body: string }> {
  const [host, port] = proxy.split(':');
  return new Promise((resolve, reject) => {
    const req = request({ host, port: Number(port), path, method: 'GET', agent: false, headers: { host: vhost, connection: 'close' }, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** The server's workers now, index → pid, from its log ("proxy worker started", the last one per index). */
function workerPids(server: ServerProcess): Map<number, number> {
  const pids = new Map<number, number>();
  for (const line of server.logs().split('\n')) {
    if (!line.includes('"proxy worker started"')) continue;
    const j = JSON.parse(line) as { worker: number; pid: number };
    pids.set(j.worker, j.pid);
  }
  return pids;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('proxy plane: --proxy-workers 2', () => {
  let env: { cluster: string; dataDir: string };
  let server: ServerProcess | undefined;
  let run: ReturnType<typeof cli>;
  /** Workers stopped by `alone` (continued in its finally, and in afterAll should a test fail oddly). */
  const stopped = new Set<number>();

  const instances = async (): Promise<Instance[]> => {
    const r = await run(['status', 'hello', '-o', 'json']);
    return (JSON.parse(r.stdout) as { services: Array<{ instances: Instance[] }> }).services[0]!.instances;
  };
  const apply = async () => {
    const file = join(env.dataDir, 'hello.toml');
    await writeFile(file, manifest());
    const r = await run(['apply', '-f', file, '--wait', '--timeout', '60']);
    expect(r.code, r.stderr).toBe(0);
  };
  const ensureHello = async () => {
    const r = await run(['status', 'hello', '-o', 'json']);
    const ready = r.code === 0 ? (JSON.parse(r.stdout) as { services: Array<{ replicas: { ready: number } }> }).services[0]?.replicas.ready : 0;
    if (ready !== 2) await apply();
    await waitFor(async () => (await instances()).filter((i) => i.ready).length === 2, 20_000, 'two ready hello instances');
  };
  const get = (path = '/') => getFresh(server!.proxy!, 'hello.localhost', path);
  /** Runs fn while every worker but `pid` is stopped. */
  const alone = async <T>(pid: number, fn: () => Promise<T>): Promise<T> => {
    const others = [...workerPids(server!).values()].filter((p) => p !== pid);
    for (const p of others) {
      process.kill(p, 'SIGSTOP');
      stopped.add(p);
    }
    try {
      return await fn();
    } finally {
      for (const p of others) {
        process.kill(p, 'SIGCONT');
        stopped.delete(p);
      }
    }
  };
  const servedBy = async (n: number) => {
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) {
      const r = await get();
      expect(r.status).toBe(200);
      seen.add(r.body.trim());
    }
    return seen;
  };
  const metric = async (name: string, labels: string[]): Promise<number> => {
    const token = readFileSync(join(env.dataDir, 'cluster.token'), 'utf8').trim();
    const text = await (await fetch(`${server!.api}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && labels.every((x) => l.includes(x)));
    return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
  };

  beforeAll(async () => {
    env = await testEnv('plane');
    server = await startServer({ ...env, extra: ['--watchdog-interval', '60', '--proxy-workers', String(WORKERS)] });
    run = cli(server, env.dataDir);
  });

  afterAll(async () => {
    for (const p of stopped) process.kill(p, 'SIGCONT');
    await stopServer(server);
    await cleanup(env.cluster, env.dataDir);
  });

  it('runs 2 workers, and each of them serves the routes', async () => {
    await ensureHello();
    const pids = workerPids(server!);
    expect(pids.size).toBe(WORKERS);
    for (const pid of pids.values()) {
      expect(alive(pid)).toBe(true);
      // Round-robin is per worker: each one alone still reaches both instances.
      expect((await alone(pid, () => servedBy(4))).size).toBe(2);
    }
  });

  it('a route change reaches every worker: once one request sees it, each worker alone serves it within a second', async () => {
    await ensureHello();
    const [a] = await instances();
    const idA = a!.containerId!.slice(0, 12);
    try {
      dockerExec(a!.containerId!, 'rm', '/tmp/www/ready');
      await waitFor(async () => !(await servedBy(2)).has(idA), 5_000, 'the unready instance out of the table');
      // Each worker reads the change from its own pipe: a worker just continued from SIGSTOP (or
      // on a loaded machine) may accept a connection before it reads the queued message, so
      // "at once" is within a bound, not in the same instant.
      for (const pid of workerPids(server!).values()) {
        await waitFor(async () => !(await alone(pid, () => servedBy(4))).has(idA), 1_000, `worker ${pid} without the unready instance`);
      }
    } finally {
      dockerExec(a!.containerId!, 'touch', '/tmp/www/ready');
    }
    await waitFor(async () => (await servedBy(4)).has(idA), 5_000, 'back in rotation');
  });

  it('metrics of every worker add up in /metrics', async () => {
    await ensureHello();
    const labels = ['route="hello"', 'status="200"'];
    const before = await metric('orca_proxy_requests_total', labels);
    const upstreamBefore = await metric('orca_proxy_upstream_duration_seconds_count', ['route="hello"']);
    for (const pid of workerPids(server!).values()) await alone(pid, () => servedBy(10));
    await waitFor(async () => (await metric('orca_proxy_requests_total', labels)) >= before + 10 * WORKERS, 5_000, 'the requests counted');
    await sleep(systemClock, 300); // a late batch would show as too many
    expect(await metric('orca_proxy_requests_total', labels)).toBe(before + 10 * WORKERS);
    expect(await metric('orca_proxy_upstream_duration_seconds_count', ['route="hello"'])).toBe(upstreamBefore + 10 * WORKERS);
  });

  it('a killed worker is logged and replaced; the other serves meanwhile', async () => {
    await ensureHello();
    const before = workerPids(server!);
    const victim = before.get(0)!;
    process.kill(victim, 'SIGKILL');
    // New connections go to the worker left: none is lost.
    for (let i = 0; i < 10; i++) expect((await get()).status).toBe(200);
    await waitFor(() => workerPids(server!).get(0) !== victim, 10_000, 'a new worker 0');
    expect(server!.logs()).toMatch(new RegExp(`"pid":${victim},"code":null,"signal":"SIGKILL".*"proxy worker ended; starting another"`));
    const replacement = workerPids(server!).get(0)!;
    // It has the table and listens: alone, it serves.
    await waitFor(async () => (await alone(replacement, () => get())).status === 200, 10_000, 'the new worker serving');
    expect(await alone(replacement, () => servedBy(4))).toHaveProperty('size', 2);
  });

  it('drain waits for requests in flight on every worker before the instance stops', async () => {
    await ensureHello();
    const pids = [...workerPids(server!).values()];
    // One slow request (3 s at the backend) in flight on each worker.
    const inflight: Array<Promise<{ status: number; body: string }>> = [];
    for (const pid of pids) {
      await alone(pid, async () => {
        inflight.push(get('/cgi-bin/slow'));
        await sleep(systemClock, 300); // accepted by this worker before the others run again
      });
    }
    const deleted = await run(['delete', 'hello']);
    expect(deleted.code, deleted.stderr).toBe(0);
    const answers = await Promise.all(inflight);
    expect(answers.map((a) => `${a.status} ${a.body.trim()}`)).toEqual(pids.map(() => '200 slow-done'));
    await waitFor(async () => (await get()).status === 404, 15_000, '404 once deleted');
  });

  it('Ctrl-C to the whole group: requests in flight on every worker finish, the workers end, none is restarted', async () => {
    await ensureHello();
    const pids = [...workerPids(server!).values()];
    const inflight: Array<Promise<{ status: number; body: string }>> = [];
    for (const pid of pids) {
      await alone(pid, async () => {
        inflight.push(get('/cgi-bin/slow'));
        await sleep(systemClock, 300);
      });
    }
    // As a terminal's Ctrl-C does: every process of the group at once.
    for (const pid of [...pids, server!.pid]) process.kill(pid, 'SIGINT');
    const answers = await Promise.all(inflight);
    expect(answers.map((a) => `${a.status} ${a.body.trim()}`)).toEqual(pids.map(() => '200 slow-done'));
    await server!.exited;
    await waitFor(() => !pids.some(alive), 10_000, 'workers gone');
    expect(server!.logs()).not.toMatch(/"signal":"SIGINT"[^\n]*"proxy worker ended/);
  });

  it('workers end when their server dies (SIGKILL)', async () => {
    const other = await testEnv('plane-kill');
    const s = await startServer({ ...other, extra: ['--no-local-agent', '--proxy-workers', String(WORKERS)] });
    try {
      const pids = [...workerPids(s).values()];
      expect(pids).toHaveLength(WORKERS);
      expect(pids.every(alive)).toBe(true);
      await stopServer(s, 'SIGKILL');
      await waitFor(() => !pids.some(alive), 10_000, 'workers gone after their server');
    } finally {
      await stopServer(s);
      await cleanup(other.cluster, other.dataDir);
    }
  });
});
