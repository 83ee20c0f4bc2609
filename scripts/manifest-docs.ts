/**
 * Renders docs/manifest.md, the manifest reference, from the one zod schema (manifest/schema.ts):
 * every field's type, whether it is required and its bounds come from `z.toJSONSchema`; its
 * default comes from core/defaults.ts; the prose and the examples are in manifest/field-docs.ts (with
 * the few bounds JSON Schema cannot express, taken from manifest/limits.ts), shared with `orca schema`. A field of the schema
 * without prose here, or prose for a field the schema does not have, is an error: the reference
 * cannot drift from the schema (scripts/manifest-docs.test.ts checks the file is up to date).
 */
import { z } from 'zod';
import { serviceSchema } from '../manifest/schema.js';
import { docOf, FIELD_DOCS } from '../manifest/field-docs.js';
import { DEFAULTS } from '../core/defaults.js';

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
    if (!d) throw new Error(`docs: the schema has "${path}" but manifest/field-docs.ts does not describe it`);
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
  for (const path of Object.keys(FIELD_DOCS)) {
    const probeField = path.startsWith('probe.') && (used.has(`readiness.${path.slice(6)}`) || used.has(`liveness.${path.slice(6)}`));
    if (!used.has(path) && !probeField) throw new Error(`docs: manifest/field-docs.ts describes "${path}", which the schema does not have`);
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
  that port (checked every second, and every 0.1 s until it first passes, so a new instance
  takes traffic as soon as it listens; the 0.1 s looks that fail count for nothing).
- Changing any field makes a new revision and a rollout; \`replicas\` alone only adds or removes
  instances. A new value of a secret the service uses (\`orca secret set\`) makes a new revision too.
  \`orca history SERVICE\` lists revisions, \`orca rollback SERVICE\` goes back.
`;
}
