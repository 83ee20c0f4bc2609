import { OrcaError } from '../core/errors.js';
import { prepareDataDir } from '../store/data-dir.js';
import { join } from 'node:path';
import { totalmem } from 'node:os';
import { sleep, systemClock, systemRng, type Clock, type Rng } from '../core/clock.js';
import { DEFAULTS } from '../core/defaults.js';
import type { Logger } from '../core/log.js';
import type { Runtime } from '../runtime/types.js';
import type { Store } from '../store/types.js';
import { openLevelStore } from '../store/index.js';
import { Agent } from './agent.js';
import { AgentSession } from './session.js';
import { keepAlive, wsChannel, type Channel } from '../protocol/channel.js';
import { LIMITS } from '../protocol/messages.js';
import { TrustAnchor, type TlsTrust } from '../protocol/tls-trust.js';
import type { RouteEntry } from '../protocol/routes.js';
import { loadAgentKey } from './secret-cache.js';
import { TmpfsSecretFiles, type SecretFiles } from './secret-files.js';
import type { DialAuth } from './join.js';
import { failoverDialer, StandbyAnswer } from './dial.js';
import { NodeIngress } from './ingress.js';
import type { EdgeState } from '../proxy/tls.js';
import { Proxy } from '../proxy/proxy.js';
import { clusterNetwork } from '../runtime/labels.js';

export interface AgentConfig {
  /** The server's API URL (http://host:port), or several comma-separated (SPEC §3.11: every server of the control plane). */
  join: string;
  /** The admin token, or (SPEC §3.10) the node credential / join token handling of agentAuth. */
  token: string | DialAuth;
  nodeName: string;
  dataDir: string;
  advertise: string;
  clusterId: string;
  labels: Record<string, string>;
  reconnectInitialMs: number;
  reconnectMaxMs: number;
  /** A full local resync period (the agent's own watchdog). */
  watchdogIntervalMs: number;
  /** Directories host mounts may come from (`--allow-host-path`); none by default. */
  allowHostPaths?: string[];
  /**
   * For a wss:// (https://) join when what the token presents carries no CA of its own: the
   * cluster CA (`--ca-cert`) or its fingerprint. Absent: Node's default roots.
   */
  tls?: TlsTrust;
  /**
   * `--proxy-listen`: run the proxy on this node too (SPEC §3.11), serving the route table the
   * server pushes, and on the cluster network's gateway at the same port (`orca.internal`).
   */
  proxyListen?: { host: string; port: number };
  /** `--proxy-listen-tls` (SPEC §3.12, with proxyListen): the node's proxy serves TLS there too. */
  proxyListenTls?: { host: string; port: number };
}

export interface RunningAgent {
  agent: Agent;
  session: AgentSession;
  /** The node's proxy, with --proxy-listen. */
  ingress: NodeIngress | null;
  /** Resolves when the session gave up for good (wrong token, another cluster): see AgentSession.fatal. */
  failed: Promise<Error>;
  stop(): Promise<void>;
}

/**
 * The WebSocket URL of the server's agent endpoint from a `--join` URL: ws://, wss://, http://
 * or https:// (http becomes ws, https becomes wss); the path is always /v1/agent. Null for
 * anything else.
 */
export function agentUrl(join: string): URL | null {
  let u: URL;
  try {
    u = new URL(join);
  } catch {
    return null;
  }
  const scheme = { 'http:': 'ws:', 'https:': 'wss:', 'ws:': 'ws:', 'wss:': 'wss:' }[u.protocol];
  if (!scheme || !u.hostname) return null;
  return new URL(`${scheme}//${u.host}/v1/agent`);
}

/**
 * Dials the server's agent endpoint over a WebSocket with the admin token, or with what `auth`
 * presents (a node credential, after exchanging the join token; its pinned CA for wss). A 401
 * to a credential that `auth` could replace with a new one is dialled again at once. Without a CA
 * from `auth`, a wss:// server is verified against `trust` (the CA's PEM, or a pinned CA
 * fingerprint: see TrustAnchor), with Node's host name check, before any byte of the token leaves.
 */
