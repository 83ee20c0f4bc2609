import { once } from 'node:events';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Server as HttpServer } from 'node:http';
import { systemClock, type Clock } from '../core/clock.js';
import { DEFAULTS } from '../core/defaults.js';
import { OrcaError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { Runtime } from '../runtime/types.js';
import type { ServiceRecord, Store } from '../store/types.js';
import { openLevelStore } from '../store/index.js';
import { memoryChannelPair, type Channel } from '../protocol/channel.js';
import { Proxy } from '../proxy/proxy.js';
import { Controller } from '../controllers/controller.js';
import { RouteExecutor } from '../controllers/route/executor.js';
import { ROUTE_TABLE_KEY, RouteReconciler } from '../controllers/route/reconciler.js';
import type { Route } from '../proxy/table.js';
import { ControlPlane } from './control-plane.js';
import { EventLog } from './event-log.js';
import { createApi } from './api.js';
import { ensureToken } from './token.js';
import { Access, clusterCaHash } from './access.js';
import { clusterKeyPath, loadClusterKey } from './cluster-key.js';
import { SecretStore } from './secrets.js';
import { secretResolver } from './secret-delivery.js';
import { claimDataDir, prepareDataDir } from './data-dir.js';
import { Metrics } from './metrics.js';
import { RolloutWatcher } from './rollouts.js';
import { NodeRegistry } from './node-registry.js';
import { NodeReconciler } from './node-reconciler.js';
import { NodeExecutor } from '../controllers/node/executor.js';
import { AgentHub } from './agent-hub.js';
import { apiServesTls, isLoopbackHost, type ServerConfig } from './config.js';
import { ensureClusterTls, keepServerCertFresh, serverNames, TLS_DIR } from './cluster-tls.js';
import { caFingerprint } from '../protocol/tls-trust.js';

export interface ServerDeps {
  log: Logger;
  clock?: Clock;
  /** Store factories; default: LevelDB in the data directory. */
  openStore?: (path: string) => Promise<Store>;
  /** This node's own agent, embedded (absent with --no-local-agent); a host provides it (see LocalAgent). */
  localAgent?: LocalAgent;
}

/** The seam through which a host embeds this node's agent in the server. */
export interface LocalAgent {
  /** The node's container runtime: a fresh data directory is checked against it (claimDataDir) before the agent starts. */
  runtime: Runtime;
  /**
   * Starts the agent, dialling the hub in memory with `hub.dial()` (the same protocol a remote
   * agent speaks, no socket). Called once, after the API listens and every node's assignments
   * are published. Throws if the agent cannot start; it then releases what it opened itself.
   */
  start(hub: { dial(): Promise<Channel> }, ctx: EmbedContext): Promise<EmbeddedAgent>;
}

export interface EmbedContext {
  /** Aborted first when the server stops: the agent stops on it. */
  signal: AbortSignal;
  /** The server's clock: the hub treats the embedded agent as sharing it. */
  clock: Clock;
  log: Logger;
  /** A failed slot has a ready replacement: seconds from the failure to then (the recovery metric). */
  onRecovery(service: string, seconds: number): void;
}

export interface EmbeddedAgent {
  /** Resolves once the agent's first session is up and it has adopted this node's containers. */
  ready: Promise<void>;
  /** Resolves once the agent has stopped (after EmbedContext.signal aborted); never rejects. */
  stop(): Promise<void>;
  /** Closes what the agent holds (its store); called last, after the server's event log drained. */
  close(): Promise<void>;
}

export interface RunningServer {
  apiUrl: string;
  token: string;
  control: ControlPlane;
  metrics: Metrics;
  /** Where the proxy listens, once it does. */
  proxy(): { host: string; port: number } | null;
  routes(): Route[];
  /** Resolves once running containers have been adopted, routes restored and the proxy listens (/healthz answers 200). */
  ready(): Promise<void>;
  /** Stops everything and closes the stores. */
  stop(): Promise<void>;
}

/**
 * The control plane of `orca server`: store, token, node registry and agent hub, control
 * plane, route reconciler and proxy, API, and — through deps.localAgent — the embedded agent,
 * which talks to the hub over an in-memory channel with the same protocol a remote agent uses.
 * Order matters: the store opens first (and refuses to start over an unreadable one); the
 * proxy listens only after the local containers were adopted and the routes restored, and
 * /healthz answers 503 until then.
 */
export async function startServer(config: ServerConfig, deps: ServerDeps): Promise<RunningServer> {
  const log = deps.log;
  const clock = deps.clock ?? systemClock;
  const openStore = deps.openStore ?? ((path: string) => openLevelStore(path));
  const abort = new AbortController();
  let ready = false;
  let api: HttpServer | null = null;
  let embedded: EmbeddedAgent | null = null;
  let events: EventLog | null = null;
  let proxy: Proxy | null = null;
  let hub: AgentHub | null = null;

  // Private before anything is written: 0700 directory, 0600 files (SPEC §3.7).
  await prepareDataDir(config.dataDir);
  const store = await openStore(join(config.dataDir, 'cluster.db'));
  /** Stops in dependency order: no new traffic, no new actions, log flushed, stores closed. */
  const stop = async () => {
    abort.abort();
    await embedded?.stop();
    hub?.close();
    await proxy?.close().catch((err: unknown) => log.warn({ err }, 'closing proxy'));
    if (api) {
      const s = api;
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
    await events?.drain();
    await embedded?.close().catch((err: unknown) => log.warn({ err }, 'closing agent store'));
    await store.close().catch((err: unknown) => log.warn({ err }, 'closing store'));
  };

  try {
    const token = await ensureToken(config.dataDir);
    const access = await Access.open(store, clock, token);
    // The cluster CA exists from the first start on, TLS or not (join tokens carry its fingerprint).
    const tlsOn = apiServesTls(config);
    const issue = { names: serverNames({ advertise: config.advertise, apiHost: config.apiListen.host, sans: config.tlsSans }), clusterId: config.clusterId, commonName: config.nodeName };
    const clusterTls = await ensureClusterTls(config.dataDir, { ...issue, nowMs: clock.now() });
    if (clusterTls.created.ca) log.info({ ca: join(config.dataDir, TLS_DIR, 'ca.crt'), fingerprint: caFingerprint(clusterTls.caPem) }, 'cluster CA created');
    if (clusterTls.created.serverCert) log.info({ names: issue.names, notAfter: new Date(clusterTls.notAfterMs).toISOString() }, 'server certificate issued');
    if (!tlsOn && !isLoopbackHost(config.apiListen.host)) {
      log.warn({ api: config.apiListen.host }, 'INSECURE: the API and agent sessions are served in plaintext beyond loopback (--insecure-plaintext): tokens, credentials and secrets cross the network unencrypted');
    }
    const secrets = await SecretStore.open(store, await loadClusterKey(config.dataDir, config.clusterKeyFile), clusterKeyPath(config.dataDir, config.clusterKeyFile));
    let cp!: ControlPlane;
    let rollouts: RolloutWatcher | null = null;
    const metrics = new Metrics({
      instances: () => cp?.observeAll() ?? Promise.resolve([]),
      nodes: () => cp?.nodeLinks().map((n) => ({ state: n.state() })) ?? [],
    });
    const eventLog = new EventLog(store, log.child({ component: 'event-log' }), (e) => {
      metrics.observeAction(e);
      rollouts?.onEvent(e);
    });
    events = eventLog;

    const px = new Proxy({
      log: log.child({ component: 'proxy' }),
      clock,
      metrics: {
        request: (route: string, status: number) => metrics.proxyRequests.inc({ route, status: String(status) }),
        upstreamSeconds: (route: string, seconds: number) => metrics.proxyUpstreamSeconds.observe({ route }, seconds),
      },
    });
    proxy = px;

    // The node reconciler (key = node name): triggered by the registry (heartbeats, hellos,
    // drain / uncordon), at each node's next deadline, and on every watchdog interval.
    let nodes: Controller | null = null;
    const nodesStopped = new Promise<void>((resolve) => abort.signal.addEventListener('abort', () => resolve(), { once: true }));
    const nodeLog = log.child({ component: 'nodes' });
    const reg = new NodeRegistry({
      store,
      clock,
      log: nodeLog,
      onNodeChanged: (name) => nodes?.trigger(name),
      // Each node gets the values of the secrets its own slots use, and no other (SPEC §3.9).
      revealSecrets: secretResolver(secrets, log.child({ component: 'secrets' })),
      settle: async (name) => {
        nodes?.trigger(name);
        // Looked at, or the server is stopping (its queue then never drains).
        await Promise.race([nodes?.idle(), nodesStopped]);
      },
    });
    await reg.load();
    /** A node changed state: routes to an unreachable node's instances go at once. */
    const onNodeStateChanged = (): void => routesChanged();
    /** A node is down, drained or back: a scheduling pass places its slots. */
    const onSchedulingChanged = (): void => void cp.publish().catch((err: unknown) => log.error({ err }, 'publish failed'));
    const nodeExecutor = new NodeExecutor({
      clock,
      log: nodeLog,
      setState: (name, to) => reg.setState(name, to),
      linger: (key, from) => cp.linger(key, from),
      record: (e) => eventLog.record(e),
      onNodeStateChanged,
      onSchedulingChanged,
    });

    // The route reconciler: one key (the table), triggered by instance, node and service changes
    // (processed at once: a dead instance leaves the table within the trigger) and resynced on
    // every watchdog interval.
    let desiredServices: readonly ServiceRecord[] = [];
    const routeLog = log.child({ reconciler: 'route' });
    const routes = new Controller({
      reconciler: new RouteReconciler({
        desired: () => desiredServices,
        endpoints: () => reg.list().flatMap((n) => n.endpoints().map((e) => ({ ...e, node: n.name }))),
        reachable: (node) => {
          const s = reg.get(node)?.state();
          return s === 'ready' || s === 'draining';
        },
        current: () => px.routes(),
        executor: new RouteExecutor({ clock, log: routeLog, apply: (table) => px.setRoutes(table), record: (e) => eventLog.record(e) }),
      }),
      clock,
      log: routeLog,
      resyncMs: config.watchdogIntervalMs,
      retry: { initialMs: DEFAULTS.queueRetryInitialMs, maxMs: DEFAULTS.queueRetryMaxMs },
    });
    routes.start(abort.signal);
    const stopped = new Promise<void>((resolve) => abort.signal.addEventListener('abort', () => resolve(), { once: true }));
    function routesChanged(): void {
      routes.trigger(ROUTE_TABLE_KEY);
    }
    /** Triggers the route reconciler and resolves once the table reflects what is known now (or the server stops). */
    const routesSettled = async (): Promise<void> => {
      routesChanged();
      await Promise.race([routes.idle(), stopped]);
    };

    cp = new ControlPlane({
      store,
      clock,
      log: log.child({ component: 'control-plane' }),
      events: eventLog,
      nodes: () => reg.list(),
      secrets,
      reschedule: (actions) => nodeExecutor.execute(actions),
      onServices: (services) => {
        desiredServices = services;
        routesChanged();
      },
    });
    await cp.load();
    nodes = new Controller({
      reconciler: new NodeReconciler({
        clock,
        timing: { heartbeatTimeoutMs: config.heartbeatTimeoutMs, nodeDownGraceMs: config.nodeDownGraceMs },
        observe: (name) => reg.observe(name),
        names: () => reg.names(),
        executor: nodeExecutor,
      }),
      clock,
      log: nodeLog,
      resyncMs: config.watchdogIntervalMs,
      retry: { initialMs: DEFAULTS.queueRetryInitialMs, maxMs: DEFAULTS.queueRetryMaxMs },
    });
    nodes.start(abort.signal);
    // Known nodes (from the store) get their heartbeat deadline to come back.
    for (const name of reg.names()) nodes.trigger(name);
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

    /** The server's own listeners: never accepted as an agent's endpoint (SSRF). */
    const ownAddresses = [{ host: config.proxyListen.host, port: config.proxyListen.port }];
    const agentHub = new AgentHub({
      clock,
      log: log.child({ component: 'agent-hub' }),
      token,
      clusterId: config.clusterId,
      heartbeat: { intervalMs: config.heartbeatIntervalMs, timeoutMs: config.heartbeatTimeoutMs },
      registry: reg,
      access,
      onSession: () => void cp.publish().catch((err: unknown) => log.error({ err }, 'publish failed')),
      onState: () => {
        routesChanged();
        watcher.poke();
        if (cp.hasLingering()) void cp.publish().catch((err: unknown) => log.error({ err }, 'publish failed'));
      },
      record: (e) => eventLog.record(e),
      drain: async (address, maxMs) => {
        await routesSettled();
        await px.drain(address, maxMs);
      },
      ownAddresses: () => {
        const a = api?.address();
        return a && typeof a === 'object' ? [...ownAddresses, { host: a.address, port: a.port }] : ownAddresses;
      },
    });
    hub = agentHub;

    api = createApi({
      token,
      log: log.child({ component: 'api' }),
      control: cp,
      store,
      events: eventLog,
      nodes: reg,
      isReady: () => ready,
      clock,
      onUnauthorized: () => metrics.apiUnauthorized.inc(),
      access: {
        access,
        log: log.child({ component: 'access' }),
        clock,
        caHash: () => clusterCaHash(config.dataDir),
        live: (name) => reg.get(name)?.attached === true,
        removeNode: async (name) => {
          if (deps.localAgent && name === config.nodeName) throw new OrcaError('ORCA_CONFLICT', `node ${name} is this server's own node (its embedded agent): stop the server instead, or run it with --no-local-agent`);
          const credentialRevoked = await access.revoke(name);
          const sessionsClosed = agentHub.disconnect(name, `the node credential of ${name} was revoked (orca nodes rm ${name})`);
          const known = await reg.remove(name);
          if (!credentialRevoked && !known && sessionsClosed === 0) return null;
          log.info({ node: name, credentialRevoked, sessionsClosed }, 'node removed');
          eventLog.record({ time: new Date(clock.now()).toISOString(), reconciler: 'api', service: null, instance: null, node: name, action: 'node.remove', reason: 'orca nodes rm', outcome: 'ok', durationMs: 0 });
          // Its replicas go elsewhere: the next pass no longer sees the node.
          await cp.publish();
          return { node: name, credentialRevoked, sessionsClosed };
        },
      },
      ...(tlsOn ? { tls: { keyPem: clusterTls.keyPem, chainPem: clusterTls.chainPem } } : {}),
      metrics: async (_req, res) => {
        const m = await metrics.text();
        res.writeHead(200, { 'content-type': m.contentType });
        res.end(m.body);
      },
    });
    api.on('upgrade', (req, socket, head) => {
      if (!agentHub.handleUpgrade(req, socket, head)) socket.destroy();
    });
    api.listen(config.apiListen.port, config.apiListen.host);
    await once(api, 'listening');
    const addr = api.address() as AddressInfo;
    if (tlsOn) {
      const tlsApi = api as import('node:https').Server;
      keepServerCertFresh({
        dataDir: config.dataDir,
        issue,
        clock,
        signal: abort.signal,
        log,
        onIssued: (t) => {
          tlsApi.setSecureContext({ key: t.keyPem, cert: t.chainPem });
          log.info({ names: t.names, notAfter: new Date(t.notAfterMs).toISOString() }, 'server certificate re-issued');
        },
      });
    }
    const apiUrl = `${tlsOn ? 'https' : 'http'}://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
    log.info({ api: apiUrl, tls: tlsOn, dataDir: config.dataDir, cluster: config.clusterId, node: config.nodeName }, 'api listening');

    // Every known node's assignment set is decided before any agent can ask for it.
    await cp.publish();

    let adopted: Promise<void> = Promise.resolve();
    if (deps.localAgent) {
      // Another server's containers on this Docker host must not look like our orphans.
      await claimDataDir(store, deps.localAgent.runtime, { cluster: config.clusterId, node: config.nodeName, dataDir: config.dataDir, now: new Date(clock.now()).toISOString() });
      const agent = await deps.localAgent.start(
        {
          dial: async () => {
            const [agentEnd, serverEnd] = memoryChannelPair();
            agentHub.accept(serverEnd, 'embedded', { sameClock: true });
            return agentEnd;
          },
        },
        { signal: abort.signal, clock, log, onRecovery: (service, seconds) => metrics.observeRecovery(service, seconds) },
      );
      embedded = agent;
      adopted = (async () => {
        await agent.ready;
        // The server's view of this node's instances is fresh before any route is served.
        await reg.get(config.nodeName)?.observe();
      })();
    }

    // Routes are restored before the proxy takes its first request.
    let proxyAddress: { host: string; port: number } | null = null;
    const serving = adopted.then(async () => {
      if (abort.signal.aborted) return;
      await routesSettled();
      if (abort.signal.aborted) return;
      const listening = await px.listen(config.proxyListen.host, config.proxyListen.port);
      proxyAddress = listening;
      ownAddresses.push(listening);
      log.info({ proxy: `http://${listening.host}:${listening.port}` }, 'proxy listening');
      ready = true;
      log.info({ api: apiUrl }, 'server ready');
    });
    serving.catch((err: unknown) => log.fatal({ err }, 'could not start serving'));

    return {
      apiUrl,
      token,
      control: cp,
      metrics,
      proxy: () => proxyAddress,
      routes: () => px.routes(),
      ready: () => serving,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
