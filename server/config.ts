import { readFile } from 'node:fs/promises';
import { availableParallelism, homedir, hostname } from 'node:os';
import { join, posix, resolve } from 'node:path';
import { z } from 'zod';
import { DEFAULTS } from '../core/defaults.js';
import { fail, ok, type Result } from '../core/errors.js';
import { sanProblem } from './cluster-tls.js';
import { parseStoreConfig, type EtcdStoreConfig } from './store-config.js';
import { parseEdgeConfig, type EdgeConfig } from './edge-config.js';
import { parseAlertConfig, type AlertWebhook } from './alerts/config.js';

export interface ServerConfig {
  dataDir: string;
  apiListen: { host: string; port: number };
  proxyListen: { host: string; port: number };
  /** `--proxy-workers`: processes serving the proxy (1: in the server's own process; see resolveProxyWorkers). */
  proxyWorkers: number;
  nodeName: string;
  advertise: string;
  clusterId: string;
  watchdogIntervalMs: number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  nodeDownGraceMs: number;
  /** The leader's etcd lease (`--leader-lease-secs`, SPEC §3.11): a lost leader is replaced within it (+ 2 s). */
  leaderLeaseSecs?: number;
  localAgent: boolean;
  /** The cluster key file (`--cluster-key-file`); default `<dataDir>/cluster.key`, made on first start. */
  clusterKeyFile?: string;
  /** Directories the embedded agent allows host mounts under (`--allow-host-path`, normalised); none by default. */
  allowHostPaths: string[];
  /**
   * TLS on the API port (SPEC §3.10): `--tls`, or on its own whenever the API listens beyond
   * loopback unless `--insecure-plaintext` (see apiServesTls).
   */
  tls: boolean;
  /** Extra names for the server certificate (`--tls-san`, repeatable). */
  tlsSans: string[];
  /** `--insecure-plaintext`: plaintext on a non-loopback API address (a warning at every start). */
  insecurePlaintext: boolean;
  /** `--store etcd://…` (SPEC §3.11); absent: the embedded LevelDB in the data directory. */
  store?: EtcdStoreConfig;
  /** `--token-file`: the admin token to use (the first server's, on a shared store) instead of making one. */
  tokenFile?: string;
  /** HTTPS at the edge (SPEC §3.12): `--proxy-listen-tls`, `--acme-*`. */
  edge?: EdgeConfig;
  /** `[[alert]]` tables of cluster.toml (SPEC §6); none: no alerts are sent. */
  alerts?: AlertWebhook[];
}

/** Flags as the CLI passes them (all optional; strings as typed). */
export interface ServerFlags {
  config?: string;
  dataDir?: string;
  apiListen?: string;
  proxyListen?: string;
  proxyWorkers?: string;
  nodeName?: string;
  advertise?: string;
  clusterId?: string;
  watchdogInterval?: string;
  heartbeatInterval?: string;
  heartbeatTimeout?: string;
  nodeDownGrace?: string;
  leaderLeaseSecs?: string;
  localAgent?: boolean;
  clusterKeyFile?: string;
  allowHostPath?: string[];
  tls?: boolean;
  tlsSan?: string[];
  insecurePlaintext?: boolean;
  store?: string;
  storePrefix?: string;
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
  tokenFile?: string;
  proxyListenTls?: string;
  acmeDirectory?: string;
  acmeEmail?: string;
  acmeCaFile?: string;
  acmeRetrySecs?: string;
}

