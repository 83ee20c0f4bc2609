/**
 * An in-memory Runtime with Docker's semantics for everything in the port (idempotency, name
 * conflicts, exit codes 137/143, OOM flag, events in Docker's order, logs), timestamps from an
 * injected Clock. Containers "run" a tiny program (see fake-program.ts): `sh -c 'echo hi; exit 3'`
 * prints and exits as it would in Docker. Each container has a fake filesystem (path → content,
 * kept across restarts, gone with the container) that programs and exec'ed commands read and
 * write: `cat /tmp/ok`, `touch /tmp/ok`, `echo x > /tmp/ok`.
 *
 * Test controls act like the outside world does and go through the same state machine and
 * events; they never bypass port semantics: crash, removeBehindBack, setHealth, failNext,
 * failStart, ignoreSigterm, writeLog, writeFile, removeFile, addImage, addNetwork,
 * removeNetworkBehindBack, breakEvents, setEngineDown; `calls` counts port calls by operation.
 *
 * Networks behave as Docker's do: a container is created attached to its spec's network, which
 * must exist by the time it starts; it is listed on a network while it runs; connect adds one;
 * removing a network (behind Orca's back) disconnects every container from it first.
 */
import { createHash } from 'node:crypto';
import { sleep, type Clock, type TimerHandle } from '../core/clock.js';
import { OrcaError } from '../core/errors.js';
import { AsyncQueue } from './async-queue.js';
import { fakeProgram, type Redirect, type Step } from './fake-program.js';
import { LABEL } from './labels.js';
import { labelsWithPort, publishedContainerPorts } from './ports.js';
import { imageMissing } from './runtime-errors.js';
import {
  EXEC_OUTPUT_LIMIT,
  type ContainerSpec,
  type ContainerStatus,
  type ExecResult,
  type Listener,
  type LogOptions,
  type ObservedContainer,
  type ObservedNetwork,
  type ObservedVolume,
  type Runtime,
  type RuntimeEvent,
  type RuntimeEventKind,
} from './types.js';

export type RuntimeOp =
  | 'ping' | 'hasImage' | 'imageHealthcheck' | 'create' | 'start' | 'stop' | 'kill' | 'remove' | 'list' | 'inspect' | 'logs' | 'events'
  | 'exec' | 'listeners' | 'imageExposedPorts' | 'ensureNetwork' | 'inspectNetwork' | 'connect'
  | 'ensureVolume' | 'listVolumes' | 'removeVolume';

/**
 * Operations that change engine state (exec does not: it changes what is inside a container;
 * ensureNetwork does only when the network is missing, which `networksCreated` counts).
 */
export const MUTATING_OPS: readonly RuntimeOp[] = ['create', 'start', 'stop', 'kill', 'remove', 'connect'];

export interface FakeImage {
  healthcheck?: boolean;
  cmd?: string[];
  entrypoint?: string[];
  env?: Record<string, string>;
  /** Merged under the container's labels, as Docker does. */
  labels?: Record<string, string>;
  /**
   * TCP ports the image's program listens on (0.0.0.0) while the container runs. A main program
   * `httpd … -p [IP:]PORT` (busybox httpd, default port 80) listens on its own port instead.
   */
  listens?: number[];
  /** Ports the image declares with EXPOSE. */
  exposedPorts?: number[];
}

type Health = 'starting' | 'healthy' | 'unhealthy';

/** A running program: a container's main process or an exec'ed command. */
interface FakeProcess {
  c: FakeContainer;
  /** The container run it belongs to; it dies with that run. */
  run: number;
  steps: Step[];
  /** Pending `sleep`. */
  timer: TimerHandle | undefined;
  done: boolean;
  /** Output (whole lines or file content, newlines included). */
  print(text: string, stream: 'stdout' | 'stderr'): void;
  /** The program ended with this exit code (called once). */
  finish(code: number): void;
}

