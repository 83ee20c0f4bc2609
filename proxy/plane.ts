/**
 * The multi-process proxy (`orca server --proxy-workers N`, N > 1): N worker processes each run
 * the ordinary Proxy (proxy/proxy.ts) and accept from the same listening sockets, so the data path
 * uses N cores; this class, in the server, offers the surface the server uses of Proxy and
 * forwards it over IPC.
 *
 * Why processes: Node 20 has no SO_REUSEPORT, and worker threads can neither share a listening
 * socket nor be handed accepted ones. The cluster module can: with SCHED_NONE the primary binds
 * each address once and every worker accepts from that socket itself (the kernel picks which; no
 * connection passes through the server's event loop). The primary never accepts.
 *
 * - The route table and the certificates go to every worker as they change (one IPC message,
 *   applied on arrival, well under a millisecond on loopback); a worker started later gets the
 *   current ones before it listens.
 * - drain(address) waits until no worker has anything in flight to the address.
 * - Each worker counts requests and upstream times and sends them in batches (every
 *   PLANE_DEFAULTS.metricsFlushMs); the primary adds them to its metrics.
 * - A worker that ends unasked is logged and replaced (backoff from 100 ms to 5 s when it keeps
 *   failing); close() ends them all; a worker whose IPC channel closes (the server died) exits.
 * - Bounds (PROXY_DEFAULTS.maxConnections, maxTunnels) hold per worker, as nginx's
 *   worker_connections does.
 */
import cluster, { type Worker } from 'node:cluster';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Clock, TimerHandle } from '../core/clock.js';
import { backoffDelayMs } from '../core/backoff.js';
import type { Logger } from '../core/log.js';
import { RouteTable, type Route } from './table.js';
import { EMPTY_EDGE, type EdgeState } from './tls.js';
import { PROXY_DEFAULTS } from './types.js';
import { applyMetricsBatch, type PlaneMetrics } from './plane-metrics.js';
import { asFromWorker, type FromWorker, type ListenerKind, type ToWorker, type WorkerProxyOptions } from './plane-messages.js';

export const PLANE_DEFAULTS = {
  /** How often a busy worker sends its metrics. */
  metricsFlushMs: 100,
  /** A worker that ended is replaced after this, doubling up to restartMaxMs while it keeps ending soon. */
  restartInitialMs: 100,
  restartMaxMs: 5_000,
  /** A worker that ran this long before it ended is replaced after restartInitialMs again. */
  restartResetMs: 10_000,
  /** A worker that does not say hello (started, listening for messages) within this is killed and replaced. */
  startTimeoutMs: 10_000,
  /** close() waits this much longer than the Proxy's own grace for a worker to exit, then kills it. */
  closeSlackMs: 3_000,
  /** A free port is looked for this many times when port 0 is asked for (another process may take it first). */
  portAttempts: 5,
} as const;

export interface ProxyPlaneOptions {
  log: Logger;
  clock: Clock;
  metrics?: PlaneMetrics;
  /** Worker processes (≥ 1; the server uses the in-process Proxy for 1). */
  workers: number;
  /** The worker's script; default: plane-worker.js beside this file (the build's). */
  workerScript?: string;
  /** Per worker; default PROXY_DEFAULTS. */
  maxConnections?: number;
  maxTunnels?: number;
}

interface Listener {
  id: number;
  kind: ListenerKind;
  host: string;
  port: number;
}

type Reply = FromWorker | null;

/** One worker process and what waits on it. */
interface Slot {
  index: number;
  worker: Worker;
  startedAt: number;
  /** Resolves true once the worker has its table (ready), false if it ended first. */
  up: Promise<boolean>;
  /** Request id → who waits for its reply (null: the worker ended). */
  waiting: Map<number, (reply: Reply) => void>;
  /** Listener id → its opening in this worker. */
  opens: Map<number, Promise<Reply>>;
  /** Set once init (the table then) went out: later changes are sent, in order, after it. */
  initSent: boolean;
  ended: boolean;
}

