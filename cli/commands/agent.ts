import { hostname } from 'node:os';
import { createLogger } from '../../core/log.js';
import { DEFAULTS } from '../../core/defaults.js';
import { isOrcaError } from '../../core/errors.js';
import { defaultDataDir, parseAllowHostPaths } from '../../server/config.js';
import { agentUrl, startAgent } from '../../agent/main.js';
import { resolveToken } from '../client.js';
import { CliError, EXIT } from '../exit.js';

const NAME_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

interface AgentFlags {
  join: string;
  nodeName?: string;
  token?: string;
  dataDir?: string;
  advertise?: string;
  clusterId?: string;
  reconnectInitial?: string;
  reconnectMax?: string;
  watchdogInterval?: string;
  label?: string[];
  allowHostPath?: string[];
}

function secs(v: string | undefined, flag: string, def: number, errors: string[]): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < DEFAULTS.minDurationSecs) {
    errors.push(`${flag}: must be a number of seconds ≥ ${DEFAULTS.minDurationSecs}, got "${v}"`);
    return def;
  }
  return Math.round(n * 1000);
}

/** `orca agent --join URL --node-name N …`: a worker agent in the foreground until SIGINT/SIGTERM. */
export async function run(flags: AgentFlags, global: { token?: string; dataDir?: string }): Promise<void> {
  const errors: string[] = [];
  const join = agentUrl(flags.join);
  if (!join) errors.push(`--join: "${flags.join.slice(0, 200)}" must be a ws://, wss://, http:// or https:// URL of the server (for example http://orca-server:6880)`);
  const nodeName = flags.nodeName ?? hostname().toLowerCase();
  if (!NAME_RE.test(nodeName)) errors.push(`--node-name: "${nodeName}" must be a DNS label (lowercase letters, digits, '-')`);
  const labels: Record<string, string> = {};
  for (const l of flags.label ?? []) {
    const m = /^([^=]+)=(.*)$/.exec(l);
    if (!m || !m[1]) errors.push(`--label: "${l}" must be key=value`);
    else labels[m[1]] = m[2] ?? '';
  }
  const dataDir = defaultDataDir(flags.dataDir ?? global.dataDir);
  const token = resolveToken({ token: flags.token ?? global.token, dataDir });
  if (!token) errors.push('no token: pass --token, set ORCA_TOKEN, or put cluster.token in the data directory');
  const reconnectInitialMs = secs(flags.reconnectInitial, '--reconnect-initial', DEFAULTS.reconnectInitialMs, errors);
  const reconnectMaxMs = secs(flags.reconnectMax, '--reconnect-max', DEFAULTS.reconnectMaxMs, errors);
  const watchdogIntervalMs = secs(flags.watchdogInterval, '--watchdog-interval', DEFAULTS.watchdogIntervalMs, errors);
  const allowHostPaths = parseAllowHostPaths(flags.allowHostPath ?? [], '--allow-host-path', errors);
  if (errors.length) throw new CliError(EXIT.invalid, errors.join('\n'));

  const log = createLogger();
  let running;
  try {
    running = await startAgent(
      {
        join: (join as URL).toString(),
        token: token as string,
        nodeName,
        dataDir,
        advertise: flags.advertise ?? DEFAULTS.advertise,
        clusterId: flags.clusterId ?? DEFAULTS.clusterId,
        labels,
        reconnectInitialMs,
        reconnectMaxMs,
        watchdogIntervalMs,
        allowHostPaths,
      },
      { log },
    );
  } catch (err) {
    if (isOrcaError(err)) throw new CliError(EXIT.failed, err.message);
    throw err;
  }
  log.info({ node: nodeName, join: flags.join, dataDir }, 'agent started');
  const fatal = await new Promise<Error | null>((resolve) => {
    process.once('SIGINT', () => resolve(null));
    process.once('SIGTERM', () => resolve(null));
    // A wrong token or another cluster id: retrying forever would only hide the mistake.
    void running.failed.then((err) => resolve(err));
  });
  log.info('stopping');
  await running.stop();
  log.flush?.();
  if (fatal) throw new CliError(EXIT.invalid, fatal.message);
}