const secs = z.number().min(DEFAULTS.minDurationSecs, `must be a number ≥ ${DEFAULTS.minDurationSecs}`);
const fileSchema = z.strictObject({
  data_dir: z.string().min(1).optional(),
  api_listen: z.string().optional(),
  proxy_listen: z.string().optional(),
  proxy_workers: z.union([z.number(), z.string()]).optional(),
  node_name: z.string().optional(),
  advertise: z.string().optional(),
  cluster_id: z.string().optional(),
  watchdog_interval_secs: secs.optional(),
  heartbeat_interval_secs: secs.optional(),
  heartbeat_timeout_secs: secs.optional(),
  node_down_grace_secs: secs.optional(),
  leader_lease_secs: z.number().int('must be whole seconds (an etcd lease)').min(1).max(60).optional(),
  local_agent: z.boolean().optional(),
  cluster_key_file: z.string().min(1).optional(),
  allow_host_path: z.array(z.string().min(1)).max(64).optional(),
  tls: z.boolean().optional(),
  tls_san: z.array(z.string().min(1)).max(DEFAULTS.tls.maxSans).optional(),
  insecure_plaintext: z.boolean().optional(),
  store: z.string().max(4096).optional(),
  store_prefix: z.string().optional(),
  etcd_ca: z.string().min(1).optional(),
  etcd_cert: z.string().min(1).optional(),
  etcd_key: z.string().min(1).optional(),
  token_file: z.string().min(1).optional(),
  proxy_listen_tls: z.string().optional(),
  acme_directory: z.string().optional(),
  acme_email: z.string().optional(),
  acme_ca_file: z.string().min(1).optional(),
  alert: z.unknown().optional(),
});

const NAME_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const CLUSTER_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** Whether the API's listen host is a loopback address (127.0.0.0/8, ::1, localhost): the only place plaintext is the default. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return h === '::1' || h === 'localhost' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** Whether the API (and the agent endpoint on its port) is served over TLS (SPEC §3.10). */
export function apiServesTls(c: Pick<ServerConfig, 'tls' | 'insecurePlaintext' | 'apiListen'>): boolean {
  return c.tls || (!c.insecurePlaintext && !isLoopbackHost(c.apiListen.host));
}

/** `$ORCA_HOME`, else `~/.orca`, unless given. */
export function defaultDataDir(explicit?: string): string {
  return resolve(explicit ?? process.env.ORCA_HOME ?? join(homedir(), DEFAULTS.dataDirName));
}

export function parseListen(value: string, what: string): Result<{ host: string; port: number }> {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) return fail([`${what}: "${value}" is not HOST:PORT (for example 127.0.0.1:6880)`]);
  return ok({ host: m[1] ?? (m[2] || '127.0.0.1'), port });
}

function parseSecs(value: string | number | undefined, what: string, errors: string[]): number | undefined {
  if (value === undefined) return undefined;
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isFinite(n) || n < DEFAULTS.minDurationSecs) {
    errors.push(`${what}: must be a number of seconds ≥ ${DEFAULTS.minDurationSecs}, got "${value}"`);
    return undefined;
  }
  return Math.round(n * 1000);
}

/**
 * `--allow-host-path DIR` values (orca server and orca agent): absolute, normalised (`..` folded,
 * no trailing slash), duplicates dropped; a relative one is an error naming the flag.
 */
