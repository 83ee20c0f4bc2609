/**
 * The one zod schema for a manifest file (SPEC §2), in the shape TOML parses to (snake_case).
 * Every object is strict (unknown keys are errors at every level). Messages are written for
 * operators and carry no field name: the formatter in errors.ts adds file, service and path.
 *
 * Cross-field rules use `superRefine(..., { when: always })` so they run even when an unrelated
 * field failed: every error in a file is reported, not only the first. Such refinements see raw,
 * possibly invalid values, so they check types before using anything.
 */
import { posix } from 'node:path';
import { z } from 'zod';
import { DEFAULTS } from '../core/defaults.js';
import { LIMITS } from './limits.js';
import { jsonSchemaHints } from './json-hints.js';
import { MAX_MEMORY_BYTES, MEMORY_JSON_PATTERN, MIN_MEMORY_BYTES, parseMemory } from './units.js';

/** A service name is a DNS label. */
export const NAME_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/**
 * An exact host name, or a wildcard `*.example.com`; case-insensitive (normalised to lower case).
 * Cases spelled out rather than a flag: JSON Schema patterns (`orca schema`) have no flags.
 */
const HOST_RE = /^(\*\.)?[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)*$/;
/** Every duration is at most a day (SPEC §2); Node's timers would overflow past about 24.8 days. */
export const MAX_DURATION_SECS = LIMITS.durationSecs;
const MIN_SECS = DEFAULTS.minDurationSecs;
/** Docker's NanoCpus minimum is 0.01 CPU. */
export const MIN_CPUS = 0.01;
export const MAX_CPUS = LIMITS.cpus;

type Issue = { input?: unknown; code?: string };
type Obj = Record<string, unknown>;
const always = { when: () => true };
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** "is required" for a missing value, `must be <what>` for a wrong type. */
const typeError = (what: string) => (iss: Issue) => (iss.input === undefined ? 'is required' : `must be ${what}`);
/** For tables: only the type issue gets our message; unknown keys are formatted in errors.ts. */
const tableError = (iss: Issue) => (iss.code === 'invalid_type' ? typeError('a table')(iss) : undefined);

/** `at most N characters`, for every bounded string. */
const maxChars = (n: number) => ({ error: `must be at most ${n} characters` });

const nonEmptyString = (max: number) =>
  z
    .string({ error: typeError('a non-empty string') })
    .min(1, { error: 'must be a non-empty string' })
    .max(max, maxChars(max));

const duration = (min: number = MIN_SECS) => {
  const msg = `must be a number ≥ ${min}`;
  return z
    .number({ error: typeError(msg.slice('must be '.length)) })
    .min(min, { error: msg })
    .max(MAX_DURATION_SECS, { error: `must be at most ${MAX_DURATION_SECS} (one day)` });
};

/** An integer in [min, max]; above max the message is `must be at most max`. */
const integer = (min: number, max: number) => {
  const what = `an integer ≥ ${min}`;
  return z
    .number({ error: typeError(what) })
    .int({ error: `must be ${what}` })
    .min(min, { error: `must be ${what}` })
    .max(max, { error: `must be at most ${max}` });
};

const port = () =>
  z
    .number({ error: typeError('an integer between 1 and 65535') })
    .int({ error: 'must be an integer between 1 and 65535' })
    .min(1, { error: 'must be an integer between 1 and 65535' })
    .max(65535, { error: 'must be an integer between 1 and 65535' });

const stringArray = () =>
  z
    .array(z.string({ error: typeError('a string') }).max(LIMITS.argChars, maxChars(LIMITS.argChars)), {
      error: typeError('an array of strings'),
    })
    .min(1, { error: 'must not be empty' })
    .max(LIMITS.argCount, { error: `must have at most ${LIMITS.argCount} items` });

/**
 * A table of at most `maxKeys` strings of at most `maxValue` characters (or of `value`, when
 * given). zod's records silently skip a `__proto__` key, so it is rejected first; so is a table
 * with too many keys, before any key is looked at one by one.
 */