export class ProxyPlane {
  private readonly opts: ProxyPlaneOptions;
  private readonly log: Logger;
  private readonly script: string;
  private table = new RouteTable([]);
  private edge: EdgeState = EMPTY_EDGE;
  /** Every listener, in the order opened: a replacement worker opens them all, in this order. */
  private listeners: Listener[] = [];
  private readonly slots: Array<Slot | null>;
  private readonly attempts: number[];
  private readonly restartTimers = new Map<number, TimerHandle>();
  private started = false;
  private closing: Promise<void> | null = null;
  private nextId = 1;

  /** Constructing does no I/O: the workers start with the first listen. */
  constructor(opts: ProxyPlaneOptions) {
    if (!Number.isInteger(opts.workers) || opts.workers < 1) throw new Error(`proxy workers must be a whole number ≥ 1, got ${opts.workers}`);
    this.opts = opts;
    this.log = opts.log;
    this.script = opts.workerScript ?? fileURLToPath(new URL('./plane-worker.js', import.meta.url));
    this.slots = new Array<Slot | null>(opts.workers).fill(null);
    this.attempts = new Array<number>(opts.workers).fill(0);
  }

  /** Swaps the routing table in every worker (and in any started later). */
  setRoutes(routes: Route[]): void {
    this.table = new RouteTable(routes);
    this.broadcast({ t: 'routes', routes: this.table.routes() });
  }

  /** The current routes. */
  routes(): Route[] {
    return this.table.routes();
  }

  /** The certificates and ACME challenges, to every worker. */
  setEdge(edge: EdgeState): void {
    this.edge = edge;
    this.broadcast({ t: 'edge', edge });
  }

  /**
   * Resolves once no worker has anything in flight to the backend, or after maxMs, whichever comes
   * first; never rejects. A worker that ends meanwhile has nothing in flight any more.
   */
  async drain(address: string, maxMs: number): Promise<void> {
    const waits = this.live().map((s) => this.ask(s, (id) => ({ t: 'drain', id, address, maxMs })));
    let timer: TimerHandle | undefined;
    // Each worker bounds its own wait by maxMs; this bounds a worker that never answers.
    const bound = new Promise<void>((resolve) => (timer = this.opts.clock.setTimeout(resolve, maxMs + 1_000)));
    await Promise.race([Promise.all(waits), bound]);
    if (timer) this.opts.clock.clearTimeout(timer);
  }