export function wsDialer(join: string, token: string | DialAuth, clock: Clock = systemClock, pingIntervalMs = DEFAULTS.heartbeatIntervalMs, trust?: TlsTrust): () => Promise<Channel> {
  const url = agentUrl(join);
  if (!url) throw new Error(`--join: "${join}" must be a ws://, wss://, http:// or https:// URL of the server`);
  const anchor = new TrustAnchor(trust);
  const dial = async (again: boolean): Promise<Channel> => {
    const { WebSocket } = await import('ws');
    const auth = typeof token === 'string' ? { bearer: token } : await token.next();
    const ca = auth.ca ?? (await anchor.ca(url));
    return new Promise<Channel>((resolve, reject) => {
      const ws = new WebSocket(url, { maxPayload: LIMITS.maxMessageBytes * 16, headers: { authorization: `Bearer ${auth.bearer}` }, handshakeTimeout: 5000, ...(ca ? { ca } : {}) });
      ws.once('open', () => {
        keepAlive(ws, clock, pingIntervalMs);
        resolve(wsChannel(ws));
      });
      let answered = false;
      ws.once('unexpected-response', (_req, res) => {
        // terminate() makes ws emit an 'error' of its own: the answer is what counts.
        answered = true;
        ws.terminate();
        if (res.statusCode === 503) {
          // A standby (SPEC §3.11): it names the leader; the failover dialler goes there.
          const named = res.headers['x-orca-leader'];
          const leader = typeof named === 'string' && /^https?:\/\/\S{1,2000}$/.test(named) ? named : null;
          return reject(new StandbyAnswer(leader, `the server at ${url.host} stands by${leader ? `; the leader is ${leader}` : ' (no leader elected yet)'}`));
        }
        if (res.statusCode !== 401) return reject(new Error(`the server answered HTTP ${res.statusCode}`));
        // A wrong token does not get better by retrying: the session gives up on it (exit 2).
        if (typeof token === 'string') {
          return reject(new OrcaError('ORCA_UNAUTHORIZED', `the server at ${url} refused the token (401): pass the cluster's token (--token, $ORCA_TOKEN, or cluster.token in --data-dir)`));
        }
        token.refused(auth.bearer).then((r) => (r === true && !again ? dial(true).then(resolve, reject) : reject(r === true ? new Error('the server refused the new credential') : r)), reject);
      });
      ws.on('error', (err) => {
        if (!answered) reject(err);
      });
    });
  };
  return () => dial(false);
}

/**
 * The composition root of `orca agent`: its own store (`<data-dir>/agent.db`, the cached
 * assignments it keeps healing from while cut off), the Docker runtime, the agent and its
 * session with the server. The server's embedded agent is built from the same parts.
 */
export async function startAgent(
  config: AgentConfig,
  deps: { log: Logger; runtime?: Runtime; clock?: Clock; rng?: Rng; openStore?: (path: string) => Promise<Store>; dial?: () => Promise<Channel> },
): Promise<RunningAgent> {
  const clock = deps.clock ?? systemClock;
  const rng = deps.rng ?? systemRng;
  const log = deps.log;
  // Private before anything is written: 0700 directory, 0600 files (the cache holds assignments).
  await prepareDataDir(config.dataDir);
  const store = await (deps.openStore ?? ((p: string) => openLevelStore(p)))(join(config.dataDir, 'agent.db'));
  const abort = new AbortController();
  let ingress: NodeIngress | null = null;
  try {
    const runtime = deps.runtime ?? new (await import('../runtime/docker-runtime.js')).DockerRuntime();
    if (config.proxyListen) {
      const network = clusterNetwork(config.clusterId).name;
      ingress = new NodeIngress({
        node: config.nodeName,
        clock,
        log: log.child({ component: 'proxy' }),
        store,
        proxy: new Proxy({ log: log.child({ component: 'proxy' }), clock }),
        listen: config.proxyListen,
        ...(config.proxyListenTls ? { listenTls: config.proxyListenTls } : {}),
        gateway: async () => (await runtime.inspectNetwork(network))?.gateway ?? null,
        gatewayRecheckMs: config.watchdogIntervalMs,
      });
    }
    const { agent, session } = buildAgent({
      runtime,
      store,
      clock,
      rng,
      log,
      identity: { cluster: config.clusterId, node: config.nodeName, advertise: config.advertise },
      labels: config.labels,
      watchdogIntervalMs: config.watchdogIntervalMs,
      allowHostPaths: config.allowHostPaths ?? [],
      secrets: await secretsFor(config.dataDir, config.clusterId, config.nodeName),
      dial: deps.dial ?? failoverDialer(config.join.split(','), (u) => wsDialer(u, config.token, clock, DEFAULTS.heartbeatIntervalMs, config.tls)),
      reconnect: { initialMs: config.reconnectInitialMs, maxMs: config.reconnectMaxMs, jitter: DEFAULTS.reconnectJitter },
      ...(ingress ? { ingress } : {}),
    });
    await agent.start(abort.signal);
    if (ingress) {
      // The node's own instances are adopted and probed once (bounded) before the proxy takes requests.
      await Promise.race([agent.ready(), sleep(clock, DEFAULTS.adoptProbeWaitMs, abort.signal).catch(() => undefined)]);
      await ingress.start();
    }
    const running = session.run(abort.signal);
    const ing = ingress;
    return {
      agent,
      session,
      ingress,
      failed: session.fatal,
      async stop() {
        abort.abort();
        await running.catch(() => undefined);
        await ing?.stop().catch((err: unknown) => log.warn({ err }, 'closing the proxy'));
        await store.close();
      },
    };
  } catch (err) {
    abort.abort();
    await ingress?.stop().catch(() => undefined);
    await store.close();
    throw err;
  }
}

