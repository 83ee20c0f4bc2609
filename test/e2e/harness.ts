import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { DockerRuntime } from '../../runtime/docker-runtime.js';
import { clusterNetwork, LABEL } from '../../runtime/labels.js';
import { sleep, systemClock } from '../../core/clock.js';
import { isOrcaError } from '../../core/errors.js';

/** The repository root (works from test/e2e and from dist/test/e2e). */
export const ROOT = findRoot(import.meta.dirname);
function findRoot(start: string): string {
  let dir = start;
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, 'bin/orca'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no repository root above ${start}`);
    dir = up;
  }
  return dir;
}
export const ORCA = join(ROOT, 'bin/orca');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A unique cluster id and data directory for one test file. */
export async function testEnv(prefix = 'e2e') {
  const cluster = `orca-${prefix}-${randomBytes(4).toString('hex')}`;
  const dataDir = await mkdtemp(join(tmpdir(), `${cluster}-`));
  return { cluster, dataDir };
}

/** Runs `orca ARGS` as a user would; resolves with exit code and output. */
export function orca(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [ORCA, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = systemClock.setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`orca ${args.join(' ')} timed out; stdout=${stdout} stderr=${stderr}`));
    }, timeoutMs);
    child.on('close', (code) => {
      systemClock.clearTimeout(timer);
      resolvePromise({ code: code ?? -1, stdout, stderr });
    });
  });
}

export interface ServerProcess {
  child: ChildProcess;
  api: string;
  /** The proxy's host:port, once the server is ready. */
  proxy: string | null;
  pid: number;
  logs: () => string;
  /** Waits for the process to end. */
  exited: Promise<number | null>;
}

/**
 * `ORCA_E2E_PROXY_WORKERS=N` runs every test server's proxy in N worker processes
 * (`--proxy-workers N`), unless the test sets the flag itself: the proxy's tests then run against
 * the multi-process proxy too.
 */
function proxyWorkersFlag(extra: string[] | undefined): string[] {
  const n = process.env.ORCA_E2E_PROXY_WORKERS;
  return n && !(extra ?? []).includes('--proxy-workers') ? ['--proxy-workers', n] : [];
}

/**
 * Starts `orca server` on ephemeral ports and resolves once /healthz says ready.
 * Rejects with the server's output if it exits first.
 */
export async function startServer(o: { cluster: string; dataDir: string; extra?: string[]; node?: string; waitReady?: boolean; env?: Record<string, string> }): Promise<ServerProcess> {
  const child = spawn(
    process.execPath,
    [
      ORCA,
      'server',
      '--data-dir',
      o.dataDir,
      '--cluster-id',
      o.cluster,
      '--node-name',
      o.node ?? 'n1',
      '--api-listen',
      '127.0.0.1:0',
      '--proxy-listen',
      '127.0.0.1:0',
      ...proxyWorkersFlag(o.extra),
      ...(o.extra ?? []),
    ],
    { env: { ...process.env, ORCA_LOG_LEVEL: 'debug', ...o.env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const api = await new Promise<string>((resolveApi, reject) => {
    const onData = () => {
      for (const line of out.split('\n')) {
        if (!line.includes('api listening')) continue;
        try {
          resolveApi((JSON.parse(line) as { api: string }).api);
          child.stdout?.off('data', onData);
          return;
        } catch {
          /* partial line */
        }
      }
    };
    child.stdout?.on('data', onData);
    void exited.then((code) => reject(new Error(`orca server exited with ${code}:\n${out}`)));
  });
  const proc: ServerProcess = { child, api, proxy: null, pid: child.pid as number, logs: () => out, exited };
  if (o.waitReady !== false) {
    await waitFor(async () => (await fetch(`${api}/healthz`)).status === 200, 30_000, `server ready\n${out}`);
    const line = out.split('\n').find((l) => l.includes('"proxy listening"'));
    if (line) proc.proxy = (JSON.parse(line) as { proxy: string }).proxy.replace(/^http:\/\//, '');
  }
  return proc;
}

/** Stops a server we started: SIGTERM (or the given signal) by pid, then waits. */
export async function stopServer(s: ServerProcess | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!s || s.child.exitCode !== null || s.child.signalCode !== null) return;
  process.kill(s.pid, signal);
  await s.exited;
}

/** Polls until fn is true or the time is up (then throws with what). */
export async function waitFor(fn: () => Promise<boolean> | boolean, timeoutMs: number, what: string, everyMs = 100): Promise<void> {
  const deadline = systemClock.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      if (await fn()) return;
    } catch (err) {
      lastErr = err;
    }
    if (systemClock.now() > deadline) throw new Error(`timed out waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ''}`);
    await sleep(systemClock, everyMs);
  }
}

/**
 * Checks fn again and again for ms and throws (with what) the first time it is false: for
 * "nothing changes" claims, which no condition can end early. It fails as soon as something
 * changes, unlike a sleep followed by one look.
 */
export async function holdsFor(fn: () => Promise<boolean> | boolean, ms: number, what: string, everyMs = 100): Promise<void> {
  const end = systemClock.now() + ms;
  do {
    if (!(await fn())) throw new Error(`no longer true: ${what}`);
    await sleep(systemClock, everyMs);
  } while (systemClock.now() < end);
  if (!(await fn())) throw new Error(`no longer true: ${what}`);
}

/**
 * Removes every container of this test's cluster (and only those), then its cluster network
 * (the agents never remove it) and its named volumes (nor those), and the data dir.
 */
export async function cleanup(cluster: string, dataDir: string): Promise<void> {
  const rt = new DockerRuntime();
  const mine = await rt.list({ [LABEL.cluster]: cluster });
  // 8 at a time: a hundred force-removals at once left Docker 20.10 with a stale endpoint on the
  // network (no container, yet "has active endpoints" until the daemon restarts).
  for (let i = 0; i < mine.length; i += 8) await Promise.all(mine.slice(i, i + 8).map((c) => rt.remove(c.id, { force: true })));
  await removeNetworkPatiently(rt, clusterNetwork(cluster).name);
  for (const v of await rt.listVolumes({ [LABEL.cluster]: cluster })) await rt.removeVolume(v.name);
  await rm(dataDir, { recursive: true, force: true });
}

/**
 * Removes a network, retrying for up to 5 s while Docker still counts endpoints of containers
 * just removed; a network that stays busy past that is left with a warning (a daemon-side stale
 * endpoint that only a daemon restart clears), not a failed test or bench.
 */
async function removeNetworkPatiently(rt: DockerRuntime, name: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await rt.removeNetwork(name);
      return;
    } catch (err) {
      if (!isOrcaError(err, 'ORCA_RUNTIME_CONFLICT')) throw err;
      if (attempt >= 20) {
        process.stderr.write(`warning: network ${name} kept: ${(err as Error).message}\n`);
        return;
      }
      await sleep(systemClock, 250);
    }
  }
}

/** `orca …` with the API and data dir of a running server. */
export function cli(server: ServerProcess, dataDir: string) {
  return (args: string[], timeoutMs?: number) => orca(['--api', server.api, '--data-dir', dataDir, ...args], {}, timeoutMs);
}

export interface AgentProcess {
  child: ChildProcess;
  pid: number;
  logs: () => string;
  exited: Promise<number | null>;
}

/** Starts `orca agent` joining a server (its own node name and data directory). */
/**
 * Starts `orca agent` with the admin token (`token`, as --token), a join token file (`tokenFile`,
 * as --token-file), or neither (`env` may carry $ORCA_JOIN_TOKEN; a node.credential in its data
 * directory may be all it has). Without `token`, $ORCA_TOKEN is not passed on: such an agent
 * never sees the admin token.
 */
export function startAgentProcess(o: { api: string; node: string; dataDir: string; token?: string; tokenFile?: string; env?: Record<string, string>; cluster: string; extra?: string[] }): AgentProcess {
  const env: Record<string, string | undefined> = { ...process.env, ORCA_LOG_LEVEL: 'debug', ...o.env };
  if (o.token === undefined) delete env.ORCA_TOKEN;
  const child = spawn(
    process.execPath,
    [
      ORCA,
      'agent',
      '--join',
      o.api,
      '--node-name',
      o.node,
      '--data-dir',
      o.dataDir,
      ...(o.token !== undefined ? ['--token', o.token] : []),
      ...(o.tokenFile !== undefined ? ['--token-file', o.tokenFile] : []),
      '--cluster-id',
      o.cluster,
      ...(o.extra ?? []),
    ],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, pid: child.pid as number, logs: () => out, exited };
}

/** Ends an agent we started, by pid (resuming it first if it was stopped). */
export async function stopAgentProcess(a: AgentProcess | undefined): Promise<void> {
  if (!a || a.child.exitCode !== null || a.child.signalCode !== null) return;
  process.kill(a.pid, 'SIGCONT');
  process.kill(a.pid, 'SIGTERM');
  await a.exited;
}

/** Host pid of a container's main process (docker-init when init is on): what `kill -9` hits. */
export function containerMainPid(id: string): number {
  const pid = Number(execFileSync('docker', ['inspect', '-f', '{{.State.Pid}}', id]).toString().trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`container ${id.slice(0, 12)} has no main process (pid ${pid})`);
  return pid;
}

/** Runs a command inside a container, as an operator's `docker exec` would. */
export function dockerExec(id: string, ...cmd: string[]): Buffer {
  return execFileSync('docker', ['exec', id, ...cmd]);
}