interface FakeContainer {
  id: string;
  seq: number;
  spec: ContainerSpec;
  labels: Record<string, string>;
  env: Record<string, string>;
  argv: string[];
  /** What listens while it runs (FakeImage.listens, or the httpd in argv). */
  listens: Listener[];
  healthcheck: boolean;
  status: ContainerStatus;
  exitCode: number;
  oomKilled: boolean;
  startedAt: string | null;
  finishedAt: string | null;
  createdAt: string;
  /** Published container port ("80") → host port while running; {} otherwise. */
  ports: Record<string, number>;
  health: Health | null;
  error: string | null;
  logs: string[];
  logFollowers: Set<AsyncQueue<string>>;
  /** Bumped per start so timers of an earlier run are ignored. */
  run: number;
  /** The main process of the current run. */
  main: FakeProcess | undefined;
  /** Exec'ed commands still running (including ones whose exec call timed out). */
  execs: Set<FakeProcess>;
  files: FakeFiles;
  ignoresSigterm: boolean;
  startFailure: string | undefined;
  /** Networks it is attached to (kept while stopped, as Docker does), by name → its aliases. */
  networks: Map<string, string[]>;
}

interface FakeNetwork {
  id: string;
  name: string;
  driver: string;
  labels: Record<string, string>;
  gateway: string;
}

/**
 * A container's filesystem: paths under a named volume's mount point live in the volume (so the
 * next container that mounts it sees them, as in Docker); the rest in the container itself.
 */
class FakeFiles {
  private readonly own = new Map<string, string>();
  constructor(private readonly mounts: Array<{ target: string; files: Map<string, string> }>) {}
  private where(path: string): { map: Map<string, string>; key: string } {
    for (const m of this.mounts) {
      if (path.startsWith(`${m.target}/`)) return { map: m.files, key: path.slice(m.target.length) };
    }
    return { map: this.own, key: path };
  }
  get(path: string): string | undefined {
    const w = this.where(path);
    return w.map.get(w.key);
  }
  set(path: string, content: string): void {
    const w = this.where(path);
    w.map.set(w.key, content);
  }
  has(path: string): boolean {
    const w = this.where(path);
    return w.map.has(w.key);
  }
  delete(path: string): boolean {
    const w = this.where(path);
    return w.map.delete(w.key);
  }
}

const SIGNALS: Record<string, number> = { HUP: 1, INT: 2, QUIT: 3, KILL: 9, USR1: 10, USR2: 12, TERM: 15 };
/** Signals whose default action does not end a process. */
const HARMLESS_SIGNALS = new Set(['CHLD', 'CONT', 'URG', 'WINCH']);
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

export class FakeRuntime implements Runtime {
  private eventsMuted = false;
  /** Port calls so far, by operation (failed ones included). */
  readonly calls: Record<RuntimeOp, number> = {
    ping: 0, hasImage: 0, imageHealthcheck: 0, create: 0, start: 0, stop: 0, kill: 0, remove: 0, list: 0, inspect: 0, logs: 0, events: 0,
    exec: 0, listeners: 0, imageExposedPorts: 0, ensureNetwork: 0, inspectNetwork: 0, connect: 0,
    ensureVolume: 0, listVolumes: 0, removeVolume: 0,
  };
  /** Networks ensureNetwork created. */
  networksCreated = 0;
  private readonly networks = new Map<string, FakeNetwork>();
  /** Named volumes: name → labels (a volume outlives the containers that mount it, as in Docker). */
  private readonly volumes = new Map<string, { labels: Record<string, string>; files: Map<string, string> }>();
  private networkSeq = 0;
  private readonly images = new Map<string, FakeImage>();
  private readonly containers = new Map<string, FakeContainer>();
  private readonly subscribers = new Set<{ labels: Record<string, string>; queue: AsyncQueue<RuntimeEvent> }>();
  private readonly failures = new Map<RuntimeOp, Error[]>();
  private seq = 0;
  private nextHostPort = 49153;
  private down = false;

  constructor(private readonly clock: Clock) {}

  // ---- test controls -------------------------------------------------------------------

  /** Makes an image present ("busybox" means "busybox:latest"). */
  addImage(tag: string, image: FakeImage = {}): void {
    this.images.set(normalizeImage(tag), image);
  }

  /** A network made by someone else (not counted in calls): a foreign one, or a non-bridge one. */
  addNetwork(name: string, opts: { driver?: string; labels?: Record<string, string> } = {}): void {
    this.makeNetwork(name, opts.driver ?? 'bridge', opts.labels ?? {});
  }

  /**
   * Someone ran `docker network disconnect -f` for every container and `docker network rm`
   * behind Orca's back (not counted in calls). Missing is fine.
   */
  removeNetworkBehindBack(name: string): void {
    const n = this.networks.get(name);
    if (!n) return;
    for (const c of this.containers.values()) {
      // Off its last network a container publishes nothing (Docker drops the port mappings).
      if (c.networks.delete(name) && c.networks.size === 0) c.ports = {};
    }
    this.networks.delete(name);
  }

