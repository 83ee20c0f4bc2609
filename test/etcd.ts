/**
 * Real etcd members for tests: one member, or a cluster of three, each on free loopback ports
 * with its own temporary data directory, started and stopped by pid (never a system etcd, never
 * a broad kill). Needs the `etcd` binary: scripts/ensure-etcd.sh installs Debian's etcd-server.
 *
 *   const etcd = await startEtcd();                 // one member
 *   const three = await startEtcd({ members: 3 });  // a cluster (--initial-cluster …)
 *   three.member(1).kill9();  await three.member(1).restart();
 *   await etcd.stop();                              // every member ended, temp dirs removed
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep, systemClock } from '../core/clock.js';

/** How long a member (or the cluster) may take to say it is healthy. */
const HEALTHY_WITHIN_MS = 30_000;
/** What is kept of a member's output, for the error when it does not come up. */
const OUTPUT_KEPT_CHARS = 20_000;

export interface EtcdMember {
  name: string;
  /** Its client URL, http://127.0.0.1:PORT. */
  endpoint: string;
  /** The pid of the running process (changes on restart); null while it is not running. */
  pid(): number | null;
  running(): boolean;
  /** SIGKILL, then waits for the process to end. Its data directory stays (restart() uses it). */
  kill9(): Promise<void>;
  /** SIGSTOP: the process stays, answers nothing. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** Starts it again over its data directory and waits until it is healthy. */
  restart(): Promise<void>;
  /** Its recent output (for failure messages). */
  output(): string;
}

export interface EtcdProcess {
  /** Every member's client URL (usable as Etcd3's `hosts` and as `--store etcd://…` after stripping the scheme). */
  endpoints: string[];
  /** `etcd://127.0.0.1:P[,127.0.0.1:Q…]`, what `orca server --store` takes. */
  storeUrl: string;
  /** The first member's pid. */
  pid: number;
  members: EtcdMember[];
  member(i: number): EtcdMember;
  /** Ends every member still running (SIGTERM, SIGKILL after 5 s; SIGCONT first if paused) and removes the temp directories. Idempotent. */
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (the kernel's choice; free again once closed). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function healthy(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1_000) });
    const body = (await res.json()) as { health?: unknown };
    return res.ok && (body.health === 'true' || body.health === true);
  } catch {
    return false;
  }
}

interface Plan {
  name: string;
  client: number;
  peer: number;
  dataDir: string;
}

class Member implements EtcdMember {
  readonly name: string;
  readonly endpoint: string;
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private out = '';
  private paused = false;

  constructor(
    private readonly plan: Plan,
    private readonly initialCluster: string,
    private readonly clusterToken: string,
  ) {
    this.name = plan.name;
    this.endpoint = `http://127.0.0.1:${plan.client}`;
  }

  pid(): number | null {
    return this.running() ? (this.child?.pid ?? null) : null;
  }

  running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  output(): string {
    return this.out;
  }

  /** Spawns the process (a new cluster on first start; a restart finds its data directory and ignores the --initial-* flags). */
  spawn(): void {
    const peerUrl = `http://127.0.0.1:${this.plan.peer}`;
    const child = spawn(
      'etcd',
      [
        '--name', this.plan.name,
        '--data-dir', this.plan.dataDir,
        '--listen-client-urls', this.endpoint,
        '--advertise-client-urls', this.endpoint,
        '--listen-peer-urls', peerUrl,
        '--initial-advertise-peer-urls', peerUrl,
        '--initial-cluster', this.initialCluster,
        '--initial-cluster-token', this.clusterToken,
        '--initial-cluster-state', 'new',
        '--log-level', 'warn',
        '--logger', 'zap',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const keep = (d: Buffer) => (this.out = (this.out + d.toString()).slice(-OUTPUT_KEPT_CHARS));
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.once('error', (err) => keep(Buffer.from(`\nspawn etcd: ${err.message} (run scripts/ensure-etcd.sh)\n`)));
    this.child = child;
    this.paused = false;
  }

  async waitHealthy(): Promise<void> {
    const deadline = systemClock.now() + HEALTHY_WITHIN_MS;
    for (;;) {
      if (!this.running()) {
        await this.exited;
        throw new Error(`etcd member ${this.name} exited (${this.child?.exitCode ?? this.child?.signalCode}):\n${this.out}`);
      }
      if (await healthy(this.endpoint)) return;
      if (systemClock.now() > deadline) throw new Error(`etcd member ${this.name} not healthy within ${HEALTHY_WITHIN_MS / 1000} s:\n${this.out}`);
      await sleep(systemClock, 100);
    }
  }

  async kill9(): Promise<void> {
    const pid = this.pid();
    if (pid === null) return;
    process.kill(pid, 'SIGKILL');
    await this.exited;
    this.paused = false;
  }

  pause(): void {
    const pid = this.pid();
    if (pid === null) throw new Error(`etcd member ${this.name} is not running`);
    process.kill(pid, 'SIGSTOP');
    this.paused = true;
  }

  resume(): void {
    const pid = this.pid();
    if (pid === null) return;
    process.kill(pid, 'SIGCONT');
    this.paused = false;
  }

  async restart(): Promise<void> {
    if (this.running()) throw new Error(`etcd member ${this.name} is still running (kill9() first)`);
    this.spawn();
    await this.waitHealthy();
  }

  async end(): Promise<void> {
    const pid = this.pid();
    if (pid === null) return;
    if (this.paused) process.kill(pid, 'SIGCONT');
    process.kill(pid, 'SIGTERM');
    const timer = systemClock.setTimeout(() => {
      const still = this.pid();
      if (still !== null) process.kill(still, 'SIGKILL');
    }, 5_000);
    await this.exited;
    systemClock.clearTimeout(timer);
  }
}

/**
 * Starts `members` etcd members (default 1) as one cluster and resolves once every one of them is
 * healthy (a three-member cluster has elected a leader). On failure, whatever started is ended and
 * the temp directory removed.
 */
export async function startEtcd(opts: { members?: number } = {}): Promise<EtcdProcess> {
  const count = opts.members ?? 1;
  if (!Number.isInteger(count) || count < 1 || count > 7) throw new Error(`members must be 1-7, got ${count}`);
  const root = await mkdtemp(join(tmpdir(), 'orca-etcd-'));
  const plans: Plan[] = [];
  for (let i = 0; i < count; i++) plans.push({ name: `m${i}`, client: await freePort(), peer: await freePort(), dataDir: join(root, `m${i}`) });
  const initialCluster = plans.map((p) => `${p.name}=http://127.0.0.1:${p.peer}`).join(',');
  const token = `orca-test-${randomBytes(6).toString('hex')}`;
  const members = plans.map((p) => new Member(p, initialCluster, token));

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.all(members.map((m) => m.end()));
    await rm(root, { recursive: true, force: true });
  };

  try {
    for (const m of members) m.spawn();
    await Promise.all(members.map((m) => m.waitHealthy()));
  } catch (err) {
    await stop();
    throw err;
  }
  const endpoints = members.map((m) => m.endpoint);
  return {
    endpoints,
    storeUrl: `etcd://${endpoints.map((e) => e.replace(/^http:\/\//, '')).join(',')}`,
    pid: members[0]?.pid() ?? -1,
    members,
    member: (i) => {
      const m = members[i];
      if (!m) throw new Error(`no etcd member ${i} (there are ${members.length})`);
      return m;
    },
    stop,
  };
}
