/** Every default in one place. Units are in the names. */

export const DEFAULTS = {
  clusterId: 'default',
  apiListen: '127.0.0.1:6880',
  proxyListen: '127.0.0.1:8080',
  apiUrl: 'http://127.0.0.1:6880',
  advertise: '127.0.0.1',
  dataDirName: '.orca',

  watchdogIntervalMs: 30_000,
  heartbeatIntervalMs: 5_000,
  heartbeatTimeoutMs: 15_000,
  nodeDownGraceMs: 60_000,
  reconnectInitialMs: 5_000,
  reconnectMaxMs: 60_000,
  reconnectJitter: 0.2,

  /** Work-queue retry backoff for a failed key. */
  queueRetryInitialMs: 100,
  queueRetryMaxMs: 5_000,
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
  implicitTcpReadiness: { intervalSecs: 1, timeoutSecs: 1, failureThreshold: 3, successThreshold: 1, initialDelaySecs: 0 },

  /** At start, how long readiness probes of adopted instances may take before the server says ready. */
  adoptProbeWaitMs: 2_000,

  /** Longest wait for an instance's in-flight requests before it is stopped. */
  drainMaxMs: 30_000,

  revisionsKept: 20,
  eventsKept: 10_000,

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
  deploy: { strategy: 'start-first' as const, readyTimeoutSecs: 60 },
  minDurationSecs: 0.05,
} as const;