  /** Names of the networks a container is attached to → its aliases there (its state aside). */
  networksOf(id: string): Record<string, string[]> {
    return Object.fromEntries([...this.mustGet(id).networks].map(([name, aliases]) => [name, [...aliases]]));
  }

  /** The next call of op throws error (queued: several calls fail in order). */
  failNext(op: RuntimeOp, error: Error = unavailable()): void {
    const list = this.failures.get(op) ?? [];
    list.push(error);
    this.failures.set(op, list);
  }

  /** The next start of this container fails as a bad command does in Docker: stays created, error recorded. */
  failStart(id: string, message = 'OCI runtime create failed: exec: no such file or directory'): void {
    this.mustGet(id).startFailure = message;
  }

  /** The main process ignores SIGTERM: stop then waits the grace on the clock and kills (137). */
  ignoreSigterm(id: string): void {
    this.mustGet(id).ignoresSigterm = true;
  }

  /** The main process dies on its own: status exited, `oom` (if oom) and `die` events. */
  crash(id: string, exitCode: number, opts: { oom?: boolean } = {}): void {
    const c = this.mustGet(id);
    if (c.status !== 'running') throw new Error(`FakeRuntime.crash: ${id} is ${c.status}, not running`);
    if (opts.oom) this.emit('oom', c);
    this.exit(c, exitCode, opts.oom ?? false);
  }

  /**
   * Docker 20.10's late OOM: containerd's TaskOOM came after TaskExit, so the exit was recorded
   * (and `die` sent) as a plain one, and the `oom` event follows it while inspect keeps
   * OOMKilled=false for that run. Use after crash(id, 137).
   */
  lateOom(id: string): void {
    const c = this.mustGet(id);
    if (c.status !== 'exited') throw new Error(`FakeRuntime.lateOom: ${id} is ${c.status}, not exited`);
    this.emit('oom', c);
  }

  /** Someone ran `docker rm -f` behind Orca's back (not counted in calls). */
  removeBehindBack(id: string): void {
    this.forceRemove(this.mustGet(id));
  }

  /** The HEALTHCHECK reports a new status (health_status event). */
  setHealth(id: string, health: Health): void {
    const c = this.mustGet(id);
    c.health = health;
    this.emit('health_status', c, { health });
  }

  /** The container prints a line. */
  writeLog(id: string, line: string): void {
    this.appendLog(this.mustGet(id), line);
  }

  /** Writes a file into the container's filesystem (as `docker cp` would); any state. */
  writeFile(id: string, path: string, content: string): void {
    this.mustGet(id).files.set(path, content);
  }

  /** Removes a file from the container's filesystem; a missing one is fine. */
  removeFile(id: string, path: string): void {
    this.mustGet(id).files.delete(path);
  }

  /** A file's content, or undefined when it does not exist. */
  readFile(id: string, path: string): string | undefined {
    return this.mustGet(id).files.get(path);
  }

  /** While muted, changes send no events though the streams stay open: events Docker lost. */
  muteEvents(muted: boolean): void {
    this.eventsMuted = muted;
  }

  /** Ends every open event stream (with error, if given), as a daemon restart does. */
  breakEvents(error?: Error): void {
    for (const s of [...this.subscribers]) {
      if (error) s.queue.fail(error);
      else s.queue.end();
    }
  }

  /** While down, every call throws ORCA_RUNTIME_UNAVAILABLE; going down breaks event streams. */
  setEngineDown(down: boolean): void {
    this.down = down;
    if (down) this.breakEvents(unavailable());
  }

  /** The spec a container was created with (memory, cpus, grace ...), for assertions. */
  specOf(id: string): ContainerSpec | undefined {
    const c = this.find(id);
    return c && structuredClone(c.spec);
  }

  /** Sum of the calls of MUTATING_OPS (create, start, stop, kill, remove, connect). */
  mutatingCalls(): number {
    return MUTATING_OPS.reduce((n, op) => n + this.calls[op], 0);
  }

  resetCalls(): void {
    for (const k of Object.keys(this.calls) as RuntimeOp[]) this.calls[k] = 0;
  }

  // ---- the port ------------------------------------------------------------------------

  async ping(): Promise<void> {
    this.enter('ping');
  }

  async hasImage(image: string): Promise<boolean> {
    this.enter('hasImage');
    return this.images.has(normalizeImage(image));
  }