const stringMap = (key: z.ZodType<string>, maxKeys: number, maxValue: number, value?: z.ZodType<string>) =>
  z
    .unknown()
    .superRefine((v, ctx) => {
      if (!isObj(v)) return;
      if (Object.hasOwn(v, '__proto__')) {
        ctx.addIssue({ code: 'custom', message: '"__proto__" is not supported as a key', path: ['__proto__'] });
      }
      if (Object.keys(v).length > maxKeys) {
        ctx.addIssue({ code: 'custom', message: `must have at most ${maxKeys} keys`, path: [] });
      }
    })
    .pipe(
      z.record(key, value ?? z.string({ error: typeError('a string') }).max(maxValue, maxChars(maxValue)), {
        error: typeError('a table of strings'),
      }),
    )
    // The __proto__ guard has no fragment: JavaScript validators see every object's prototype there.
    .register(jsonSchemaHints, { maxProperties: maxKeys });

const keyChars = (n: number) => ({ error: `key must be at most ${n} characters` });
const envKey = z
  .string()
  .regex(/^[^=\u0000]+$/, { error: 'must be a variable name (non-empty, without "=")' })
  .max(LIMITS.envKeyChars, keyChars(LIMITS.envKeyChars));
const mapKey = z.string().min(1, { error: 'must not be empty' }).max(LIMITS.labelKeyChars, keyChars(LIMITS.labelKeyChars));
const labelKey = mapKey
  .refine((k) => !k.toLowerCase().startsWith('orca.'), {
    error: 'keys starting with "orca." are reserved for Orca',
  })
  .register(jsonSchemaHints, { not: { pattern: '^[oO][rR][cC][aA]\\.' } });
const labelMap = () => stringMap(labelKey, LIMITS.labelKeys, LIMITS.labelValueChars);

const DNS_LABEL_MESSAGE = 'must be a DNS label: 1-63 lower-case letters, digits or "-", starting and ending with a letter or digit';
/** A volume or secret name: a DNS label, like a service name. */
const dnsLabel = () => z.string({ error: typeError('a string') }).regex(NAME_RE, { error: DNS_LABEL_MESSAGE });

/** Where secrets appear inside a container (SPEC §3.9): no volume or mount may cover it. */
export const SECRETS_DIR = '/run/secrets';

/**
 * What is wrong with an absolute path of a volume or mount, or null. `inContainer` adds the rules
 * for a container path: not `/` itself, not at or under /run/secrets. Messages quote no input.
 */
function pathProblem(p: string, inContainer: boolean): string | null {
  if (!p.startsWith('/')) return 'must be an absolute path (starting with "/")';
  if (/[\u0000-\u001f\u007f]/.test(p)) return 'must not contain control characters';
  if (posix.normalize(p) !== p || (p.length > 1 && p.endsWith('/'))) return 'must be a normalised path (no "//", "." or ".." segments, no trailing "/")';
  if (inContainer && p === '/') return 'must not be "/" (the container\'s root)';
  if (inContainer && (p === SECRETS_DIR || p.startsWith(`${SECRETS_DIR}/`))) return `must not be at or under ${SECRETS_DIR} (where secrets are delivered)`;
  return null;
}

const absolutePath = (inContainer: boolean) =>
  z
    .string({ error: typeError('an absolute path') })
    .max(LIMITS.pathChars, maxChars(LIMITS.pathChars))
    .superRefine((p, ctx) => {
      const why = pathProblem(p, inContainer);
      if (why) ctx.addIssue({ code: 'custom', message: why, path: [] });
    })
    .register(jsonSchemaHints, {
      pattern: '^/',
      not: {
        anyOf: [
          { pattern: '[\\u0000-\\u001f\\u007f]' },
          { pattern: '//|/\\.\\.?(/|$)|./$' },
          ...(inContainer ? [{ const: '/' }, { pattern: `^${SECRETS_DIR}(/|$)` }] : []),
        ],
      },
    });

const mountSchema = z.strictObject(
  {
    host: absolutePath(false),
    path: absolutePath(true),
    read_only: z.boolean({ error: typeError('true or false') }).optional(),
  },
  { error: tableError },
);

/** A list of distinct secret names. */
const secretList = z
  .array(dnsLabel(), { error: typeError('an array of secret names') })
  .max(LIMITS.secrets, { error: `must have at most ${LIMITS.secrets} secrets` })
  .superRefine((names, ctx) => {
    const seen = new Set<string>();
    names.forEach((n, i) => {
      if (seen.has(n)) ctx.addIssue({ code: 'custom', message: 'is listed more than once', path: [i] });
      seen.add(n);
    });
  })
  .register(jsonSchemaHints, { uniqueItems: true });