export function parseAllowHostPaths(values: readonly string[], what: string, errors: string[]): string[] {
  const out: string[] = [];
  for (const v of values) {
    if (!posix.isAbsolute(v)) {
      errors.push(`${what}: "${v.slice(0, 200)}" must be an absolute directory`);
      continue;
    }
    const p = posix.normalize(v).replace(/(.)\/+$/, '$1');
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

/**
 * Builds the server configuration from `cluster.toml` (if given) and flags; flags win.
 * Every problem is reported, each naming the flag or the file key.
 */
export async function loadServerConfig(flags: ServerFlags): Promise<Result<ServerConfig>> {
  const errors: string[] = [];
  let file: z.infer<typeof fileSchema> = {};
  if (flags.config) {
    let text: string;
    try {
      text = await readFile(flags.config, 'utf8');
    } catch (err) {
      return fail([`${flags.config}: cannot read: ${(err as Error).message}`]);
    }
    const TOML = (await import('@iarna/toml')).default;
    let raw: unknown;
    try {
      raw = TOML.parse(text);
    } catch (err) {
      const e = err as { line?: number; col?: number; message: string };
      const where = e.line !== undefined ? `:${e.line + 1}:${(e.col ?? 0) + 1}` : '';
      return fail([`${flags.config}${where}: ${e.message.split('\n')[0]}`]);
    }
    const parsed = fileSchema.safeParse(raw);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const key = issue.path.join('.');
        if (issue.code === 'unrecognized_keys') errors.push(`${flags.config}: unknown key ${issue.keys.map((k) => `"${k}"`).join(', ')}`);
        else errors.push(`${flags.config}: ${key}: ${issue.message}`);
      }
    } else file = parsed.data;
  }

  const api = parseListen(flags.apiListen ?? file.api_listen ?? DEFAULTS.apiListen, flags.apiListen ? '--api-listen' : 'api_listen');
  const proxy = parseListen(flags.proxyListen ?? file.proxy_listen ?? DEFAULTS.proxyListen, flags.proxyListen ? '--proxy-listen' : 'proxy_listen');
  if (!api.ok) errors.push(...api.errors);
  if (!proxy.ok) errors.push(...proxy.errors);

  const nodeName = flags.nodeName ?? file.node_name ?? hostname().toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 63);
  if (!NAME_RE.test(nodeName)) errors.push(`--node-name: "${nodeName}" must be a DNS label (lowercase letters, digits, '-')`);
  const clusterId = flags.clusterId ?? file.cluster_id ?? DEFAULTS.clusterId;
  if (!CLUSTER_RE.test(clusterId)) errors.push(`--cluster-id: "${clusterId}" must be letters, digits, '.', '_' or '-' (at most 63)`);
  const advertise = flags.advertise ?? file.advertise ?? DEFAULTS.advertise;

  const ms = (flag: string | undefined, flagName: string, fileVal: number | undefined, def: number) =>
    parseSecs(flag, flagName, errors) ?? (fileVal !== undefined ? Math.round(fileVal * 1000) : def);

  const config: ServerConfig = {
    dataDir: defaultDataDir(flags.dataDir ?? file.data_dir),
    apiListen: api.ok ? api.value : { host: '127.0.0.1', port: 0 },
    proxyListen: proxy.ok ? proxy.value : { host: '127.0.0.1', port: 0 },
    proxyWorkers: resolveProxyWorkers(flags.proxyWorkers ?? file.proxy_workers ?? DEFAULTS.proxyWorkers, flags.proxyWorkers !== undefined ? '--proxy-workers' : 'proxy_workers', availableParallelism(), errors),
    nodeName,
    advertise,
    clusterId,
    watchdogIntervalMs: ms(flags.watchdogInterval, '--watchdog-interval', file.watchdog_interval_secs, DEFAULTS.watchdogIntervalMs),
    heartbeatIntervalMs: ms(flags.heartbeatInterval, '--heartbeat-interval', file.heartbeat_interval_secs, DEFAULTS.heartbeatIntervalMs),
    heartbeatTimeoutMs: ms(flags.heartbeatTimeout, '--heartbeat-timeout', file.heartbeat_timeout_secs, DEFAULTS.heartbeatTimeoutMs),
    nodeDownGraceMs: ms(flags.nodeDownGrace, '--node-down-grace', file.node_down_grace_secs, DEFAULTS.nodeDownGraceMs),
    leaderLeaseSecs: leaseSecs(flags.leaderLeaseSecs, file.leader_lease_secs, errors),
    localAgent: flags.localAgent ?? file.local_agent ?? true,
    allowHostPaths: parseAllowHostPaths(flags.allowHostPath ?? file.allow_host_path ?? [], flags.allowHostPath ? '--allow-host-path' : 'allow_host_path', errors),
    tls: false,
    tlsSans: [],
    insecurePlaintext: false,
  };
  const tlsSans = flags.tlsSan ?? file.tls_san ?? [];
  const sanWhat = flags.tlsSan ? '--tls-san' : 'tls_san';
  if (tlsSans.length > DEFAULTS.tls.maxSans) errors.push(`${sanWhat}: at most ${DEFAULTS.tls.maxSans} names`);
  for (const n of tlsSans.slice(0, DEFAULTS.tls.maxSans)) {
    const bad = sanProblem(n.replace(/^\[(.*)\]$/, '$1'));
    if (bad) errors.push(`${sanWhat}: "${n.slice(0, 200)}" ${bad}`);
  }
  config.tlsSans = tlsSans;
  config.tls = flags.tls ?? file.tls ?? false;
  config.insecurePlaintext = flags.insecurePlaintext ?? file.insecure_plaintext ?? false;
  if (config.tls && config.insecurePlaintext) errors.push('--tls and --insecure-plaintext: choose one');
  const keyFile = flags.clusterKeyFile ?? file.cluster_key_file;
  if (keyFile !== undefined) config.clusterKeyFile = resolve(keyFile);
  const tokenFile = flags.tokenFile ?? file.token_file;
  if (tokenFile !== undefined) config.tokenFile = resolve(tokenFile);
  const store = await parseStoreConfig(
    { store: flags.store ?? file.store, storePrefix: flags.storePrefix ?? file.store_prefix, etcdCa: flags.etcdCa ?? file.etcd_ca, etcdCert: flags.etcdCert ?? file.etcd_cert, etcdKey: flags.etcdKey ?? file.etcd_key },
    { store: flags.store !== undefined ? '--store' : 'store', storePrefix: flags.storePrefix !== undefined ? '--store-prefix' : 'store_prefix', etcdCa: flags.etcdCa !== undefined ? '--etcd-ca' : 'etcd_ca', etcdCert: flags.etcdCert !== undefined ? '--etcd-cert' : 'etcd_cert', etcdKey: flags.etcdKey !== undefined ? '--etcd-key' : 'etcd_key' },
    clusterId,
    errors,
  );
  if (store) config.store = store;
  config.edge = await parseEdgeConfig(
    { proxyListenTls: flags.proxyListenTls ?? file.proxy_listen_tls, acmeDirectory: flags.acmeDirectory ?? file.acme_directory, acmeEmail: flags.acmeEmail ?? file.acme_email, acmeCaFile: flags.acmeCaFile ?? file.acme_ca_file, acmeRetrySecs: flags.acmeRetrySecs },
    { proxyListenTls: flags.proxyListenTls !== undefined ? '--proxy-listen-tls' : 'proxy_listen_tls', acmeDirectory: flags.acmeDirectory !== undefined ? '--acme-directory' : 'acme_directory', acmeEmail: flags.acmeEmail !== undefined ? '--acme-email' : 'acme_email', acmeCaFile: flags.acmeCaFile !== undefined ? '--acme-ca-file' : 'acme_ca_file', acmeRetrySecs: '--acme-retry-secs' },
    parseListen,
    errors,
  );
  const alerts = parseAlertConfig(file.alert, flags.config ?? 'cluster.toml', errors);
  if (alerts.length) config.alerts = alerts;
  return errors.length ? fail(errors) : ok(config);
}