  async imageExposedPorts(image: string): Promise<number[]> {
    this.enter('imageExposedPorts');
    const img = this.images.get(normalizeImage(image));
    if (!img) throw imageMissing(image);
    return [...new Set(img.exposedPorts ?? [])].sort((a, b) => a - b);
  }

  async imageHealthcheck(image: string): Promise<boolean> {
    this.enter('imageHealthcheck');
    const img = this.images.get(normalizeImage(image));
    if (!img) throw imageMissing(image);
    return img.healthcheck ?? false;
  }

  async create(spec: ContainerSpec): Promise<string> {
    this.enter('create');
    if (!NAME_RE.test(spec.name)) {
      throw new OrcaError('ORCA_RUNTIME_FAILED', `create ${spec.name}: Invalid container name`);
    }
    const existing = this.byName(spec.name);
    if (existing) {
      const mine = spec.labels[LABEL.instance];
      if (mine !== undefined && existing.labels[LABEL.instance] === mine) return existing.id;
      throw new OrcaError('ORCA_RUNTIME_CONFLICT', `create ${spec.name}: the name is taken by container ${existing.id.slice(0, 12)} of another instance`, {
        details: { existingId: existing.id },
      });
    }
    const image = this.images.get(normalizeImage(spec.image));
    if (!image) throw imageMissing(spec.image);
    const entrypoint = spec.entrypoint ?? image.entrypoint ?? [];
    const cmd = spec.command ?? (spec.entrypoint ? [] : (image.cmd ?? []));
    const argv = [...entrypoint, ...cmd];
    if (argv.length === 0) throw new OrcaError('ORCA_RUNTIME_FAILED', `create ${spec.name}: No command specified`);
    // The engine makes a missing named volume at create, without labels.
    for (const m of spec.mounts ?? []) {
      if (m.type === 'volume' && !this.volumes.has(m.source)) this.volumes.set(m.source, { labels: {}, files: new Map() });
    }
    const seq = ++this.seq;
    const c: FakeContainer = {
      id: createHash('sha256').update(`fake-container-${seq}`).digest('hex'),
      seq,
      spec: structuredClone(spec),
      labels: { ...(image.labels ?? {}), ...labelsWithPort(spec) },
      env: { ...(image.env ?? {}), ...spec.env },
      argv,
      listens: fakeListeners(argv, image.listens),
      healthcheck: image.healthcheck ?? false,
      status: 'created',
      exitCode: 0,
      oomKilled: false,
      startedAt: null,
      finishedAt: null,
      createdAt: this.iso(),
      ports: {},
      health: null,
      error: null,
      logs: [],
      logFollowers: new Set(),
      run: 0,
      main: undefined,
      execs: new Set(),
      files: new FakeFiles(
        (spec.mounts ?? []).flatMap((m) => {
          const v = m.type === 'volume' ? this.volumes.get(m.source) : undefined;
          return v ? [{ target: m.target, files: v.files }] : [];
        }),
      ),
      ignoresSigterm: false,
      startFailure: undefined,
      networks: new Map(spec.network ? [[spec.network.name, [...spec.network.aliases]]] : []),
    };
    this.containers.set(c.id, c);
    this.emit('create', c);
    return c.id;
  }

  async start(id: string): Promise<void> {
    this.enter('start');
    const c = this.find(id);
    if (!c) throw notFound('start', id);
    if (c.status === 'running') return;
    // Docker checks the network when the container starts, not when it is created.
    if (c.spec.network) {
      const net = c.spec.network;
      if (!this.networks.has(net.name)) throw new OrcaError('ORCA_RUNTIME_NOT_FOUND', `start ${id}: network ${net.name} not found`);
      if (!c.networks.has(net.name)) c.networks.set(net.name, [...net.aliases]);
    }
    if (c.startFailure !== undefined) {
      c.error = c.startFailure;
      c.exitCode = 127;
      c.startFailure = undefined;
      throw new OrcaError('ORCA_RUNTIME_FAILED', `start ${id}: ${c.error}`);
    }
    c.status = 'running';
    c.run++;
    c.exitCode = 0;
    c.oomKilled = false;
    c.error = null;
    c.startedAt = this.iso();
    this.publish(c);
    c.health = c.healthcheck ? 'starting' : null;
    this.emit('start', c);
    const main: FakeProcess = {
      c,
      run: c.run,
      steps: fakeProgram(c.argv, c.env),
      timer: undefined,
      done: false,
      print: (text) => {
        const lines = text.split('\n');
        if (lines[lines.length - 1] === '') lines.pop();
        for (const line of lines) this.appendLog(c, line);
      },
      finish: (code) => {
        if (c.status === 'running' && c.run === main.run) this.exit(c, code, false);
      },
    };
    c.main = main;
    this.runProcess(main, 0, 0);
  }

