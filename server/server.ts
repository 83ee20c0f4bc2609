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
import { createDataPlane, type DataPlane } from '../proxy/data-plane.js';
import { Controller } from '../controllers/controller.js';
import { RouteExecutor } from '../controllers/route/executor.js';
import { ROUTE_TABLE_KEY, RouteReconciler } from '../controllers/route/reconciler.js';
import type { Route } from '../proxy/table.js';
import { ControlPlane } from './control-plane.js';
import { EventLog } from './event-log.js';
import { createApi } from './api.js';
import { adminToken, sharedClusterKey } from './shared-secrets.js';
import { Access, clusterCaHash } from './access.js';
import { clusterKeyPath } from './cluster-key.js';
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
import { EtcdLeadership, soloLeadership, whileLeading, type Fence, type Leadership } from './leadership.js';
import { leaderForwarder } from './forward.js';
import { adoptSharedCa, publishSharedCa } from './shared-ca.js';
import { RoutePush } from './route-push.js';
import { GatewayListener } from '../proxy/gateway-listener.js';
import { clusterNetwork } from '../runtime/labels.js';
import { edgeServices } from './edge-services.js';
import { RecoveryFeed } from './recoveries.js';
import { AlertService } from './alerts/alerts.js';

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
  /**
   * Opens a session with another server, the leader, over the network (this server stands by,
   * SPEC §3.11): the same dialler `orca agent` uses, with the admin token and the cluster CA.
   */
  dialRemote(url: string, token: string, caPem: string): Promise<Channel>;
}

export interface EmbedContext {
  /** Aborted first when the server stops: the agent stops on it. */
  signal: AbortSignal;
  /** The server's clock: the hub treats the embedded agent as sharing it. */
  clock: Clock;
  log: Logger;
  /** A failed slot has a ready replacement: seconds from the failure to then (the recovery metric). */
  onRecovery(service: string, seconds: number, detail?: import('../agent/container-reconciler.js').RecoveryDetail): void;
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
  let proxy: DataPlane | null = null;
  let hub: AgentHub | null = null;

