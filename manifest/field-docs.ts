/**
 * The prose of every manifest field, keyed by its path below a service (`readiness.path`; probe
 * fields are shared by readiness and liveness as `probe.<field>`). One place for the words, used by
 * docs/manifest.md (scripts/manifest-docs.ts) and by the JSON Schema of `orca schema`
 * (json-schema.ts) as descriptions. The schema itself stays in schema.ts.
 */
import { DEFAULTS } from '../core/defaults.js';
import { LIMITS } from './limits.js';
import { MIN_MEMORY_BYTES } from './units.js';

export interface FieldDoc {
  /** What the field means, in one or two sentences of Markdown. */
  doc: string;
  /** A TOML value for the Example column. */
  example: string;
  /** The default, when the field has one (written as TOML). */
  default?: string;
  /** Type, when JSON Schema cannot say it (custom types). */
  type?: string;
  /** Bounds JSON Schema cannot express (custom checks). */
  bounds?: string[];
}

const secs = (n: number) => String(n);
const P = DEFAULTS.probe;

/** Prose per field path (`readiness.path`); probe fields are shared by readiness and liveness. */
export const FIELD_DOCS: Record<string, FieldDoc> = {
  name: { doc: 'The service name: unique in the cluster, a DNS label. Instances are named `<name>-<revision>-<slot>-<suffix>`.', example: '"web"' },
  image: { doc: 'The Docker image. It must be present on every node that may run the service: **Orca never pulls images**.', example: '"orca-example/web:1"' },
  command: { doc: "Docker's `Cmd`: the command and its arguments. Default: the image's.", example: '["/bin/httpd", "-f", "-p", "80"]' },
  entrypoint: { doc: "Docker's `Entrypoint`. Default: the image's.", example: '["/bin/sh", "-c"]' },
  env: { doc: 'Environment variables of the container.', example: '{ GREETING = "hello" }', bounds: [`at most ${LIMITS.envKeys} variables`] },
  replicas: { doc: 'How many instances run; `0` scales the service to zero (it is kept, with its history).', default: String(DEFAULTS.replicas), example: '2' },
  port: {
    doc: 'The container port that takes traffic (routes) and probes. Published on the node\'s advertise address. Without a readiness probe, an instance is ready once something inside the container accepts connections on it.',
    example: '80',
  },
  stop_grace_secs: { doc: 'Time between SIGTERM and SIGKILL when an instance stops.', default: secs(DEFAULTS.stopGraceSecs), example: '10' },
  init: { doc: "Run Docker's init as PID 1, so SIGTERM reaches the app and zombies are reaped.", default: String(DEFAULTS.init), example: 'false' },
  labels: { doc: 'Extra Docker labels on every container of the service. Keys starting with `orca.` are reserved.', example: '{ team = "web" }', bounds: [`at most ${LIMITS.labelKeys} labels`] },
  placement: { doc: 'Where instances may run: on one node, or on nodes with all the given labels (`orca agent --label`). Set `node` or `labels`.', example: '{ node = "n2" }' },
  'placement.node': { doc: 'Run only on the node of this name.', example: '"n2"' },
  'placement.labels': { doc: 'Run only on nodes carrying every one of these labels.', example: '{ zone = "a" }', bounds: [`at most ${LIMITS.labelKeys} labels`] },
  volumes: {
    doc: 'Named volumes: volume name → container path. Each is one Docker volume per replica slot (`orca-<cluster>-<service>-<volume>-<slot>`); every replacement of a slot mounts the same volume, and deleting the service keeps it. Each name is a DNS label; each path absolute, normalised, not `/` and not under `/run/secrets`. A service with volumes rolls out `stop-first` unless `deploy.strategy` says otherwise.',
    type: 'table of paths',
    bounds: [`at most ${LIMITS.volumes} volumes`],
    example: '{ data = "/var/lib/app" }',
  },
  mounts: {
    doc: "Host paths mounted into the container. A node runs the service only if it allows every `host` path (`--allow-host-path`). Container paths follow the rules of `volumes` and differ from each other and from the volumes'.",
    type: 'array of tables',
    example: '[{ host = "/srv/shared", path = "/shared", read_only = true }]',
  },
  'mounts.host': { doc: 'The host directory or file: an absolute, normalised path.', example: '"/srv/shared"' },
  'mounts.path': { doc: 'Where it appears in the container: an absolute, normalised path, not `/` and not under `/run/secrets`.', example: '"/shared"' },
  'mounts.read_only': { doc: 'Mount it read-only.', default: String(DEFAULTS.mountReadOnly), example: 'true' },
  secrets: {
    doc: 'Secrets (`orca secret set`) delivered as files `/run/secrets/<name>`, read-only, in memory. Each must exist when the manifest is applied; a new value rolls the service out.',
    bounds: ['each listed once'],
    example: '["db-password"]',
  },
  secret_env: {
    doc: 'Environment variable → secret name: the secret as a variable (explicit opt-in: variables show in `docker inspect`). The secret need not be in `secrets` too; the variable must not be in `env`.',
    type: 'table of secret names',
    bounds: [`at most ${LIMITS.secrets} variables`],
    example: '{ DB_PASSWORD = "db-password" }',
  },
  route: { doc: 'Route requests of the built-in proxy to the ready instances. Needs `port`.', example: '{ host = "web.localhost" }' },
  'route.host': { doc: 'The Host header to match: an exact host, or `*.example.com` (any one sub-domain). Case-insensitive.', example: '"web.localhost"' },
  'route.path': { doc: 'Path prefix to match; the longest matching prefix wins.', default: `"${DEFAULTS.routePath}"`, example: '"/api"' },
  'route.tls': {
    doc: 'HTTPS at the edge, on proxies started with `--proxy-listen-tls`: `acme` obtains and renews a certificate for the exact host from the ACME CA (HTTP-01 on the plain proxy port); `manual` serves the certificate given with `orca cert set`. With either, plain HTTP to this route is redirected (308) to https. A wildcard host takes `manual`.',
    default: '"off"',
    example: '"acme"',
  },
  resources: { doc: 'Docker resource limits.', example: '{ memory = "64m", cpus = 0.5 }' },
  'resources.memory': {
    doc: 'Memory limit: a number of bytes, or a string with a suffix `b`, `k`, `m`, `g` (powers of 1024; `ki`, `mi`, `gi` too). An instance killed for memory shows `OOMKilled` in `orca status`.',
    type: 'string or integer',
    bounds: [`${MIN_MEMORY_BYTES / 1024 / 1024}m – ${LIMITS.memoryBytes / 1024 ** 4} TiB`],
    example: '"64m"',
  },
  'resources.cpus': { doc: "CPU limit in CPUs (Docker's NanoCpus).", example: '0.5' },
  readiness: { doc: 'Decides whether an instance receives traffic (and whether a rollout goes on). Exactly one check: `path`, `tcp` or `exec`.', example: '{ path = "/ready" }' },
  liveness: { doc: 'Decides whether an instance is restarted (through the crash-loop backoff). Exactly one check: `path`, `tcp` or `exec`.', example: '{ path = "/healthz" }' },
  'probe.path': { doc: 'HTTP GET of this path on the probe port; a status 200–399 passes.', example: '"/ready"' },
  'probe.tcp': { doc: 'Passes when something inside the container accepts a TCP connection on the probe port.', example: 'true' },
  'probe.exec': { doc: 'Runs this command inside the container; exit code 0 passes.', example: '["cat", "/tmp/ok"]' },
  'probe.port': { doc: 'The port of a `path` or `tcp` check. Default: the service\'s `port`.', example: '8081' },
  'probe.interval_secs': { doc: 'Time between checks. Probes share timers on a grid of ¼ interval: a check runs up to ⅛ interval early or late (once; it never drifts).', example: '2' },
  'probe.timeout_secs': { doc: 'A check that takes longer fails.', example: '1' },
  'probe.failure_threshold': { doc: 'Consecutive failures that make the probe fail.', example: '3' },
  'probe.success_threshold': { doc: 'Consecutive passes that make the probe pass again (liveness: must be 1).', example: '1' },
  'probe.initial_delay_secs': { doc: 'Time after the container starts before the first check.', example: '0' },
  restart: { doc: 'What happens when an instance exits.', example: '{ policy = "on-failure" }' },
  'restart.policy': { doc: '`always` replaces any exited instance (exit code 0 too); `on-failure` only a non-zero exit or a kill; `never` leaves it exited.', default: `"${DEFAULTS.restart.policy}"`, example: '"on-failure"' },
  'restart.backoff_initial_secs': { doc: 'Crash-loop backoff: the first delay; it doubles with each failure in a row.', default: secs(DEFAULTS.restart.backoffInitialSecs), example: '1' },
  'restart.backoff_max_secs': { doc: 'Crash-loop backoff: the longest delay. At least `backoff_initial_secs`.', default: secs(DEFAULTS.restart.backoffMaxSecs), example: '30' },
  'restart.reset_after_secs': { doc: 'Running this long without failing resets the backoff.', default: secs(DEFAULTS.restart.resetAfterSecs), example: '30' },
  deploy: { doc: 'How a changed service rolls out, one replica at a time.', example: '{ strategy = "stop-first" }' },
  'deploy.strategy': {
    doc: '`start-first` starts the new instance, waits until it is ready, then stops an old one; `stop-first` stops first (for apps that cannot run twice). A service with `volumes` defaults to `' + DEFAULTS.deploy.strategyWithVolumes + '`: two containers must not write one volume.',
    default: `"${DEFAULTS.deploy.strategy}"`,
    example: '"stop-first"',
  },
  'deploy.ready_timeout_secs': { doc: 'A new instance not ready by then halts the rollout (`rollout-failed`); the old instances keep serving.', default: secs(DEFAULTS.deploy.readyTimeoutSecs), example: '120' },
};

const PROBE_DEFAULTS: Record<string, Record<string, number>> = {
  readiness: { interval_secs: P.readiness.intervalSecs, timeout_secs: P.readiness.timeoutSecs, failure_threshold: P.readiness.failureThreshold, success_threshold: P.readiness.successThreshold, initial_delay_secs: P.readiness.initialDelaySecs },
  liveness: { interval_secs: P.liveness.intervalSecs, timeout_secs: P.liveness.timeoutSecs, failure_threshold: P.liveness.failureThreshold, success_threshold: P.liveness.successThreshold, initial_delay_secs: P.liveness.initialDelaySecs },
};

/** The prose of a field; probe fields fall back to `probe.<field>` with the probe's default. */
export function docOf(path: string): FieldDoc | undefined {
  const own = FIELD_DOCS[path];
  if (own) return own;
  const [table, field] = path.split('.');
  if ((table === 'readiness' || table === 'liveness') && field) {
    const shared = FIELD_DOCS[`probe.${field}`];
    const d = PROBE_DEFAULTS[table]?.[field];
    return shared && { ...shared, ...(d === undefined ? {} : { default: String(d) }) };
  }
  return undefined;
}
