/** Every default in one place. Units are in the names. */

/**
 * Limits of the API listener (server/api.ts). Header and request timeouts bound slow clients (a request's
 * headers and body, not its response: `logs -f` and `events -f` stream for as long as their
 * reader reads, and are bounded instead by `streamStallMs`, the longest a reader may take
 * nothing before its stream is ended).
 */
const api = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  /** How often Node checks the two timeouts above. */
  checkIntervalMs: 1_000,
  maxHeadersCount: 100,
  maxHeaderBytes: 16 * 1024,
  maxConnections: 1_000,
  /**
   * A TLS client must finish its handshake within this from its connection (Node's handshakeTimeout:
   * an absolute deadline, not an idle one), else the connection is closed: a socket that sends
   * nothing, or a ClientHello a byte at a time, holds no slot for long.
   */
  tlsHandshakeTimeoutMs: 10_000,
  streamStallMs: 120_000,
  /** Records an `events -f` follower may fall behind by before the oldest are dropped. */
  followQueue: 1_000,
  /** Refused requests: one log line per remote address per this window. */
  refusalLogWindowMs: 60_000,
};
export type ApiLimitsShape = typeof api;

export const DEFAULTS = {
  clusterId: 'default',
  apiListen: '127.0.0.1:6880',
  proxyListen: '127.0.0.1:8080',
  /**
   * `--proxy-workers`: "auto" is half the cores (the other half is left to the backends on the
   * same node, wrk-style load and the control plane), at most proxyWorkersMax, at least 1 — and 1
   * is the in-process proxy, so a machine with fewer than 4 cores runs as it always did.
   */
  proxyWorkers: 'auto' as number | 'auto',
  proxyWorkersMax: 16,
  proxyWorkersAutoMax: 4,
  apiUrl: 'http://127.0.0.1:6880',
  advertise: '127.0.0.1',
  dataDirName: '.orca',

  /** The cluster CA and the server certificate (server/cluster-tls.ts). */
  tls: {
    caValidityDays: 3650,
    serverCertValidityDays: 365,
    /** A server certificate with less left than this is re-issued (at start, and on the daily check). */
    renewBeforeDays: 30,
    /** How often a running server looks whether its certificate needs re-issuing. */
    renewCheckIntervalMs: 24 * 3600_000,
    /** `--tls-san` values, at most. */
    maxSans: 64,
  },
  /** An agent dialling with a pinned CA fingerprint first fetches the server's chain: this long at most. */
  pinFetchTimeoutMs: 10_000,

  watchdogIntervalMs: 30_000,
  /**
   * Every this many watchdog passes, one reconciles every service; the others only those whose
   * containers changed since their last reconcile (agent resyncAll): one listing per pass at idle.
   */
  watchdogFullEvery: 10,
  heartbeatIntervalMs: 5_000,
  /** The control-plane leader's etcd lease, seconds (SPEC §3.11 `--leader-lease-secs`). */
  leaderLeaseSecs: 5,
  heartbeatTimeoutMs: 15_000,
  nodeDownGraceMs: 60_000,
  reconnectInitialMs: 5_000,
  reconnectMaxMs: 60_000,
  reconnectJitter: 0.2,

  /** Work-queue retry backoff for a failed key. */
  queueRetryInitialMs: 100,
  queueRetryMaxMs: 5_000,
  /**
   * Services an agent's container reconciler works on at once (creates and starts in flight): as
   * many as an operator's `docker run` at concurrency 8, so a large apply converges at Docker's
   * pace (other controllers keep the work queue's 4).
   */
  containerReconcileConcurrency: 8,
  /** A service whose last reconcile hit a terminal error (an image missing) is looked at again after this. */
  terminalRetryMs: 30_000,
  /** Docker event stream reconnect backoff. */
  eventsReconnectInitialMs: 100,
  eventsReconnectMaxMs: 1_000,
  /** A full resync that could not list containers tries again after this. */
  resyncRetryMs: 500,

  /** An instance whose container has not started running by then is given up on. */
  instanceStartTimeoutMs: 120_000,

  /** The readiness check of a service with a port and no readiness probe: its port accepts connections. */
  implicitTcpReadiness: { intervalSecs: 1, timeoutSecs: 1, failureThreshold: 3, successThreshold: 1, initialDelaySecs: 0, startIntervalSecs: 0.1 },

  /**
   * Probes share timers: each probe's interval is split into this many phases on a grid of wall
   * time, and the probes due in the same phase run from one timer (controllers/health/probe-wheel.ts).
   * A probe may so run up to half a phase early or late, never drifting: its next check is one
   * interval after the grid time it ran at.
   */
  probePhasesPerInterval: 4,

  /** How often /metrics' event-loop lag histogram samples (a timer of its own, so not too often: idle cost). */
  metricsLoopSampleMs: 1_000,

  /** At start, how long readiness probes of adopted instances may take before the server says ready. */
  adoptProbeWaitMs: 2_000,

  /** Longest wait for an instance's in-flight requests before it is stopped. */
  drainMaxMs: 30_000,

  /** Where an agent mounts its tmpfs of instances' secret files (`<dir>/<cluster>-<node>`), and its size. */
  secretsRunDir: '/run/orca-secrets',
  secretsTmpfsBytes: 64 * 1024 * 1024,

  /** An agent's connection must say hello within this. */
  agentHelloTimeoutMs: 10_000,
  /** Events an agent may add to the log: a burst, then a steady rate (the ring keeps the server's own). */
  agentEventBurst: 5_000,
  agentEventsPerSec: 500,
  /** How long the server waits for an agent's answer to a request (status, containers). */
  nodeRpcTimeoutMs: 1_000,

  api,
  /** The built-in proxy (proxy/, PROXY_DEFAULTS). */
  proxy: {
    connectTimeoutMs: 5_000,
    headersTimeoutMs: 60_000,
    idleTimeoutMs: 60_000,
    /** How long a client's idle keep-alive connection stays open (above common LB idle timeouts). */
    clientKeepAliveMs: 65_000,
    /**
     * A client must send its whole request head within this (Node: server.headersTimeout), a new
     * connection its first head too; else 408 and the connection is closed (slowloris, idle sockets).
     */
    clientHeadersTimeoutMs: 10_000,
    /**
     * A client must send its whole request, head and body, within this (server.requestTimeout);
     * else 408 (or a cut connection once the response began). Bounds how long a slow upload holds a
     * backend connection. Traefik's readTimeout has the same default.
     */
    clientRequestTimeoutMs: 60_000,
    /** How often the two timeouts above are checked (server's connectionsCheckingInterval; Node's 30 s is too coarse). */
    timeoutCheckIntervalMs: 1_000,
    /** Request line and headers together, at most (server maxHeaderSize); more is 431. Node's default. */
    maxHeaderBytes: 16 * 1024,
    /** Header fields per request, at most; more is 431 (Apache's LimitRequestFields). */
    maxHeaderCount: 100,
    /** Client connections open at once (server.maxConnections); further ones are closed at accept. */
    maxConnections: 4_096,
    /** A tunnel with no byte either way for this long is closed (clients that ping stay open). */
    tunnelIdleTimeoutMs: 300_000,
    /** Tunnels open or being set up at once; further upgrade requests get 503. */
    maxTunnels: 1_024,
    /** close() lets in-flight requests finish for this long, then cuts them. */
    closeGraceMs: 5_000,
    /** A backend that failed to connect is skipped by new requests for this long (nginx: fail_timeout). */
    failedBackendSkipMs: 2_000,
    /** At most one warning per backend in this window; the rest are counted in the next one. */
    warnIntervalMs: 1_000,
  },

  revisionsKept: 20,
  eventsKept: 10_000,

  /** The store on etcd (store/etcd-store.ts, SPEC §3.11). */
  etcdStore: {
    /** One gRPC call to one member, at most (a member that does not answer: the next is tried). */
    callTimeoutMs: 1_500,
    /** One store operation, retries across members and compare-and-swap rounds included, at most. */
    opTimeoutMs: 5_000,
    /** Connecting to a member, at most. */
    dialTimeoutMs: 3_000,
    /** A member that failed three calls in a row is skipped this long, then tried again. */
    memberSkipMs: 1_000,
    /** Compare-and-swap rounds of one write, at most, when other servers keep changing the same keys. */
    casAttempts: 16,
    /** A value (kv, service, revision), at most, as JSON: under etcd's default request limit (1.5 MiB). */
    maxValueBytes: 1024 * 1024,
    /** Operations of one transaction, at most: under etcd's default --max-txn-ops (128). */
    maxTxnOps: 120,
    /** Bytes of one transaction's values, at most. */
    maxTxnBytes: 1024 * 1024,
    /** Entries fetched per range request when listing. */
    pageSize: 256,
    /** Entries one listing returns, at most (services, kv entries). */
    maxListEntries: 100_000,
    /** Largest gRPC message accepted from etcd. */
    maxReceiveBytes: 64 * 1024 * 1024,
  },

  // Manifest defaults (SPEC §2).
  replicas: 1,
  stopGraceSecs: 10,
  init: true,
  routePath: '/',
  probe: {
    readiness: { intervalSecs: 5, timeoutSecs: 3, failureThreshold: 3, successThreshold: 1, initialDelaySecs: 10 },
    liveness: { intervalSecs: 10, timeoutSecs: 3, failureThreshold: 3, successThreshold: 1, initialDelaySecs: 0 },
  },
  restart: { policy: 'always' as const, backoffInitialSecs: 1, backoffMaxSecs: 60, resetAfterSecs: 60 },
  /** A service with volumes stops first (SPEC §2): two containers must not write one volume. */
  deploy: { strategy: 'start-first' as const, strategyWithVolumes: 'stop-first' as const, readyTimeoutSecs: 60 },
  mountReadOnly: false,
  minDurationSecs: 0.05,
} as const;
