/**
 * Real etcd members for tests: one member, or a cluster of three, each on free loopback ports
 * with its own temporary data directory, started and stopped by pid (never a system etcd, never
 * a broad kill). Needs the `etcd` binary: scripts/ensure-etcd.sh installs Debian's etcd-server.
 *
 *   const etcd = await startEtcd();                 // one member
 *   const three = await startEtcd({ members: 3 });  // a cluster (--initial-cluster …)
 *   three.member(1).kill9();  await three.member(1).restart();
 *   const tls = await startEtcd({ tls: true });     // https:// clients, client certificates required
 *   await etcd.stop();                              // every member ended, temp dirs removed
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep, systemClock } from '../core/clock.js';
import { freePorts } from './ports.js';

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

/** PEM files of a TLS etcd (startEtcd({ tls: true })): the CA, and a client certificate and key it accepts. */
export interface EtcdTlsFiles {
  ca: string;
  cert: string;
  key: string;
}

export interface EtcdProcess {
  /** Every member's client URL (usable as Etcd3's `hosts` and as `--store etcd://…` after stripping the scheme). */
  endpoints: string[];
  /** With `tls`: the files for `--etcd-ca`, `--etcd-cert`, `--etcd-key`. */
  tls?: EtcdTlsFiles;
  /** `etcd://127.0.0.1:P[,127.0.0.1:Q…]`, what `orca server --store` takes. */
  storeUrl: string;
  /** The first member's pid. */
  pid: number;
  members: EtcdMember[];
  member(i: number): EtcdMember;
  /** Ends every member still running (SIGTERM, SIGKILL after 5 s; SIGCONT first if paused) and removes the temp directories. Idempotent. */
  stop(): Promise<void>;
}

export { freePort } from './ports.js';

async function healthy(endpoint: string, tls?: EtcdTlsFiles): Promise<boolean> {
  if (tls) {
    return new Promise((resolve) => {
      const req = request(`${endpoint}/health`, { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key), servername: 'localhost', timeout: 1_000 }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body = (body + d.toString()).slice(0, 1_000)));
        res.on('end', () => resolve(res.statusCode === 200 && /"health":\s*"true"/.test(body)));
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(false));
      req.end();
    });
  }
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
    private readonly tls: (EtcdTlsFiles & { serverCert: string; serverKey: string }) | undefined,
  ) {
    this.name = plan.name;
    this.endpoint = `${tls ? 'https' : 'http'}://127.0.0.1:${plan.client}`;
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
        ...(this.tls ? ['--cert-file', this.tls.serverCert, '--key-file', this.tls.serverKey, '--trusted-ca-file', this.tls.ca, '--client-cert-auth'] : []),
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
      if (await healthy(this.endpoint, this.tls)) return;
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
export async function startEtcd(opts: { members?: number; tls?: boolean } = {}): Promise<EtcdProcess> {
  const count = opts.members ?? 1;
  if (!Number.isInteger(count) || count < 1 || count > 7) throw new Error(`members must be 1-7, got ${count}`);
  const root = await mkdtemp(join(tmpdir(), 'orca-etcd-'));
  const plans: Plan[] = [];
  const ports = await freePorts(2 * count);
  for (let i = 0; i < count; i++) plans.push({ name: `m${i}`, client: ports[2 * i]!, peer: ports[2 * i + 1]!, dataDir: join(root, `m${i}`) });
  const initialCluster = plans.map((p) => `${p.name}=http://127.0.0.1:${p.peer}`).join(',');
  const token = `orca-test-${randomBytes(6).toString('hex')}`;
  const tls = opts.tls ? await makeTlsFiles(root) : undefined;
  const members = plans.map((p) => new Member(p, initialCluster, token, tls));

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
    storeUrl: `etcd://${endpoints.map((e) => e.replace(/^https?:\/\//, '')).join(',')}`,
    ...(tls ? { tls: { ca: tls.ca, cert: tls.cert, key: tls.key } } : {}),
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

/**
 * A throw-away CA (openssl), a server certificate for 127.0.0.1 and localhost, and a client
 * certificate, in `dir`.
 */
async function makeTlsFiles(dir: string): Promise<EtcdTlsFiles & { serverCert: string; serverKey: string }> {
  const f = (name: string) => join(dir, name);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = (name: string) => ssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f(name));
  ec('ca.key');
  ssl('req', '-x509', '-new', '-key', f('ca.key'), '-subj', '/CN=orca-test-etcd-ca', '-days', '2', '-out', f('ca.crt'));
  const leaf = async (name: string, cn: string, ext: string) => {
    ec(`${name}.key`);
    ssl('req', '-new', '-key', f(`${name}.key`), '-subj', `/CN=${cn}`, '-out', f(`${name}.csr`));
    await writeFile(f(`${name}.ext`), ext);
    ssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f(`${name}.ext`), '-out', f(`${name}.crt`));
  };
  await leaf('server', 'etcd', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  await leaf('client', 'orca', 'extendedKeyUsage=clientAuth\n');
  return { ca: f('ca.crt'), cert: f('client.crt'), key: f('client.key'), serverCert: f('server.crt'), serverKey: f('server.key') };
}
