import { hostname } from 'node:os';
import { createLogger } from '../../core/log.js';
import { DEFAULTS } from '../../core/defaults.js';
import { isOrcaError } from '../../core/errors.js';
import { defaultDataDir, parseAllowHostPaths, parseListen } from '../../server/config.js';
import { MAX_JOIN_URLS } from '../../agent/dial.js';
import { agentUrl, startAgent } from '../../agent/main.js';
import { agentAuth, readBounded, readCredential } from '../../agent/join.js';
import { looksLikeJoinToken, parseJoinToken } from '../../server/join-tokens.js';
import { resolveCaCert, resolveToken } from '../client.js';
import { CliError, EXIT } from '../exit.js';

const NAME_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

interface AgentFlags {
  join: string;
  nodeName?: string;
  token?: string;
  tokenFile?: string;
  dataDir?: string;
  advertise?: string;
  clusterId?: string;
  reconnectInitial?: string;
  reconnectMax?: string;
  watchdogInterval?: string;
  label?: string[];
  allowHostPath?: string[];
  proxyListen?: string;
  proxyListenTls?: string;
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
export async function run(flags: AgentFlags, global: { token?: string; dataDir?: string; caCert?: string }): Promise<void> {
  const errors: string[] = [];
  // Several servers of one control plane: --join a,b,c (SPEC §3.11); every one is tried at once.
  const joins = flags.join.split(',').map((u) => u.trim()).filter(Boolean).slice(0, MAX_JOIN_URLS + 1);
  if (joins.length > MAX_JOIN_URLS) errors.push(`--join: at most ${MAX_JOIN_URLS} servers`);
  for (const u of joins) if (!agentUrl(u)) errors.push(`--join: "${u.slice(0, 200)}" must be a ws://, wss://, http:// or https:// URL of the server (for example http://orca-server:6880)`);
  if (joins.length === 0) errors.push('--join: no server URL given');
  const join = joins.length > 0 ? agentUrl(joins[0]!) : null;
  const nodeName = flags.nodeName ?? hostname().toLowerCase();
  if (!NAME_RE.test(nodeName)) errors.push(`--node-name: "${nodeName}" must be a DNS label (lowercase letters, digits, '-')`);
  const labels: Record<string, string> = {};
  for (const l of flags.label ?? []) {
    const m = /^([^=]+)=(.*)$/.exec(l);
    if (!m || !m[1]) errors.push(`--label: "${l}" must be key=value`);
    else labels[m[1]] = m[2] ?? '';
  }
  const dataDir = defaultDataDir(flags.dataDir ?? global.dataDir);
  const log = createLogger();
  // SPEC §3.10: a join token (--token-file, $ORCA_JOIN_TOKEN, --token) or the admin token; a
  // credential already in the data directory wins over both.
  const argvToken = flags.token ?? global.token;
  if (argvToken !== undefined) log.warn('--token is visible to other users of this host (ps, /proc): prefer --token-file or $ORCA_JOIN_TOKEN');
  let given: string | undefined = argvToken;
  if (flags.tokenFile !== undefined) {
    try {
      const text = await readBounded(flags.tokenFile);
      if (text === null || !text.trim()) errors.push(`--token-file: ${flags.tokenFile} ${text === null ? 'does not exist' : 'is empty'}`);
      else given = text.trim();
    } catch (err) {
      errors.push(`--token-file: ${(err as Error).message}`);
    }
  }
  given ??= process.env.ORCA_JOIN_TOKEN?.trim() || undefined;
  let joinToken: string | undefined;
  let adminToken: string | undefined;
  if (given !== undefined && looksLikeJoinToken(given)) {
    const t = parseJoinToken(given);
    if (t.ok) joinToken = given;
    else errors.push(`join token: ${t.errors}`);
  } else adminToken = given ?? resolveToken({ dataDir });
  let credentialNode: string | null = null;
  try {
    credentialNode = (await readCredential(dataDir))?.node ?? null;
  } catch (err) {
    errors.push((err as Error).message);
  }
  if (credentialNode !== null && credentialNode !== nodeName) {
    errors.push(`the node credential in ${dataDir} is for node ${credentialNode}, not ${nodeName}: use --node-name ${credentialNode}, or another --data-dir`);
  }
  if (!joinToken && !adminToken && credentialNode === null) {
    errors.push('no token: pass a join token (--token-file FILE or $ORCA_JOIN_TOKEN; orca token create makes one), or the admin token (--token, $ORCA_TOKEN, or cluster.token in the data directory)');
  }
  // wss:// (or https://): the server is verified against --ca-cert / $ORCA_CA_CERT (SPEC §3.10).
  const ca = join?.protocol === 'wss:' ? resolveCaCert({ ...(global.caCert !== undefined ? { caCert: global.caCert } : {}), dataDir }) : undefined;
  const reconnectInitialMs = secs(flags.reconnectInitial, '--reconnect-initial', DEFAULTS.reconnectInitialMs, errors);
  const reconnectMaxMs = secs(flags.reconnectMax, '--reconnect-max', DEFAULTS.reconnectMaxMs, errors);
  const watchdogIntervalMs = secs(flags.watchdogInterval, '--watchdog-interval', DEFAULTS.watchdogIntervalMs, errors);
  const allowHostPaths = parseAllowHostPaths(flags.allowHostPath ?? [], '--allow-host-path', errors);
  // Ingress on this node too (SPEC §3.11): off unless asked for.
  const proxy = flags.proxyListen !== undefined ? parseListen(flags.proxyListen, '--proxy-listen') : null;
  if (proxy && !proxy.ok) errors.push(...proxy.errors);
  // HTTPS at the edge (SPEC §3.12): the node's proxy serves TLS too.
  const proxyTls = flags.proxyListenTls !== undefined ? parseListen(flags.proxyListenTls, '--proxy-listen-tls') : null;
  if (proxyTls && !proxyTls.ok) errors.push(...proxyTls.errors);
  if (proxyTls && !proxy) errors.push('--proxy-listen-tls: needs --proxy-listen (the plain port answers ACME challenges and redirects to https)');
  if (errors.length) throw new CliError(EXIT.invalid, errors.join('\n'));

  let running;
  try {
    running = await startAgent(
      {
        join: joins.map((u) => (agentUrl(u) as URL).toString()).join(','),
        token:
          credentialNode === null && !joinToken && adminToken
            ? adminToken
            : agentAuth({ join: join as URL, dataDir, node: nodeName, ...(joinToken ? { joinToken } : {}), ...(adminToken ? { adminToken } : {}), log }),
        nodeName,
        dataDir,
        advertise: flags.advertise ?? DEFAULTS.advertise,
        clusterId: flags.clusterId ?? DEFAULTS.clusterId,
        labels,
        reconnectInitialMs,
        reconnectMaxMs,
        watchdogIntervalMs,
        allowHostPaths,
        ...(ca ? { tls: { caPem: ca.pem } } : {}),
        ...(proxy?.ok ? { proxyListen: proxy.value } : {}),
        ...(proxyTls?.ok ? { proxyListenTls: proxyTls.value } : {}),
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