  // Private before anything is written: 0700 directory, 0600 files (SPEC §3.7).
  await prepareDataDir(config.dataDir);
  // etcd's client (gRPC and all) is loaded only for --store etcd: ~10 MB of RSS a server on its embedded store never needs.
  const store = config.store ? await (await import('./store-backend.js')).openEtcdStore(config.store, log) : await openStore(join(config.dataDir, 'cluster.db'));
  /** Stops in dependency order: no new traffic, no new actions, log flushed, stores closed. */
  let resign: () => Promise<void> = async () => undefined;
  const stop = async () => {
    // A standby leads at once instead of after the lease.
    await resign().catch((err: unknown) => log.warn({ err }, 'resigning the lead'));
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
    const onShared = { dataDir: config.dataDir, shared: config.store !== undefined };
    const token = await adminToken(store, { ...onShared, ...(config.tokenFile ? { tokenFile: config.tokenFile } : {}), now: new Date(clock.now()).toISOString() });
    const access = await Access.open(store, clock, token);
    // Who leads (SPEC §3.11): one server on its embedded store always does; servers sharing an
    // etcd store elect one, whose writes are fenced. The API URL is known once it listens.
    let apiUrlNow = '';
    const self = { name: config.nodeName, address: () => apiUrlNow };
    const shared = store as Store & { client?: import('etcd3').Etcd3; prefix?: string; setFence?: (f: Fence | null) => void };
    const leadership: Leadership =
      shared.client && shared.prefix !== undefined && shared.setFence
        ? new EtcdLeadership({
            client: shared.client,
            prefix: shared.prefix,
            self,
            leaseSecs: config.leaderLeaseSecs ?? DEFAULTS.leaderLeaseSecs,
            clock,
            log: log.child({ component: 'leadership' }),
            setFence: (f) => shared.setFence?.(f),
          })
        : soloLeadership(self, clock);
    const leading = () => leadership.isLeader();
    // The cluster CA exists from the first start on, TLS or not (join tokens carry its fingerprint).
    const tlsOn = apiServesTls(config);
    const issue = { names: serverNames({ advertise: config.advertise, apiHost: config.apiListen.host, sans: config.tlsSans }), clusterId: config.clusterId, commonName: config.nodeName };
    // Servers on one store share the cluster key and the cluster CA (SPEC §3.11): the first one's.
    const clusterKey = await sharedClusterKey(store, { ...onShared, ...(config.clusterKeyFile ? { clusterKeyFile: config.clusterKeyFile } : {}) });
    if (onShared.shared && (await adoptSharedCa(store, config.dataDir, clusterKey, log)) === 'adopted') log.info('cluster CA taken from the shared store');
    let clusterTls = await ensureClusterTls(config.dataDir, { ...issue, nowMs: clock.now() });
    if (onShared.shared && (await publishSharedCa(store, config.dataDir, clusterKey))) {
      // Another server published its CA first: that one is the cluster's.
      await adoptSharedCa(store, config.dataDir, clusterKey, log);
      clusterTls = await ensureClusterTls(config.dataDir, { ...issue, nowMs: clock.now() });
    }
    if (clusterTls.created.ca) log.info({ ca: join(config.dataDir, TLS_DIR, 'ca.crt'), fingerprint: caFingerprint(clusterTls.caPem) }, 'cluster CA created');
    if (clusterTls.created.serverCert) log.info({ names: issue.names, notAfter: new Date(clusterTls.notAfterMs).toISOString() }, 'server certificate issued');
    if (!tlsOn && !isLoopbackHost(config.apiListen.host)) {
      log.warn({ api: config.apiListen.host }, 'INSECURE: the API and agent sessions are served in plaintext beyond loopback (--insecure-plaintext): tokens, credentials and secrets cross the network unencrypted');
    }
    const secrets = await SecretStore.open(store, clusterKey, clusterKeyPath(config.dataDir, config.clusterKeyFile));
    let cp!: ControlPlane;
    let rollouts: RolloutWatcher | null = null;
    let alerts: AlertService | null = null;
    const metrics = new Metrics({
      instances: () => cp?.observeAll() ?? Promise.resolve([]),
      nodes: () => cp?.nodeLinks().map((n) => ({ state: n.state() })) ?? [],
    });
    const eventLog = new EventLog(store, log.child({ component: 'event-log' }), (e) => {
      metrics.observeAction(e);
      rollouts?.onEvent(e);
      alerts?.onEvent(e);
    });
    events = eventLog;

    let desiredServices: readonly ServiceRecord[] = [];
    const px = createDataPlane({
      log: log.child({ component: 'proxy' }),
      clock,
      workers: config.proxyWorkers,
      metrics: {
        request: (route: string, status: number) => metrics.proxyRequest(route, status),
        requests: (route: string, status: number, count: number) => metrics.proxyRequest(route, status, count),
        upstreamSeconds: (route: string, seconds: number) => metrics.proxyUpstreamSeconds(route, seconds),
      },
    });
    proxy = px;
    // HTTPS at the edge (SPEC §3.12): certificates from the store to every proxy, ACME on the leader.
    const edge = edgeServices({ config, store, clusterKey, clock, log, proxy: px, leading, services: () => desiredServices, record: (e) => eventLog.record(e), signal: abort.signal });

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
    const routeLog = log.child({ reconciler: 'route' });
    /** A new table: the gateway listener looks whether the cluster network is there now. */
    let onRoutesApplied = (): void => undefined;
    const nodeEndpoints = () => reg.list().flatMap((n) => n.endpoints().map((e) => ({ ...e, node: n.name })));
    // The same table to every agent that runs a proxy (SPEC §3.11).
    const routePush = new RoutePush({ clock, log: routeLog, nodes: () => reg.list(), endpoints: nodeEndpoints, graceMs: config.heartbeatTimeoutMs });
    abort.signal.addEventListener('abort', () => routePush.stop(), { once: true });
    /**
     * A new leader keeps the table it has until the agents are back (or their heartbeat deadline
     * passed), so that a failover drops no route: it adopts the table from their reports.
     */
    let routesHeldUntil = 0;
    const routesMayChange = () => leading() && (clock.now() >= routesHeldUntil || reg.list().every((n) => n.attached || n.state() !== 'ready'));
    const routes = new Controller({
      reconciler: whileLeading(new RouteReconciler({
        desired: () => desiredServices,
        endpoints: nodeEndpoints,
        reachable: (node) => {
          const s = reg.get(node)?.state();
          return s === 'ready' || s === 'draining';
        },
        current: () => px.routes(),
        executor: new RouteExecutor({
          clock,
          log: routeLog,
          apply: (table) => {
            px.setRoutes(table);
            routePush.update(table);
            onRoutesApplied();
          },
          record: (e) => eventLog.record(e),
        }),
      }), routesMayChange),
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
      leading,
      onServices: (services) => {
        desiredServices = services;
        routesChanged();
        edge.servicesChanged();
      },
    });
    await cp.load();
    nodes = new Controller({
      reconciler: whileLeading(
        new NodeReconciler({
          clock,
          timing: { heartbeatTimeoutMs: config.heartbeatTimeoutMs, nodeDownGraceMs: config.nodeDownGraceMs },
          observe: (name) => reg.observe(name),
          names: () => reg.names(),
          executor: nodeExecutor,
        }),
        leading,
      ),
      clock,
      log: nodeLog,
      resyncMs: config.watchdogIntervalMs,
      retry: { initialMs: DEFAULTS.queueRetryInitialMs, maxMs: DEFAULTS.queueRetryMaxMs },
    });
    nodes.start(abort.signal);
    // Known nodes (from the store) get their heartbeat deadline to come back.
    for (const name of reg.names()) nodes.trigger(name);
    // Rollouts complete on what the nodes reported (each state report pokes the watcher), as
    // routes follow: asking every node for a fresh inventory on each poke listed and inspected
    // every container again and again while a large apply converged.
    const watcher = new RolloutWatcher(
      store,
      () => cp.statusFromReports(),
      clock,
      log.child({ component: 'rollouts' }),
    );
    rollouts = watcher;
    abort.signal.addEventListener('abort', () => watcher.stop());
    // Alerts (SPEC §6): the leader looks at services, nodes and certificates and posts to the webhooks.
    if (config.alerts?.length) {
      alerts = new AlertService({
        clock,
        log: log.child({ component: 'alerts' }),
        store,
        webhooks: config.alerts,
        leading,
        services: () => desiredServices,
        nodes: () => reg.list(),
        certs: async () => edge.api.certs.view(await edge.api.wanted(), clock.now()),
        record: (e) => eventLog.record(e),
        settleMs: config.heartbeatTimeoutMs,
      });
      alerts.start(abort.signal);
    }

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
      leading,
      leader: () => leadership.leaderAddress(),
      onSession: (node) => {
        routePush.sessionStarted(node);
        edge.sessionStarted(node);
        void cp.publish().catch((err: unknown) => log.error({ err }, 'publish failed'));
      },
      onState: () => {
        routesChanged();
        watcher.poke();
        alerts?.poke();
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

    // Recoveries seen here (where orca_recovery_seconds is observed), for the dashboard.
    const recoveries = new RecoveryFeed();
    api = createApi({
      token,
      recoveries,
      log: log.child({ component: 'api' }),
      control: cp,
      store,
      events: eventLog,
      nodes: reg,
      // A standby is ready once its store is open and its API listens (SPEC §3.11).
      isReady: () => ready || (!leading() && apiUrlNow !== ''),
      forward: leaderForwarder({ isLeader: leading, leader: () => leadership.leaderAddress(), problem: () => leadership.problem(), ca: () => clusterTls.caPem, log: log.child({ component: 'forward' }) }),
      servers: () => leadership.members(),
      certs: edge.api,
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
    // What the other servers and the agents are told to dial (the leader's address): an API on
    // every interface (0.0.0.0, ::) is reached at the --advertise address.
    const wildcard = addr.address === '0.0.0.0' || addr.address === '::';
    const reachable = wildcard ? (config.advertise.includes(':') ? `[${config.advertise}]` : config.advertise) : addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    apiUrlNow = `${tlsOn ? 'https' : 'http'}://${reachable}:${addr.port}`;

    // A term as leader begins with what the store says now (another leader may have written it)
    // and every node given a fresh deadline; it ends with every agent session closed, so that the
    // agents find the new leader at once.
    let terms: Promise<void> = Promise.resolve();
    leadership.onChange((leadingNow) => {
      terms = terms.then(async () => {
        if (abort.signal.aborted) return;
        edge.servicesChanged();
        if (!leadingNow) {
          agentHub.closeSessions('this server no longer leads the control plane');
          return;
        }
        await access.reload();
        await reg.reload();
        await cp.load();
        routesHeldUntil = clock.now() + config.heartbeatTimeoutMs;
        clock.setTimeout(() => routesChanged(), config.heartbeatTimeoutMs + 10);
        for (const name of reg.names()) nodes?.trigger(name);
        routesChanged();
        await cp.publish();
      }).catch((err: unknown) => log.error({ err }, 'could not begin or end a term as leader'));
    });
    await leadership.start();
    resign = () => leadership.stop();

    // Every known node's assignment set is decided before any agent can ask for it.
    await cp.publish();

    let adopted: Promise<void> = Promise.resolve();
    if (deps.localAgent) {
      // Another server's containers on this Docker host must not look like our orphans.
      await claimDataDir(store, deps.localAgent.runtime, { cluster: config.clusterId, node: config.nodeName, dataDir: config.dataDir, now: new Date(clock.now()).toISOString() });
      const agent = await deps.localAgent.start(
        {
          dial: async () => {
            if (!leading()) {
              // A standby's own agent is an agent like any other: it joins the leader.
              const leader = leadership.leaderAddress();
              if (!leader) throw new Error('no server leads the control plane yet');
              return deps.localAgent!.dialRemote(leader, token, clusterTls.caPem);
            }
            const [agentEnd, serverEnd] = memoryChannelPair();
            agentHub.accept(serverEnd, 'embedded', { sameClock: true });
            return agentEnd;
          },
        },
        {
          signal: abort.signal,
          clock,
          log,
          onRecovery: (service, seconds, detail) => {
            metrics.observeRecovery(service, seconds);
            recoveries.publish({ time: new Date(clock.now()).toISOString(), service, instance: detail?.instance ?? '', node: config.nodeName, ms: Math.round(seconds * 1000), reason: detail?.reason ?? 'failure' });
          },
        },
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
      await edge.start(() => reg.list());
      routePush.start();
      if (deps.localAgent) {
        // Containers of this node reach the proxy as orca.internal (SPEC §3.8): it listens on the cluster network's gateway too.
        const runtime = deps.localAgent.runtime;
        const network = clusterNetwork(config.clusterId).name;
        const gw = new GatewayListener({
          clock,
          log: log.child({ component: 'proxy' }),
          gateway: async () => (await runtime.inspectNetwork(network))?.gateway ?? null,
          listen: (h, p) => px.listenAlso(h, p),
          port: listening.port,
          recheckMs: config.watchdogIntervalMs,
        });
        abort.signal.addEventListener('abort', () => void gw.stop(), { once: true });
        onRoutesApplied = () => gw.poke();
        await gw.start();
      }
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