/**
 * `--proxy-workers N|auto` (or proxy_workers): a whole number from 1 to DEFAULTS.proxyWorkersMax,
 * or "auto": half of `cores`, at most DEFAULTS.proxyWorkersAutoMax, at least 1.
 */
export function resolveProxyWorkers(value: string | number, what: string, cores: number, errors: string[]): number {
  if (value === 'auto') return Math.max(1, Math.min(DEFAULTS.proxyWorkersAutoMax, Math.floor(cores / 2)));
  const n = typeof value === 'number' ? value : /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > DEFAULTS.proxyWorkersMax) {
    errors.push(`${what}: "${String(value).slice(0, 40)}" must be "auto" or a whole number from 1 to ${DEFAULTS.proxyWorkersMax}`);
    return 1;
  }
  return n;
}

/** `--leader-lease-secs` (or leader_lease_secs): whole seconds 1–60, an etcd lease's TTL; default 5. */
function leaseSecs(flag: string | undefined, file: number | undefined, errors: string[]): number {
  if (flag === undefined) return file ?? DEFAULTS.leaderLeaseSecs;
  const n = Number(flag);
  if (!/^\d+$/.test(flag.trim()) || !Number.isInteger(n) || n < 1 || n > 60) {
    errors.push(`--leader-lease-secs: "${flag.slice(0, 40)}" must be whole seconds from 1 to 60`);
    return DEFAULTS.leaderLeaseSecs;
  }
  return n;
}