/**
 * Secret delivery of an agent whose data directory is `dataDir` (SPEC §3.9): its key
 * `<dataDir>/agent.key` (made on first start) and a tmpfs for instances' secret files at
 * `/run/orca-secrets/<cluster>-<node>`, mounted on the first secret written.
 */
export async function secretsFor(dataDir: string, cluster: string, node: string): Promise<{ key: Buffer; files: SecretFiles }> {
  return { key: await loadAgentKey(dataDir), files: new TmpfsSecretFiles(secretFilesRoot(cluster, node), { sizeBytes: DEFAULTS.secretsTmpfsBytes }) };
}

/** Where a node's tmpfs of secret files is mounted: one per cluster and node, so agents sharing a host never share it. */
export function secretFilesRoot(cluster: string, node: string): string {
  return join(DEFAULTS.secretsRunDir, `${cluster}-${node}`);
}

/**
 * An Agent and its AgentSession, wired through plain functions (remote agents and the embedded
 * one alike): the agent pushes its events, endpoints and drains into the session; the session
 * reads the agent's inventory and hands the server's requests to it. Neither holds the other.
 */
export function buildAgent(o: {
  runtime: Runtime;
  store: Store;
  clock: Clock;
  rng: Rng;
  log: Logger;
  identity: { cluster: string; node: string; advertise: string };
  labels: Record<string, string>;
  watchdogIntervalMs: number;
  dial: () => Promise<Channel>;
  reconnect: { initialMs: number; maxMs: number; jitter: number };
  onRecovery?: (service: string, seconds: number, detail?: import('./container-reconciler.js').RecoveryDetail) => void;
  checks?: import('../controllers/health/checks.js').ProbeChecks;
  /** Directories host mounts may come from (`--allow-host-path`); none by default. */
  allowHostPaths?: string[];
  /** Secret delivery: the node's agent key and where secret files live (see secretsFor). */
  secrets?: { key: Buffer; files: SecretFiles };
  /** The node's own proxy (`--proxy-listen`, SPEC §3.11): fed the server's table and the node's endpoints. */
  ingress?: NodeIngress;
}): { agent: Agent; session: AgentSession } {
  const allowHostPaths = o.allowHostPaths ?? [];
  const session = new AgentSession({
    clock: o.clock,
    rng: o.rng,
    log: o.log.child({ component: 'session', node: o.identity.node }),
    identity: { ...o.identity, labels: o.labels, capacity: { memoryBytes: totalmem() }, ...(allowHostPaths.length > 0 ? { allowHostPaths } : {}), ...(o.ingress ? { proxy: true } : {}), ...(o.ingress?.servesTls ? { proxyTls: true } : {}) },
    dial: o.dial,
    reconnect: o.reconnect,
    inventory: async () => {
      const reports = await agent.observe();
      return { reports, endpoints: agent.endpoints() };
    },
    onAssignments: (slots, secrets) => agent.setAssignments(slots, secrets),
    containers: (service) => agent.containers(service),
    volumes: () => agent.volumes(),
    removeVolumes: (service) => agent.removeVolumes(service),
    logs: (containerId, opts) => agent.logs(containerId, opts),
    ...(o.ingress ? { onRoutes: (routes: RouteEntry[]) => o.ingress?.setTable(routes), onEdge: (edge: EdgeState) => o.ingress?.setEdge(edge) } : {}),
  });
  const agent = new Agent({
    runtime: o.runtime,
    store: o.store,
    clock: o.clock,
    rng: o.rng,
    log: o.log,
    identity: o.identity,
    watchdogIntervalMs: o.watchdogIntervalMs,
    record: (e) => session.record(e),
    onChange: () => {
      const endpoints = agent.endpoints();
      // The node's own proxy first: a dead instance leaves it without a round trip to the server.
      o.ingress?.localChanged(endpoints);
      session.changed(endpoints);
    },
    // The server's proxy (and this node's own) stop sending it work and wait for what is in flight.
    drain: async (instance, address, maxMs) => {
      await Promise.all([session.drain(instance, address, maxMs), o.ingress?.drain(address, maxMs)]);
    },
    allowHostPaths,
    ...(o.secrets ? { secrets: o.secrets } : {}),
    ...(o.onRecovery ? { onRecovery: o.onRecovery } : {}),
    ...(o.checks ? { checks: o.checks } : {}),
  });
  return { agent, session };
}