/**
 * Every container path a service's volumes and mounts take must differ (two mounts on one path
 * is an error in Docker). Sees raw values: anything not a string is reported elsewhere.
 */
function checkContainerPaths(v: Obj, ctx: z.RefinementCtx): void {
  const owner = new Map<string, string>();
  const claim = (p: unknown, where: string, path: PropertyKey[]) => {
    if (typeof p !== 'string') return;
    const prev = owner.get(p);
    if (prev !== undefined) ctx.addIssue({ code: 'custom', message: `is also the path of ${prev} (one mount per container path)`, path });
    else owner.set(p, where);
  };
  if (isObj(v.volumes) && Object.keys(v.volumes).length <= LIMITS.volumes) {
    for (const [name, p] of Object.entries(v.volumes)) claim(p, NAME_RE.test(name) ? `volumes.${name}` : 'a volume', ['volumes', name]);
  }
  if (Array.isArray(v.mounts) && v.mounts.length <= LIMITS.mounts) {
    v.mounts.forEach((m, i) => {
      if (isObj(m)) claim(m.path, `mounts[${i}]`, ['mounts', i, 'path']);
    });
  }
}

const placementSchema = z
  .strictObject(
    {
      node: nonEmptyString(LIMITS.nodeNameChars).optional(),
      labels: stringMap(mapKey, LIMITS.labelKeys, LIMITS.labelValueChars).optional(),
    },
    { error: tableError },
  )
  .superRefine((v: unknown, ctx) => {
    if (!isObj(v)) return;
    const labels = v.labels;
    if (v.node === undefined && (labels === undefined || (isObj(labels) && Object.keys(labels).length === 0))) {
      ctx.addIssue({ code: 'custom', message: 'must set node or labels, e.g. { node = "n2" } or { labels = { zone = "a" } }', path: [] });
    }
  }, always)
  .register(jsonSchemaHints, { anyOf: [{ required: ['node'] }, { required: ['labels'], properties: { labels: { minProperties: 1 } } }] });

const routeSchema = z.strictObject(
  {
    host: z
      .string({ error: typeError('a host name') })
      .max(253, { error: 'must be at most 253 characters' })
      .regex(HOST_RE, { error: 'must be a host name like "web.example.com" or a wildcard like "*.example.com"' }),
    path: z
      .string({ error: typeError('a string') })
      .max(LIMITS.routePathChars, maxChars(LIMITS.routePathChars))
      .regex(/^\/[^\s?#]*$/, {
        error: 'must be a URL path starting with "/" (no spaces, query or fragment)',
      }),
    tls: z.enum(['off', 'acme', 'manual'], { error: 'must be one of "off", "acme", "manual"' }),
  },
  { error: tableError },
)
  .partial({ path: true, tls: true })
  .superRefine((v: unknown, ctx) => {
    // ACME's HTTP-01 challenge cannot prove a wildcard (SPEC §3.12): those take a manual certificate.
    if (isObj(v) && v.tls === 'acme' && typeof v.host === 'string' && v.host.startsWith('*.')) {
      ctx.addIssue({ code: 'custom', message: 'tls = "acme" needs an exact host: a wildcard host takes a manual certificate (tls = "manual", orca cert set)', path: ['tls'] });
    }
  }, always)
  .register(jsonSchemaHints, { if: { required: ['tls'], properties: { tls: { const: 'acme' } } }, then: { properties: { host: { not: { pattern: '^\\*\\.' } } } } });

const memorySchema = z
  .custom<string | number>((v) => typeof v === 'string' || typeof v === 'number', {
    error: (iss: Issue) => (iss.input === undefined ? 'is required' : 'must be a string like "64m" or an integer number of bytes'),
  })
  .superRefine((v, ctx) => {
    const r = parseMemory(v);
    if ('error' in r) ctx.addIssue({ code: 'custom', message: r.error, path: [] });
  })
  // The bounds of a string ("6m" – "1024g") are not a pattern: the editor checks only the form.
  .register(jsonSchemaHints, {
    anyOf: [
      { type: 'string', pattern: MEMORY_JSON_PATTERN },
      { type: 'integer', minimum: MIN_MEMORY_BYTES, maximum: MAX_MEMORY_BYTES },
    ],
  });

