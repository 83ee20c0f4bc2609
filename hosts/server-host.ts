import { wsDialer } from '../agent/main.js';
import { join } from 'node:path';
import { systemClock, systemRng, type Clock, type Rng } from '../core/clock.js';
import { DEFAULTS } from '../core/defaults.js';
import type { Logger } from '../core/log.js';
import type { Runtime } from '../runtime/types.js';
import type { Store } from '../store/types.js';
import { openLevelStore } from '../store/index.js';
import type { ProbeChecks } from '../controllers/health/checks.js';
import type { Agent } from '../agent/agent.js';
import { buildAgent, secretsFor } from '../agent/main.js';
import type { ServerConfig } from '../server/config.js';
import { startServer, type LocalAgent, type RunningServer } from '../server/server.js';

export interface ServerHostDeps {
  log: Logger;
  /** Created lazily (DockerRuntime) unless given (FakeRuntime in tests); only with a local agent. */
  runtime?: Runtime;
  clock?: Clock;
  rng?: Rng;
  /** Probe I/O for the local agent (tests). */
  checks?: ProbeChecks;
  /** Store factory for cluster.db and agent.db; default: LevelDB in the data directory. */
  openStore?: (path: string) => Promise<Store>;
  /** Secret delivery of the local agent (tests: a fixed key and MemorySecretFiles); default: agent.key and a tmpfs. */
  secrets?: { key: Buffer; files: import('../agent/secret-files.js').SecretFiles };
}

export interface RunningServerHost extends RunningServer {
  /** The embedded agent, unless --no-local-agent. */
  agent: Agent | null;
}

/**
 * The host of `orca server`: the control plane (server/) and, unless --no-local-agent, this
 * node's agent (agent/) embedded in it — its own store (`<data-dir>/agent.db`), the Docker
 * runtime, and a session that dials the server's hub in memory. Wiring only: the server decides
 * when the agent starts (after the API listens and assignments are published) and waits for it
 * to adopt this node's containers before the proxy takes its first request; stopping the server
 * stops the agent.
 */
export async function startServerHost(config: ServerConfig, deps: ServerHostDeps): Promise<RunningServerHost> {
  const openStore = deps.openStore ?? ((path: string) => openLevelStore(path));
  let agent: Agent | null = null;
  let localAgent: LocalAgent | undefined;
  if (config.localAgent) {
    const runtime = deps.runtime ?? new (await import('../runtime/docker-runtime.js')).DockerRuntime();
    localAgent = {
      runtime,
      dialRemote: (url, token, caPem) => wsDialer(url, token, deps.clock ?? systemClock, undefined, { caPem })(),
      start: async (hub, ctx) => {
        const store = await openStore(join(config.dataDir, 'agent.db'));
        try {
          const built = buildAgent({
            runtime,
            store,
            clock: ctx.clock,
            rng: deps.rng ?? systemRng,
            log: ctx.log,
            identity: { cluster: config.clusterId, node: config.nodeName, advertise: config.advertise },
            labels: {},
            watchdogIntervalMs: config.watchdogIntervalMs,
            dial: () => hub.dial(),
            reconnect: { initialMs: 100, maxMs: 1000, jitter: DEFAULTS.reconnectJitter },
            onRecovery: ctx.onRecovery,
            allowHostPaths: config.allowHostPaths,
            secrets: deps.secrets ?? (await secretsFor(config.dataDir, config.clusterId, config.nodeName)),
            ...(deps.checks ? { checks: deps.checks } : {}),
          });
          agent = built.agent;
          await built.agent.start(ctx.signal);
          const running = built.session.run(ctx.signal);
          return {
            ready: (async () => {
              await built.session.firstConnect;
              await built.agent.ready();
            })(),
            stop: () => running.catch(() => undefined),
            close: () => store.close(),
          };
        } catch (err) {
          await store.close().catch(() => undefined);
          throw err;
        }
      },
    };
  }
  const server = await startServer(config, {
    log: deps.log,
    clock: deps.clock ?? systemClock,
    openStore,
    ...(localAgent ? { localAgent } : {}),
  });
  return { ...server, agent };
}