  async stop(id: string, graceSecs: number): Promise<void> {
    this.enter('stop');
    const c = this.find(id);
    if (!c || c.status !== 'running') return;
    this.emit('kill', c);
    if (c.ignoresSigterm) {
      const run = c.run;
      await sleep(this.clock, Math.max(0, Math.ceil(graceSecs)) * 1000);
      if (c.status === 'running' && c.run === run) {
        this.emit('kill', c);
        this.exit(c, 137, false);
      }
    } else {
      this.exit(c, 143, false);
    }
    if (this.containers.has(c.id)) this.emit('stop', c);
  }

  async kill(id: string, signal: string): Promise<void> {
    this.enter('kill');
    const c = this.find(id);
    if (!c) throw notFound('kill', id);
    if (c.status !== 'running') {
      throw new OrcaError('ORCA_RUNTIME_NOT_FOUND', `kill ${id}: Container ${id} is not running`);
    }
    const name = signal.toUpperCase().replace(/^SIG/, '');
    const num = /^\d+$/.test(name) ? Number(name) : SIGNALS[name];
    if (num === undefined && !HARMLESS_SIGNALS.has(name)) {
      throw new OrcaError('ORCA_RUNTIME_FAILED', `kill ${id}: Invalid signal: ${signal}`);
    }
    this.emit('kill', c);
    if (num === undefined || (num === 15 && c.ignoresSigterm)) return;
    this.exit(c, 128 + num, false);
  }

  async remove(id: string, opts: { force?: boolean } = {}): Promise<void> {
    this.enter('remove');
    const c = this.find(id);
    if (!c) return;
    if (c.status === 'running' && !opts.force) {
      throw new OrcaError('ORCA_RUNTIME_CONFLICT', `remove ${id}: You cannot remove a running container; stop it first`);
    }
    this.forceRemove(c);
  }

  async ensureNetwork(name: string, labels: Record<string, string>): Promise<boolean> {
    this.enter('ensureNetwork');
    const n = this.networks.get(name);
    if (n) {
      if (n.driver === 'bridge') return false;
      throw new OrcaError('ORCA_RUNTIME_CONFLICT', `network ${name} exists with driver ${n.driver}; Orca needs a bridge network of that name and never removes one: remove or rename it`);
    }
    this.makeNetwork(name, 'bridge', labels);
    this.networksCreated++;
    return true;
  }

  async ensureVolume(name: string, labels: Record<string, string>): Promise<boolean> {
    this.enter('ensureVolume');
    if (this.volumes.has(name)) return false;
    this.volumes.set(name, { labels: { ...labels }, files: new Map() });
    return true;
  }

