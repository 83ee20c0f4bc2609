/**
 * Renders docs/manifest.md, the manifest reference, from the one zod schema (manifest/schema.ts):
 * every field's type, whether it is required and its bounds come from `z.toJSONSchema`; its
 * default comes from core/defaults.ts; only the prose and the examples are written here (and the
 * few bounds JSON Schema cannot express, taken from manifest/limits.ts). A field of the schema
 * without prose here, or prose for a field the schema does not have, is an error: the reference
 * cannot drift from the schema (scripts/manifest-docs.test.ts checks the file is up to date).
 */
import { z } from 'zod';
import { serviceSchema } from '../manifest/schema.js';
import { LIMITS } from '../manifest/limits.js';
import { MIN_MEMORY_BYTES } from '../manifest/units.js';
import { DEFAULTS } from '../core/defaults.js';

interface FieldDoc {
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
const SERVICE: Record<string, FieldDoc> = {
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
  'probe.interval_secs': { doc: 'Time between checks.', example: '2' },
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
function docOf(path: string): FieldDoc | undefined {
  const own = SERVICE[path];
  if (own) return own;
  const [table, field] = path.split('.');
  if ((table === 'readiness' || table === 'liveness') && field) {
    const shared = SERVICE[`probe.${field}`];
    const d = PROBE_DEFAULTS[table]?.[field];
    return shared && { ...shared, ...(d === undefined ? {} : { default: String(d) }) };
  }
  return undefined;
}

type Json = {
  type?: string;
  enum?: unknown[];
  const?: unknown;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  pattern?: string;
  items?: Json;
  properties?: Record<string, Json>;
  required?: string[];
  propertyNames?: Json;
  additionalProperties?: Json | boolean;
};

const code = (s: string) => (s.includes('`') ? `\`\` ${s} \`\`` : `\`${s}\``);
const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function typeOf(j: Json, path: string): string {
  if (j.enum) return j.enum.map((v) => code(JSON.stringify(v))).join(' or ');
  if (j.const !== undefined) return code(JSON.stringify(j.const));
  if (j.type === 'array') return `array of ${j.items?.type ?? 'values'}s`;
  if (j.type === 'object' && j.propertyNames) return 'table of strings';
  if (j.type === 'object') return 'table';
  if (j.type === 'number' && path.endsWith('_secs')) return 'number (seconds)';
  return j.type ?? 'see description';
}

const range = (lo: number | undefined, hi: number | undefined, unit = '') =>
  lo !== undefined && hi !== undefined ? `${lo} – ${hi}${unit}` : lo !== undefined ? `≥ ${lo}${unit}` : hi !== undefined ? `≤ ${hi}${unit}` : undefined;

function boundsOf(j: Json): string[] {
  const out: string[] = [];
  const num = range(j.minimum, j.maximum);
  if (num) out.push(num);
  const len = range(j.minLength, j.maxLength, ' characters');
  if (len) out.push(len);
  if (j.pattern) out.push(`matches ${code(j.pattern)}`);
  const items = range(j.minItems, j.maxItems, ' items');
  if (items) out.push(items);
  if (j.items) out.push(...boundsOf(j.items).map((b) => `each item ${b}`));
  if (j.propertyNames) out.push(...boundsOf(j.propertyNames).map((b) => `each key ${b}`));
  if (j.additionalProperties && typeof j.additionalProperties === 'object') out.push(...boundsOf(j.additionalProperties).map((b) => `each value ${b}`));
  return out;
}

interface Row {
  path: string;
  type: string;
  required: boolean;
  default: string;
  bounds: string;
  doc: string;
  example: string;
}

function rows(props: Record<string, Json>, required: string[], prefix: string): Row[] {
  return Object.entries(props).map(([key, j]) => {
    const path = prefix + key;
    const d = docOf(path);
    if (!d) throw new Error(`docs: the schema has "${path}" but scripts/manifest-docs.ts does not describe it`);
    return {
      path,
      type: d.type ?? typeOf(j, path),
      required: required.includes(key),
      default: d.default ?? '',
      bounds: [...boundsOf(j), ...(d.bounds ?? [])].join('; '),
      doc: d.doc,
      example: d.example,
    };
  });
}

function table(list: Row[], table: string): string {
  const head = '| Field | Type | Default | Bounds | Meaning | Example |\n|---|---|---|---|---|---|\n';
  return (
    head +
    list
      .map((r) => {
        const name = r.path.slice(table ? table.length + 1 : 0);
        return `| ${code(name)}${r.required ? ' (required)' : ''} | ${cell(r.type)} | ${r.default ? code(r.default) : '–'} | ${cell(r.bounds || '–')} | ${cell(r.doc)} | ${code(`${name} = ${r.example}`)} |`;
      })
      .join('\n') +
    '\n'
  );
}

/** A manifest using every field; docs/manifest.md shows it and the test parses it with the real parser. */
export const FULL_EXAMPLE = `[[service]]
name = "web"
image = "orca-example/web:1"
command = ["/bin/httpd", "-f", "-p", "80", "-h", "/www"]
env = { GREETING = "hello" }
replicas = 2
port = 80
stop_grace_secs = 10
init = true
labels = { team = "web" }
volumes = { data = "/var/lib/app" }
mounts = [{ host = "/srv/shared", path = "/shared", read_only = true }]
secrets = ["db-password"]
secret_env = { DB_PASSWORD = "db-password" }

[service.route]
host = "web.localhost"
path = "/"
tls = "off"

[service.resources]
memory = "64m"
cpus = 0.5

[service.readiness]
path = "/ready"
interval_secs = 1
timeout_secs = 1
failure_threshold = 3
success_threshold = 1
initial_delay_secs = 0

[service.liveness]
path = "/healthz"
interval_secs = 2
timeout_secs = 1
failure_threshold = 3

[service.restart]
policy = "always"
backoff_initial_secs = 1
backoff_max_secs = 30
reset_after_secs = 30

[service.deploy]
strategy = "start-first"
ready_timeout_secs = 60
`;

/** The whole of docs/manifest.md. Throws when the schema and the prose here disagree. */
export function renderManifestDocs(): string {
  const schema = z.toJSONSchema(serviceSchema, { io: 'output', unrepresentable: 'any' }) as Json;
  const props = schema.properties ?? {};
  const used = new Set<string>();
  const top = rows(props, schema.required ?? [], '');
  top.forEach((r) => used.add(r.path));
  const sections: string[] = [];
  for (const [key, j] of Object.entries(props)) {
    // A table is a section `[service.x]`; an array of tables (`mounts`) is `[[service.x]]`.
    const items = j.type === 'array' && j.items?.type === 'object' ? j.items : undefined;
    const t = items ?? j;
    if (t.type !== 'object' || !t.properties) continue;
    const sub = rows(t.properties, t.required ?? [], `${key}.`);
    sub.forEach((r) => used.add(r.path));
    const heading = items ? `[[service.${key}]]` : `[service.${key}]`;
    sections.push(`### \`${heading}\`\n\n${docOf(key)?.doc ?? ''}\n\n${table(sub, key)}`);
  }
  for (const path of Object.keys(SERVICE)) {
    const probeField = path.startsWith('probe.') && (used.has(`readiness.${path.slice(6)}`) || used.has(`liveness.${path.slice(6)}`));
    if (!used.has(path) && !probeField) throw new Error(`docs: scripts/manifest-docs.ts describes "${path}", which the schema does not have`);
  }
  return `<!-- Generated by \`npm run docs\` from manifest/schema.ts and core/defaults.ts (scripts/manifest-docs.ts). Do not edit by hand. -->

# Manifest reference

A manifest is a TOML file with one or more \`[[service]]\` tables. \`orca apply -f\` takes files and
directories (every \`*.toml\` inside, sorted by name). \`orca apply --dry-run\` and \`orca diff\` check a
manifest without changing anything.

- **Unknown keys are errors**, at every level, with a "did you mean" hint: a typo never passes silently.
- **Every error is reported**, with its place: \`file:line:col: …\` for TOML syntax,
  \`file: service "web": readiness.interval_secs: must be …\` for the schema. Nothing is stored when
  any error is found. A file or directory without any service is an error too.
- **Durations** are seconds and take fractions (\`0.2\`); the smallest is ${DEFAULTS.minDurationSecs}.
- **Images are never pulled**: build or load them on every node that may run the service.

## A complete example

\`\`\`toml
${FULL_EXAMPLE}\`\`\`

## \`[[service]]\`

${table(top, '')}
${sections.join('\n')}
## Rules across fields

- \`route\` needs the service's \`port\`; \`route.tls = "acme"\` needs an exact host (a wildcard takes \`manual\`).
- A probe has exactly one check: \`path\`, \`tcp\` or \`exec\`. A \`path\` or \`tcp\` check needs a port
  (\`port\` of the probe, or of the service); \`exec\` takes no port.
- A liveness probe's \`success_threshold\` is 1.
- \`restart.backoff_max_secs\` is at least \`restart.backoff_initial_secs\` (defaults included).
- \`placement\` sets \`node\` or a non-empty \`labels\`.
- The container paths of \`volumes\` and \`mounts\` are all different; none is \`/\` or under \`/run/secrets\`.
- Every secret named in \`secrets\` or \`secret_env\` must exist (\`orca secret set\`) when the manifest is
  applied. A variable is in \`env\` or in \`secret_env\`, not both.
- A service with \`volumes\` rolls out \`stop-first\` unless \`deploy.strategy\` says otherwise.
- Label keys starting with \`orca.\` are reserved; a table cannot have a \`__proto__\` key.
- Readiness: a service with neither a readiness probe nor \`port\` is ready as soon as it runs; one
  with \`port\` and no probe is ready once something inside the container accepts connections on
  that port.
- Changing any field makes a new revision and a rollout; \`replicas\` alone only adds or removes
  instances. A new value of a secret the service uses (\`orca secret set\`) makes a new revision too.
  \`orca history SERVICE\` lists revisions, \`orca rollback SERVICE\` goes back.
`;
}