  /** Starts the workers (first call) and has each of them serve host:port; port 0 picks a free one. */
  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    if (this.listeners.some((l) => l.kind === 'main')) return Promise.reject(new Error('the proxy already listens'));
    return this.open('main', host, port).then(({ host: h, port: p }) => ({ host: h, port: p }));
  }

  /** TLS on host:port in every worker (Proxy.listenTls). */
  listenTls(host: string, port: number): Promise<{ host: string; port: number }> {
    if (this.listeners.some((l) => l.kind === 'tls')) return Promise.reject(new Error('the proxy already listens for TLS'));
    return this.open('tls', host, port).then(({ host: h, port: p }) => ({ host: h, port: p }));
  }

  /** One more plain listener in every worker (Proxy.listenAlso); its close() stops that one alone. */
  async listenAlso(host: string, port: number): Promise<{ host: string; port: number; close(): Promise<void> }> {
    const { listener: l, ...bound } = await this.open('also', host, port);
    return {
      ...bound,
      close: async () => {
        if (!this.listeners.includes(l)) return;
        this.listeners = this.listeners.filter((x) => x !== l);
        this.broadcast({ t: 'unlisten', id: l.id });
      },
    };
  }

  /** Process ids of the workers running now (tests, the bench). */
  workerPids(): number[] {
    return this.live().flatMap((s) => (s.worker.process.pid ? [s.worker.process.pid] : []));
  }

  /**
   * Ends every worker: each closes its Proxy (in-flight requests get PROXY_DEFAULTS.closeGraceMs),
   * sends its last metrics and exits; one that has not exited closeSlackMs later is killed.
   * Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const t of this.restartTimers.values()) this.opts.clock.clearTimeout(t);
      this.restartTimers.clear();
      await Promise.all(
        this.slots.map(async (s) => {
          if (!s || s.ended) return;
          const exited = new Promise<void>((resolve) => s.worker.once('exit', () => resolve()));
          this.send(s, { t: 'close' });
          const timer = this.opts.clock.setTimeout(() => s.worker.process.kill('SIGKILL'), PROXY_DEFAULTS.closeGraceMs + PLANE_DEFAULTS.closeSlackMs);
          await exited;
          this.opts.clock.clearTimeout(timer);
        }),
      );
    })();
    return this.closing;
  }

  // ---- listeners --------------------------------------------------------------------------

  private async open(kind: ListenerKind, host: string, port: number): Promise<{ listener: Listener; host: string; port: number }> {
    if (this.closing) throw new Error('the proxy is closing');
    this.start();
    for (let attempt = 1; ; attempt++) {
      // Every worker must ask for the same port (the cluster module shares a socket per address
      // and port), so port 0 is made concrete here first.
      const concrete = port === 0 ? await freePort(host) : port;
      const l: Listener = { id: this.nextId++, kind, host, port: concrete };
      // Listed before it is opened: a worker started meanwhile opens it too.
      this.listeners.push(l);
      const replies = await Promise.all(this.slots.map((s) => (s ? this.openIn(s, l) : Promise.resolve(null))));
      const failure = replies.find((r) => r !== null && r.t === 'listen-failed');
      if (!failure || failure.t !== 'listen-failed') {
        const ok = replies.find((r) => r !== null && r.t === 'listening');
        return { listener: l, host: ok?.t === 'listening' ? ok.host : host, port: concrete };
      }
      this.listeners = this.listeners.filter((x) => x !== l);
      this.broadcast({ t: 'unlisten', id: l.id });
      if (port === 0 && failure.code === 'EADDRINUSE' && attempt < PLANE_DEFAULTS.portAttempts) continue;
      throw Object.assign(new Error(failure.error), failure.code ? { code: failure.code } : {});
    }
  }

  /**
   * Opens a listener in a worker once it is up, once (open() and a starting worker's reopen() may
   * both ask): the worker's reply, or null if it ended first (its replacement opens it).
   */
  private openIn(s: Slot, l: Listener): Promise<Reply> {
    let p = s.opens.get(l.id);
    if (!p) {
      p = s.up.then((ok) => (ok ? this.ask(s, (id) => ({ t: 'listen', id, kind: l.kind, host: l.host, port: l.port })) : null));
      s.opens.set(l.id, p);
    }
    return p;
  }

  // ---- workers ----------------------------------------------------------------------------

  private start(): void {
    if (this.started) return;
    this.started = true;
    for (let i = 0; i < this.slots.length; i++) this.spawn(i);
  }

  private spawn(index: number): void {
    // SCHED_NONE: each worker accepts from the shared socket (NODE_CLUSTER_SCHED_POLICY=rr picks
    // the cluster module's other way, the primary accepting and passing connections, for comparison).
    if (process.env.NODE_CLUSTER_SCHED_POLICY === undefined) cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ exec: this.script, args: [], silent: false });
    // UV_TCP_SINGLE_ACCEPT: libuv accepts one connection per wakeup and yields, so that the workers
    // share new connections instead of the first one awake taking a burst (one of 4 got none without it).
    const worker = cluster.fork({ ORCA_PROXY_WORKER: String(index), UV_TCP_SINGLE_ACCEPT: '1' });
    let markUp: (ok: boolean) => void = () => undefined;
    const slot: Slot = {
      index,
      worker,
      startedAt: this.opts.clock.now(),
      up: new Promise<boolean>((resolve) => (markUp = resolve)),
      waiting: new Map(),
      opens: new Map(),
      initSent: false,
      ended: false,
    };
    this.slots[index] = slot;
    const helloTimer = this.opts.clock.setTimeout(() => {
      this.log.error({ worker: index, pid: worker.process.pid }, 'proxy worker did not start; killing it');
      worker.process.kill('SIGKILL');
    }, PLANE_DEFAULTS.startTimeoutMs);
    worker.on('message', (raw: unknown) => {
      const m = asFromWorker(raw);
      if (!m) return;
      switch (m.t) {
        case 'hello': {
          this.opts.clock.clearTimeout(helloTimer);
          const options: WorkerProxyOptions = {};
          if (this.opts.maxConnections !== undefined) options.maxConnections = this.opts.maxConnections;
          if (this.opts.maxTunnels !== undefined) options.maxTunnels = this.opts.maxTunnels;
          slot.initSent = true;
          this.send(slot, { t: 'init', index, logLevel: this.log.level, options, routes: this.table.routes(), edge: this.edge, flushMs: PLANE_DEFAULTS.metricsFlushMs });
          return;
        }
        case 'ready':
          markUp(true);
          void this.reopen(slot);
          return;
        case 'metrics':
          if (this.opts.metrics) applyMetricsBatch(this.opts.metrics, m);
          return;
        case 'listening':
        case 'listen-failed':
        case 'drained': {
          const w = slot.waiting.get(m.id);
          slot.waiting.delete(m.id);
          w?.(m);
          return;
        }
        case 'closed':
          return;
      }
    });
    worker.on('error', (err: Error) => this.log.warn({ err, worker: index }, 'proxy worker IPC error'));
    worker.once('exit', (code: number | null, signal: string | null) => {
      this.opts.clock.clearTimeout(helloTimer);
      slot.ended = true;
      markUp(false);
      for (const w of slot.waiting.values()) w(null);
      slot.waiting.clear();
      if (this.closing) return;
      const ranMs = this.opts.clock.now() - slot.startedAt;
      if (ranMs >= PLANE_DEFAULTS.restartResetMs) this.attempts[index] = 0;
      const delayMs = backoffDelayMs({ initialMs: PLANE_DEFAULTS.restartInitialMs, maxMs: PLANE_DEFAULTS.restartMaxMs }, this.attempts[index]!++);
      this.log.warn({ worker: index, pid: worker.process.pid, code, signal, restartInMs: delayMs }, 'proxy worker ended; starting another');
      this.restartTimers.set(
        index,
        this.opts.clock.setTimeout(() => {
          this.restartTimers.delete(index);
          if (!this.closing) this.spawn(index);
        }, delayMs),
      );
    });
    this.log.info({ worker: index, pid: worker.process.pid }, 'proxy worker started');
  }

  /**
   * A worker that just got its table opens every listener there is, in order. One it cannot open
   * ends it: it is replaced (with backoff).
   */
  private async reopen(s: Slot): Promise<void> {
    for (const l of [...this.listeners]) {
      const reply = await this.openIn(s, l);
      if (s.ended) return;
      if (reply?.t === 'listen-failed' && this.listeners.includes(l)) {
        this.log.error({ worker: s.index, host: l.host, port: l.port, error: reply.error }, 'proxy worker cannot listen; replacing it');
        s.worker.process.kill('SIGKILL');
        return;
      }
    }
  }

  private live(): Slot[] {
    return this.slots.filter((s): s is Slot => s !== null && !s.ended);
  }

  private send(s: Slot, m: ToWorker): void {
    if (s.ended || !s.worker.isConnected()) return;
    try {
      s.worker.send(m);
    } catch (err) {
      this.log.warn({ err, worker: s.index }, 'proxy worker unreachable');
    }
  }

  /**
   * Sends to every live worker at once, in call order (IPC keeps it: a drain asked after a table
   * swap reaches a worker after the swap). One still starting gets the current state in its init.
   */
  private broadcast(m: ToWorker): void {
    for (const s of this.live()) if (s.initSent) this.send(s, m);
  }

  /**
   * Sends a request with a fresh id and resolves with the reply, or null if the worker ends first
   * (or has not had its init yet: it has nothing in flight).
   */
  private ask(s: Slot, make: (id: number) => ToWorker): Promise<Reply> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      if (s.ended || !s.initSent) return resolve(null);
      s.waiting.set(id, resolve);
      this.send(s, make(id));
    });
  }
}

/** A port free on host now (the OS picks it; closed again at once). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}
