/**
 * Where an instance's secret files live on the node (SPEC §3.9): one directory per instance,
 * `<root>/<instance>/<name>` (mode 0400), bind-mounted read-only at /run/secrets. The real
 * implementation keeps them on a tmpfs the agent mounts at `root` (never the node's disk, as
 * Docker Swarm does); MemorySecretFiles is its fake for tests. Nothing here logs a value.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, readdir, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { OrcaError } from '../core/errors.js';

/** The port: every call idempotent. */
export interface SecretFiles {
  /**
   * Writes an instance's secret files afresh (what was there is replaced), each mode 0400, and
   * returns the host directory to bind-mount. Throws OrcaError ORCA_RUNTIME_FAILED when no
   * in-memory filesystem can be had (the tmpfs cannot be mounted).
   */
  write(instance: string, files: ReadonlyArray<{ name: string; data: Buffer }>): Promise<string>;
  /** Removes an instance's directory; missing is success. */
  remove(instance: string): Promise<void>;
  /** The instances that have a directory. */
  list(): Promise<string[]>;
}

/** Instance ids and secret names are path components: nothing else may reach a path here. */
const SAFE = /^[a-z0-9][-a-z0-9.]{0,252}$/;

function checkName(what: string, n: string): void {
  if (!SAFE.test(n) || n.includes('..')) throw new OrcaError('ORCA_INTERNAL', `bug: ${what} ${JSON.stringify(n.slice(0, 80))} is not a safe file name`);
}

export interface TmpfsOptions {
  /** Size of the tmpfs (bytes): a bound on what secrets may hold in memory on this node. */
  sizeBytes: number;
  /** Whether `dir` is a tmpfs mount point now (default: read /proc/self/mounts). */
  isTmpfs?: (dir: string) => Promise<boolean>;
  /** Mounts a tmpfs at `dir` (default: mount(8), which needs root, as the agent beside Docker has). */
  mountTmpfs?: (dir: string, sizeBytes: number) => Promise<void>;
}

/**
 * Secret files on a tmpfs mounted at `root` (mode 0700), mounted on the first write unless it is
 * one already; it stays mounted when the agent stops (running containers bind-mount from it) and
 * goes with the host's memory at a reboot.
 */
export class TmpfsSecretFiles implements SecretFiles {
  private mounted: Promise<void> | null = null;

  constructor(
    private readonly root: string,
    private readonly opts: TmpfsOptions,
  ) {}

  async write(instance: string, files: ReadonlyArray<{ name: string; data: Buffer }>): Promise<string> {
    checkName('instance', instance);
    for (const f of files) checkName('secret', f.name);
    await this.ensureMounted();
    const dir = join(this.root, instance);
    await rm(dir, { recursive: true, force: true });
    // Names may be listed by the container's processes; contents only by its root user.
    await mkdir(dir, { mode: 0o755 });
    await chmod(dir, 0o755);
    for (const f of files) {
      const path = join(dir, f.name);
      await writeFile(path, f.data, { mode: 0o400, flag: 'wx' });
      await chmod(path, 0o400);
    }
    return dir;
  }

  async remove(instance: string): Promise<void> {
    checkName('instance', instance);
    await rm(join(this.root, instance), { recursive: true, force: true });
  }

  async list(): Promise<string[]> {
    try {
      return (await readdir(this.root)).filter((n) => SAFE.test(n));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  private ensureMounted(): Promise<void> {
    this.mounted ??= this.mount().catch((err: unknown) => {
      this.mounted = null;
      throw err;
    });
    return this.mounted;
  }

  private async mount(): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    const isTmpfs = this.opts.isTmpfs ?? isTmpfsMount;
    if (await isTmpfs(this.root)) return;
    try {
      await (this.opts.mountTmpfs ?? mountTmpfs)(this.root, this.opts.sizeBytes);
    } catch (err) {
      throw new OrcaError('ORCA_RUNTIME_FAILED', `cannot mount a tmpfs for secret files at ${this.root} (the agent must run as root): ${(err as Error).message ?? String(err)}`, { cause: err });
    }
    if (!(await isTmpfs(this.root))) throw new OrcaError('ORCA_RUNTIME_FAILED', `${this.root} is not a tmpfs after mounting one: secret files are never written to disk`);
  }
}

/** Whether `dir` is a tmpfs mount point, from /proc/self/mounts (paths there escape spaces as \040). */
export async function isTmpfsMount(dir: string): Promise<boolean> {
  const real = await realpath(dir);
  const text = await readFile('/proc/self/mounts', 'utf8');
  const unescape = (p: string) => p.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  return text.split('\n').some((line) => {
    const [, at, type] = line.split(' ');
    return type === 'tmpfs' && at !== undefined && unescape(at) === real;
  });
}

async function mountTmpfs(dir: string, sizeBytes: number): Promise<void> {
  await promisify(execFile)('mount', ['-t', 'tmpfs', '-o', `mode=0700,size=${sizeBytes},nosuid,nodev,noexec`, 'orca-secrets', dir], { timeout: 10_000 });
}

/** The fake: files in memory, with their modes. */
export class MemorySecretFiles implements SecretFiles {
  readonly dirs = new Map<string, Map<string, { data: Buffer; mode: number }>>();

  constructor(private readonly root = '/orca-secrets') {}

  async write(instance: string, files: ReadonlyArray<{ name: string; data: Buffer }>): Promise<string> {
    checkName('instance', instance);
    for (const f of files) checkName('secret', f.name);
    this.dirs.set(instance, new Map(files.map((f) => [f.name, { data: Buffer.from(f.data), mode: 0o400 }])));
    return join(this.root, instance);
  }

  remove(instance: string): Promise<void> {
    this.dirs.delete(instance);
    return Promise.resolve();
  }

  list(): Promise<string[]> {
    return Promise.resolve([...this.dirs.keys()]);
  }
}