  async listVolumes(labels: Record<string, string>): Promise<ObservedVolume[]> {
    this.enter('listVolumes');
    return [...this.volumes.entries()]
      .filter(([, v]) => matches(v.labels, labels))
      .map(([name, v]) => ({ name, labels: { ...v.labels }, sizeBytes: null }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async removeVolume(name: string): Promise<void> {
    this.enter('removeVolume');
    if (!this.volumes.has(name)) return;
    const user = [...this.containers.values()].find((c) => (c.spec.mounts ?? []).some((m) => m.type === 'volume' && m.source === name));
    if (user) throw new OrcaError('ORCA_RUNTIME_CONFLICT', `remove volume ${name}: volume is in use - [${user.id}]`);
    this.volumes.delete(name);
  }

  /** Names of the volumes there are (test control; not counted in calls). */
  volumeNames(): string[] {
    return [...this.volumes.keys()].sort();
  }

  async inspectNetwork(name: string): Promise<ObservedNetwork | undefined> {
    this.enter('inspectNetwork');
    const n = this.networks.get(name);
    if (!n) return undefined;
    const containers = [...this.containers.values()].filter((c) => c.status === 'running' && c.networks.has(name)).map((c) => c.id);
    return { id: n.id, name: n.name, driver: n.driver, labels: { ...n.labels }, containers, gateway: n.gateway };
  }

  async connect(containerId: string, network: string, aliases: string[]): Promise<void> {
    this.enter('connect');
    const c = this.find(containerId);
    if (!c) throw notFound('connect', containerId);
    const n = this.networks.get(network);
    if (!n) throw new OrcaError('ORCA_RUNTIME_NOT_FOUND', `connect ${containerId} to ${network}: network ${network} not found`);
    if (c.networks.has(n.name)) return;
    c.networks.set(n.name, [...aliases]);
    // Back on a network, a running container publishes its ports again, on new host ports.
    if (c.status === 'running' && Object.keys(c.ports).length === 0) this.publish(c);
  }

  async list(labels: Record<string, string>): Promise<ObservedContainer[]> {
    this.enter('list');
    return [...this.containers.values()]
      .filter((c) => matches(c.labels, labels))
      .sort((a, b) => b.seq - a.seq)
      .map((c) => this.observe(c));
  }

  async inspect(id: string): Promise<ObservedContainer | undefined> {
    this.enter('inspect');
    const c = this.find(id);
    return c && this.observe(c);
  }

  /** What the container's program listens on, while it runs (see FakeImage.listens). */
  async listeners(id: string): Promise<Listener[]> {
    this.enter('listeners');
    const c = this.find(id);
    if (!c) throw notFound('listeners', id);
    if (c.status !== 'running') throw new OrcaError('ORCA_RUNTIME_NOT_FOUND', `listeners ${id}: container is ${c.status}`);
    return c.listens.map((l) => ({ ...l }));
  }

  /**
   * Runs command with fake-program against the container's filesystem and env. Timers (sleep,
   * the timeout) run on the clock. On timeout the command keeps running, as in Docker, until it
   * ends or the container stops; commands still running when the container stops end with 137.
   * A program fake-program does not know runs until the timeout.
   */
  async exec(id: string, command: string[], timeoutMs: number): Promise<ExecResult> {
    this.enter('exec');
    const c = this.find(id);
    if (!c) throw notFound('exec', id);
    if (c.status !== 'running') throw new OrcaError('ORCA_RUNTIME_NOT_FOUND', `exec ${id}: Container ${c.id} is not running`);
    if (command.length === 0) throw new OrcaError('ORCA_RUNTIME_FAILED', `exec ${id}: No exec command specified`);
    return new Promise<ExecResult>((resolve) => {
      let output = '';
      let bytes = 0;
      let settled = false;
      const settle = (r: ExecResult) => {
        if (settled) return;
        settled = true;
        this.clock.clearTimeout(deadline);
        resolve(r);
      };
      const proc: FakeProcess = {
        c,
        run: c.run,
        steps: fakeProgram(command, c.env),
        timer: undefined,
        done: false,
        print: (text) => {
          if (settled || bytes >= EXEC_OUTPUT_LIMIT) return;
          const buf = Buffer.from(text);
          const kept = buf.length > EXEC_OUTPUT_LIMIT - bytes ? buf.subarray(0, EXEC_OUTPUT_LIMIT - bytes) : buf;
          bytes += kept.length;
          output += kept.toString();
        },
        finish: (code) => {
          c.execs.delete(proc);
          settle({ exitCode: code, output, timedOut: false });
        },
      };
      const deadline = this.clock.setTimeout(() => settle({ exitCode: null, output, timedOut: true }), Math.max(0, timeoutMs));
      c.execs.add(proc);
      this.runProcess(proc, 0, 0);
    });
  }

  logs(id: string, opts: LogOptions): AsyncIterable<string> {
    return this.logStream(id, opts);
  }

  /** Subscribes at call time (like Docker's `since`): events after this call are delivered. */
  events(labels: Record<string, string>, signal: AbortSignal): AsyncIterable<RuntimeEvent> {
    this.calls.events++;
    const queue = new AsyncQueue<RuntimeEvent>(() => {
      this.subscribers.delete(sub);
      signal.removeEventListener('abort', onAbort);
    });
    const sub = { labels: { ...labels }, queue };
    const onAbort = () => queue.end();
    const failure = this.takeFailure('events');
    if (failure) queue.fail(failure);
    else if (this.down) queue.fail(unavailable());
    else if (signal.aborted) queue.end();
    else {
      this.subscribers.add(sub);
      signal.addEventListener('abort', onAbort, { once: true });
    }
    return queue;
  }

  // ---- internals -----------------------------------------------------------------------

  private async *logStream(id: string, opts: LogOptions): AsyncGenerator<string> {
    this.enter('logs');
    const c = this.find(id);
    if (!c) throw notFound('logs', id);
    if (opts.signal?.aborted) return;
    const lines = opts.tail === undefined ? [...c.logs] : opts.tail <= 0 ? [] : c.logs.slice(-opts.tail);
    if (!opts.follow || c.status !== 'running') {
      yield* lines;
      return;
    }
    const signal = opts.signal;
    const queue = new AsyncQueue<string>(() => {
      c.logFollowers.delete(queue);
      signal?.removeEventListener('abort', onAbort);
    });
    const onAbort = () => queue.end();
    for (const l of lines) queue.push(l);
    c.logFollowers.add(queue);
    signal?.addEventListener('abort', onAbort, { once: true });
    yield* queue;
  }

  /**
   * Runs p's steps from index i, `status` being the last status so far. Stops (without
   * finishing) when p is done or its container run is over; a sleep continues on the clock.
   */
  private runProcess(p: FakeProcess, i: number, status: number): void {
    const alive = () => !p.done && p.c.status === 'running' && p.c.run === p.run;
    const files = p.c.files;
    for (; i < p.steps.length; i++) {
      if (!alive()) return;
      const step = p.steps[i] as Step;
      switch (step.kind) {
        case 'echo':
          this.output(p, `${step.text}\n`, step.stream, step.to);
          status = 0;
          break;
        case 'cat': {
          status = 0;
          for (const path of step.paths) {
            const content = files.get(path);
            if (content === undefined) {
              this.output(p, `cat: can't open '${path}': No such file or directory\n`, 'stderr');
              status = 1;
            } else this.output(p, content, 'stdout', step.to);
          }
          break;
        }
        case 'touch':
          for (const path of step.paths) if (!files.has(path)) files.set(path, '');
          status = 0;
          break;
        case 'rm':
          status = 0;
          for (const path of step.paths) {
            if (files.delete(path) || step.force) continue;
            this.output(p, `rm: can't remove '${path}': No such file or directory\n`, 'stderr');
            status = 1;
          }
          break;
        case 'exists':
          status = files.has(step.path) ? 0 : 1;
          break;
        case 'status':
          status = step.code;
          break;
        case 'skip':
          if ((status === 0) === (step.when === 'success')) i += step.count;
          break;
        case 'exit':
          this.finishProcess(p, step.code);
          return;
        case 'end':
          this.finishProcess(p, status);
          return;
        case 'forever':
          return;
        case 'sleep': {
          const next = i + 1;
          p.timer = this.clock.setTimeout(() => {
            p.timer = undefined;
            this.runProcess(p, next, 0);
          }, step.secs * 1000);
          return;
        }
      }
    }
    if (alive()) this.finishProcess(p, status);
  }

  private finishProcess(p: FakeProcess, code: number): void {
    if (p.done) return;
    p.done = true;
    if (p.timer) this.clock.clearTimeout(p.timer);
    p.timer = undefined;
    p.finish(code);
  }

  /** Output of a process: to a file when redirected (stdout only), else to the process. */
  private output(p: FakeProcess, text: string, stream: 'stdout' | 'stderr', to?: Redirect): void {
    if (!to || stream !== 'stdout') {
      p.print(text, stream);
      return;
    }
    if (to.path === '/dev/null') return;
    p.c.files.set(to.path, (to.append ? (p.c.files.get(to.path) ?? '') : '') + text);
  }

  private exit(c: FakeContainer, code: number, oom: boolean): void {
    const main = c.main;
    c.main = undefined;
    if (main && !main.done) {
      main.done = true;
      if (main.timer) this.clock.clearTimeout(main.timer);
    }
    // Every other process in the container is SIGKILLed with it.
    for (const p of [...c.execs]) this.finishProcess(p, 137);
    c.status = 'exited';
    c.exitCode = code;
    c.oomKilled = oom;
    c.finishedAt = this.iso();
    c.ports = {};
    for (const f of c.logFollowers) f.end();
    this.emit('die', c, { exitCode: code });
  }

  private forceRemove(c: FakeContainer): void {
    if (c.status === 'running') {
      this.emit('kill', c);
      this.exit(c, 137, false);
    }
    this.containers.delete(c.id);
    this.emit('destroy', c);
  }

  private publish(c: FakeContainer): void {
    c.ports = {};
    for (const p of publishedContainerPorts(c.spec)) c.ports[String(p)] = this.nextHostPort++;
  }

  private makeNetwork(name: string, driver: string, labels: Record<string, string>): void {
    if (this.networks.has(name)) throw new Error(`FakeRuntime: network ${name} exists`);
    const id = createHash('sha256').update(`fake-network-${++this.networkSeq}`).digest('hex');
    // Docker gives each bridge its own subnet; the gateway is its first address.
    const gateway = `172.${18 + (this.networkSeq % 200)}.0.1`;
    this.networks.set(name, { id, name, driver, labels: { ...labels }, gateway });
  }

  private appendLog(c: FakeContainer, line: string): void {
    c.logs.push(line);
    for (const f of c.logFollowers) f.push(line);
  }

  private emit(kind: RuntimeEventKind, c: FakeContainer, extra: Pick<RuntimeEvent, 'exitCode' | 'health'> = {}): void {
    if (this.eventsMuted) return;
    for (const s of this.subscribers) {
      if (!matches(c.labels, s.labels)) continue;
      s.queue.push({ kind, containerId: c.id, labels: { ...c.labels }, timeMs: this.clock.now(), ...extra });
    }
  }

  private observe(c: FakeContainer): ObservedContainer {
    const hostPort = c.spec.port === undefined ? undefined : c.ports[String(c.spec.port)];
    const exited = c.status === 'exited' || c.status === 'dead';
    return {
      id: c.id,
      name: c.spec.name,
      image: c.spec.image,
      labels: { ...c.labels },
      status: c.status,
      exitCode: exited ? c.exitCode : null,
      oomKilled: exited && c.oomKilled,
      startedAt: c.startedAt,
      finishedAt: c.finishedAt,
      createdAt: c.createdAt,
      hostIp: hostPort === undefined ? null : c.spec.hostIp,
      hostPort: hostPort ?? null,
      ports: { ...c.ports },
      health: c.health,
      error: c.error,
    };
  }

  /** Counts the call, then fails it if the engine is down or a failure was injected. */
  private enter(op: RuntimeOp): void {
    this.calls[op]++;
    const failure = this.takeFailure(op);
    if (failure) throw failure;
    if (this.down) throw unavailable();
  }

  private takeFailure(op: RuntimeOp): Error | undefined {
    const list = this.failures.get(op);
    const e = list?.shift();
    if (list && list.length === 0) this.failures.delete(op);
    return e;
  }

  /** By id or name, as Docker resolves them. */
  private find(idOrName: string): FakeContainer | undefined {
    return this.containers.get(idOrName) ?? this.byName(idOrName);
  }

  private byName(name: string): FakeContainer | undefined {
    for (const c of this.containers.values()) if (c.spec.name === name) return c;
    return undefined;
  }

  private mustGet(id: string): FakeContainer {
    const c = this.find(id);
    if (!c) throw new Error(`FakeRuntime: no container ${id}`);
    return c;
  }

  private iso(): string {
    return new Date(this.clock.now()).toISOString();
  }
}

function matches(labels: Record<string, string>, want: Record<string, string>): boolean {
  return Object.entries(want).every(([k, v]) => labels[k] === v);
}

function normalizeImage(image: string): string {
  const last = image.slice(image.lastIndexOf('/') + 1);
  return last.includes(':') || last.includes('@') ? image : `${image}:latest`;
}


function notFound(op: string, id: string): OrcaError {
  return new OrcaError('ORCA_RUNTIME_NOT_FOUND', `${op} ${id}: No such container: ${id}`);
}

function unavailable(): OrcaError {
  return new OrcaError('ORCA_RUNTIME_UNAVAILABLE', 'Docker is unreachable (fake engine down)', { transient: true });
}

/** busybox httpd listens on `-p [IP:]PORT` (default 80); other programs on the image's ports. */
function fakeListeners(argv: string[], imagePorts: number[] = []): Listener[] {
  const name = (argv[0] ?? '').slice((argv[0] ?? '').lastIndexOf('/') + 1);
  if (name === 'httpd') {
    const i = argv.indexOf('-p');
    const spec = i >= 0 ? (argv[i + 1] ?? '80') : '80';
    const colon = spec.lastIndexOf(':');
    const address = colon >= 0 ? spec.slice(0, colon) : '0.0.0.0';
    return [{ address: address || '0.0.0.0', port: Number(spec.slice(colon + 1)) || 80 }];
  }
  return imagePorts.map((port) => ({ address: '0.0.0.0', port }));
}
