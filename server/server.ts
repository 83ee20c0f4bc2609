import { once } from 'node:events';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Server as HttpServer } from 'node:http';
import { systemClock, systemRng, type Clock, type Rng } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { Runtime } from '../runtime/types.js';
import type { Store } from '../store/types.js';
import { openLevelStore } from '../store/index.js';
import { Agent } from '../agent/agent.js';
import { ControlPlane } from './control-plane.js';
import { EventLog } from './event-log.js';
import { createApi } from './api.js';
import { LocalNode } from './local-node.js';
import { ensureToken } from './token.js';
import { Metrics } from './metrics.js';
import { RolloutWatcher } from './rollouts.js';
import type { ServerConfig } from './config.js';

export interface ServerDeps {
  log: Logger;
  /** Created lazily (DockerRuntime) unless given (FakeRuntime in tests). */
  runtime?: Runtime;
  clock?: Clock;
  rng?: Rng;
  /** Store factories; default: LevelDB in the data directory. */
  openStore?: (path: string) => Promise<Store>;
}

export interface RunningServer {
  apiUrl: string;
  token: string;
  control: ControlPlane;
  agent: Agent | null;
  metrics: Metrics;
  /** Resolves once running containers have been adopted and /healthz answers 200. */
  ready(): Promise<void>;
  /** Stops everything and closes the stores. */
  stop(): Promise<void>;
}

/**
 * The composition root of `orca server`: store, token, API, embedded local agent.
 * Order matters: the store opens first (and refuses to start over an unreadable one),
 * the API answers /healthz 503 until the local agent has adopted what is running.
 */
export async function startServer(config: ServerConfig, deps: ServerDeps): Promise<RunningServer> {
  const log = deps.log;
  const clock = deps.clock ?? systemClock;
  const rng = deps.rng ?? systemRng;
  const openStore = deps.openStore ?? ((path: string) => openLevelStore(path));
  const abort = new AbortController();
  let ready = false;
  let api: HttpServer | null = null;
  let agentStore: Store | null = null;
  let events: EventLog | null = null;

  const store = await openStore(join(config.dataDir, 'cluster.db'));
  /** Stops in dependency order: no new requests, no new actions, log flushed, stores closed. */
  const stop = async () => {
    abort.abort();
    if (api) {
      const s = api;
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
    await events?.drain();
    await agentStore?.close().catch((err) => log.warn({ err }, 'closing agent store'));
    await store.close().catch((err) => log.warn({ err }, 'closing store'));
  };
  try {
    const token = await ensureToken(config.dataDir);
    let control: ControlPlane | null = null;
    const metrics = new Metrics({
      instances: () => control?.observeAll() ?? Promise.resolve([]),
      nodes: () => control?.nodeLinks().map((n) => ({ state: n.state() })) ?? [],
    });
    let rollouts: RolloutWatcher | null = null;
    const eventLog = new EventLog(store, log.child({ component: 'event-log' }), (e) => {
      metrics.observeAction(e);
      rollouts?.onEvent(e);
    });
    events = eventLog;
    const cp = new ControlPlane({ store, clock, log: log.child({ component: 'control-plane' }), events: eventLog });
    control = cp;
    const watcher = new RolloutWatcher(
      store,
      async () => {
        const r = await cp.status();
        return r.ok ? r.value : [];
      },
      clock,
      log.child({ component: 'rollouts' }),
    );
    rollouts = watcher;
    abort.signal.addEventListener('abort', () => watcher.stop());

    api = createApi({
      token,
      log: log.child({ component: 'api' }),
      control: cp,
      store,
      events: eventLog,
      isReady: () => ready,
      metrics: async (_req, res) => {
        const m = await metrics.text();
        res.writeHead(200, { 'content-type': m.contentType });
        res.end(m.body);
      },
    });
    api.listen(config.apiListen.port, config.apiListen.host);
    await once(api, 'listening');
    const addr = api.address() as AddressInfo;
    const apiUrl = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
    log.info({ api: apiUrl, dataDir: config.dataDir, cluster: config.clusterId, node: config.nodeName }, 'api listening');

    let agent: Agent | null = null;
    let adopted: Promise<void> = Promise.resolve();
    if (config.localAgent) {
      const runtime = deps.runtime ?? new (await import('../runtime/docker-runtime.js')).DockerRuntime();
      agentStore = await openStore(join(config.dataDir, 'agent.db'));
      const a = new Agent({
        runtime,
        store: agentStore,
        clock,
        rng,
        log,
        identity: { cluster: config.clusterId, node: config.nodeName, advertise: config.advertise },
        watchdogIntervalMs: config.watchdogIntervalMs,
        record: (e) => eventLog.record(e),
        onRecovery: (service, seconds) => metrics.observeRecovery(service, seconds),
        onChange: () => watcher.poke(),
      });
      agent = a;
      cp.addNode(new LocalNode(a, runtime, clock, config.advertise));
      await cp.publish();
      await a.start(abort.signal);
      adopted = a.ready();
    }
    void adopted.then(() => {
      if (abort.signal.aborted) return;
      ready = true;
      log.info({ api: apiUrl }, 'server ready');
    });

    return {
      apiUrl,
      token,
      control: cp,
      agent,
      metrics,
      ready: () => adopted,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