const resourcesSchema = z.strictObject(
  {
    memory: memorySchema.optional(),
    cpus: z
      .number({ error: typeError(`a number ≥ ${MIN_CPUS}`) })
      .min(MIN_CPUS, { error: `must be a number ≥ ${MIN_CPUS} (Docker's minimum)` })
      .max(MAX_CPUS, { error: `must be at most ${MAX_CPUS}` })
      .optional(),
  },
  { error: tableError },
);

const probeShape = {
  path: z
    .string({ error: typeError('a string') })
    .max(LIMITS.probePathChars, maxChars(LIMITS.probePathChars))
    .regex(/^\//, { error: 'must start with "/"' })
    .optional(),
  tcp: z.literal(true, { error: 'must be true (to use another check, omit tcp)' }).optional(),
  exec: stringArray().optional(),
  port: port().optional(),
  interval_secs: duration().optional(),
  timeout_secs: duration().optional(),
  failure_threshold: integer(1, LIMITS.threshold).optional(),
  success_threshold: integer(1, LIMITS.threshold).optional(),
  initial_delay_secs: duration(0).optional(),
};

/** Exactly one check; a port only makes sense for path and tcp checks. */
function checkProbe(v: unknown, ctx: z.RefinementCtx): void {
  if (!isObj(v)) return;
  const kinds = (['path', 'tcp', 'exec'] as const).filter((k) => v[k] !== undefined);
  if (kinds.length !== 1) {
    const what = kinds.length === 0 ? 'needs a check' : `has ${kinds.join(' and ')}`;
    ctx.addIssue({ code: 'custom', message: `${what}: set exactly one of path = "/…", tcp = true, exec = […]`, path: [] });
  }
  if (v.exec !== undefined && v.port !== undefined) {
    ctx.addIssue({ code: 'custom', message: 'only applies to path and tcp checks', path: ['port'] });
  }
}

/** checkProbe in JSON Schema: one of the three checks; exec without port. */
const probeHint = { oneOf: [{ required: ['path'] }, { required: ['tcp'] }, { required: ['exec'], not: { required: ['port'] } }] };
const readinessSchema = z.strictObject(probeShape, { error: tableError }).superRefine(checkProbe, always).register(jsonSchemaHints, probeHint);
const livenessSchema = z
  .strictObject(probeShape, { error: tableError })
  .superRefine(checkProbe, always)
  .superRefine((v: unknown, ctx) => {
    if (isObj(v) && v.success_threshold !== undefined && v.success_threshold !== 1) {
      ctx.addIssue({ code: 'custom', message: 'must be 1 for a liveness probe (as in Kubernetes)', path: ['success_threshold'] });
    }
  }, always)
  .register(jsonSchemaHints, { ...probeHint, allOf: [{ properties: { success_threshold: { const: 1 } } }] });

const restartSchema = z
  .strictObject(
    {
      policy: z.enum(['always', 'on-failure', 'never'], { error: 'must be one of "always", "on-failure", "never"' }).optional(),
      backoff_initial_secs: duration().optional(),
      backoff_max_secs: duration().optional(),
      reset_after_secs: duration().optional(),
    },
    { error: tableError },
  )
  .superRefine((v: unknown, ctx) => {
    if (!isObj(v)) return;
    const initial = v.backoff_initial_secs ?? DEFAULTS.restart.backoffInitialSecs;
    const max = v.backoff_max_secs ?? DEFAULTS.restart.backoffMaxSecs;
    if (!isNum(initial) || !isNum(max) || max >= initial) return;
    if (v.backoff_max_secs !== undefined) {
      const note = v.backoff_initial_secs === undefined ? ', the default' : '';
      ctx.addIssue({ code: 'custom', message: `must be ≥ backoff_initial_secs (${initial}${note})`, path: ['backoff_max_secs'] });
    } else {
      ctx.addIssue({ code: 'custom', message: `must be ≤ backoff_max_secs (${max}, the default)`, path: ['backoff_initial_secs'] });
    }
  }, always);

const deploySchema = z.strictObject(
  {
    strategy: z.enum(['start-first', 'stop-first'], { error: 'must be one of "start-first", "stop-first"' }).optional(),
    ready_timeout_secs: duration().optional(),
  },
  { error: tableError },
);

/** One `[[service]]` table. */
export const serviceSchema = z
  .strictObject(
    {
      name: dnsLabel(),
      image: nonEmptyString(LIMITS.image),
      command: stringArray().optional(),
      entrypoint: stringArray().optional(),
      env: stringMap(envKey, LIMITS.envKeys, LIMITS.argChars).optional(),
      replicas: integer(0, LIMITS.replicas).optional(),
      port: port().optional(),
      stop_grace_secs: duration(0).optional(),
      init: z.boolean({ error: typeError('true or false') }).optional(),
      labels: labelMap().optional(),
      placement: placementSchema.optional(),
      volumes: stringMap(dnsLabel(), LIMITS.volumes, LIMITS.pathChars, absolutePath(true)).optional(),
      mounts: z
        .array(mountSchema, { error: typeError('an array of tables like { host = "/srv/shared", path = "/shared" }') })
        .max(LIMITS.mounts, { error: `must have at most ${LIMITS.mounts} mounts` })
        .optional(),
      secrets: secretList.optional(),
      secret_env: stringMap(envKey, LIMITS.secrets, LIMITS.labelValueChars, dnsLabel()).optional(),
      route: routeSchema.optional(),
      resources: resourcesSchema.optional(),
      readiness: readinessSchema.optional(),
      liveness: livenessSchema.optional(),
      restart: restartSchema.optional(),
      deploy: deploySchema.optional(),
    },
    { error: tableError },
  )
  .superRefine((v: unknown, ctx) => {
    if (!isObj(v)) return;
    if (v.route !== undefined && v.port === undefined) {
      ctx.addIssue({ code: 'custom', message: 'needs the service\'s "port" (the container port that takes traffic)', path: ['route'] });
    }
    for (const probe of ['readiness', 'liveness'] as const) {
      const p = v[probe];
      if (isObj(p) && (p.path !== undefined || p.tcp !== undefined) && p.port === undefined && v.port === undefined) {
        ctx.addIssue({ code: 'custom', message: `a path or tcp check needs a port: set ${probe}.port or the service's "port"`, path: [probe] });
      }
    }
    checkContainerPaths(v, ctx);
    if (isObj(v.secret_env) && isObj(v.env) && Object.keys(v.secret_env).length <= LIMITS.secrets) {
      for (const key of Object.keys(v.secret_env)) {
        if (Object.hasOwn(v.env, key)) ctx.addIssue({ code: 'custom', message: 'is also set in env (a variable comes from one place)', path: ['secret_env', key] });
      }
    }
  }, always)
  .register(jsonSchemaHints, {
    dependencies: { route: ['port'] },
    // A path or tcp probe without its own port needs the service's.
    allOf: (['readiness', 'liveness'] as const).map((probe) => ({
      if: { required: [probe], properties: { [probe]: { anyOf: [{ required: ['path'] }, { required: ['tcp'] }], not: { required: ['port'] } } } },
      then: { required: ['port'] },
    })),
  });

/** A whole manifest file. An empty or missing `service` array is reported by the parser. */
export const manifestSchema = z.strictObject(
  {
    service: z
      .array(serviceSchema, {
        error: (iss: Issue) => (isObj(iss.input) ? 'must be an array of tables: write [[service]], not [service]' : 'must be an array of tables ([[service]])'),
      })
      .max(LIMITS.servicesPerFile, { error: `must have at most ${LIMITS.servicesPerFile} services in one file` })
      .optional(),
  },
  { error: tableError },
);

export type RawService = z.output<typeof serviceSchema>;
export type RawProbe = z.output<typeof readinessSchema>;
export type RawManifest = z.output<typeof manifestSchema>;

/**
 * The keys allowed at each table, for "did you mean" hints, keyed by the table's path below a
 * service (`''` is the service itself, `'readiness'` its probe); `'<file>'` is the top level.
 */
export const KNOWN_KEYS: Readonly<Record<string, readonly string[]>> = {
  '<file>': Object.keys(manifestSchema.shape),
  '': Object.keys(serviceSchema.shape),
  placement: Object.keys(placementSchema.shape),
  mounts: Object.keys(mountSchema.shape),
  route: Object.keys(routeSchema.shape),
  resources: Object.keys(resourcesSchema.shape),
  readiness: Object.keys(probeShape),
  liveness: Object.keys(probeShape),
  restart: Object.keys(restartSchema.shape),
  deploy: Object.keys(deploySchema.shape),
};
