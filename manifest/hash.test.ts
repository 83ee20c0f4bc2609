import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson, diffSpecs, formatManifestError, parseManifestText, specHash, toManifestToml, type ServiceSpec } from './index.js';
import { MAX_DURATION_SECS, NAME_RE } from './schema.js';

function spec(text: string): ServiceSpec {
  const r = parseManifestText(text, 'f.toml');
  if (!r.ok) throw new Error(r.errors.map(formatManifestError).join('\n'));
  return r.value[0]!.spec;
}

const full = spec(readFileSync(new URL('./fixtures/full.toml', import.meta.url), 'utf8'));
const BASE = '[[service]]\nname = "web"\nimage = "img"\n';

// ---- an arbitrary for valid, normalised ServiceSpecs -------------------------------------------

const text = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary-ascii' }));
const nonEmpty = fc.oneof(fc.string({ minLength: 1 }), fc.string({ minLength: 1, unit: 'grapheme' }));
const duration = fc.oneof(fc.integer({ min: 1, max: 3600 }), fc.double({ min: 0.05, max: MAX_DURATION_SECS, noNaN: true }));
const durationOrZero = fc.oneof(fc.constant(0), duration);
const port = fc.integer({ min: 1, max: 65535 });
const envKey = nonEmpty.filter((k) => !k.includes('=') && !k.includes('\0') && k !== '__proto__');
const mapKey = nonEmpty.filter((k) => k !== '__proto__');
const labelKey = mapKey.filter((k) => !k.toLowerCase().startsWith('orca.'));
const label = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?$/);
const host = fc.tuple(fc.boolean(), fc.array(label, { minLength: 1, maxLength: 4 })).map(([w, ls]) => (w ? '*.' : '') + ls.join('.'));
const threshold = fc.integer({ min: 1, max: 10 });

const check = fc.oneof(
  fc.record({ kind: fc.constant('http' as const), path: fc.string().map((s) => `/${s}`), port }),
  fc.record({ kind: fc.constant('tcp' as const), port }),
  fc.record({ kind: fc.constant('exec' as const), command: fc.array(text, { minLength: 1, maxLength: 3 }) }),
);
const probe = (liveness: boolean) =>
  fc.record({
    check,
    intervalSecs: duration,
    timeoutSecs: duration,
    failureThreshold: threshold,
    successThreshold: liveness ? fc.constant(1) : threshold,
    initialDelaySecs: durationOrZero,
  });

const placement = fc.oneof(
  fc.record({ node: nonEmpty }),
  fc.record({ labels: fc.dictionary(mapKey, text, { minKeys: 1, maxKeys: 3 }) }),
  fc.record({ node: nonEmpty, labels: fc.dictionary(mapKey, text, { minKeys: 1, maxKeys: 3 }) }),
);

/** A normalised absolute path, never "/" nor under /run/secrets. */
const absPath = fc.array(label, { minLength: 1, maxLength: 3 }).map((ls) => `/${ls.join('/')}`);

const serviceSpec: fc.Arbitrary<ServiceSpec> = fc
  .record(
    {
      name: fc.stringMatching(NAME_RE),
      image: nonEmpty,
      command: fc.array(text, { minLength: 1, maxLength: 4 }),
      entrypoint: fc.array(text, { minLength: 1, maxLength: 2 }),
      env: fc.dictionary(envKey, text, { maxKeys: 4 }),
      replicas: fc.nat({ max: 50 }),
      port,
      stopGraceSecs: durationOrZero,
      init: fc.boolean(),
      labels: fc.dictionary(labelKey, text, { maxKeys: 3 }),
      placement,
      // Container paths are made distinct below (volumes under /v/<name>, mounts under /m/<index>).
      volumes: fc.dictionary(label, absPath, { minKeys: 1, maxKeys: 3 }),
      mounts: fc.array(fc.record({ host: absPath, path: absPath, readOnly: fc.boolean() }), { minLength: 1, maxLength: 3 }),
      secrets: fc.uniqueArray(label, { minLength: 1, maxLength: 3 }).map((a) => [...a].sort()),
      secretEnv: fc.dictionary(envKey, label, { minKeys: 1, maxKeys: 3 }),
      route: fc.record({ host, path: fc.stringMatching(/^\/[a-z0-9/._-]{0,12}$/) }),
      resources: fc.record(
        { memoryBytes: fc.integer({ min: 6 * 2 ** 20, max: 2 ** 40 }), cpus: fc.double({ min: 0.01, max: 64, noNaN: true }) },
        { requiredKeys: [] },
      ),
      readiness: probe(false),
      liveness: probe(true),
      restart: fc
        .record({ policy: fc.constantFrom('always' as const, 'on-failure' as const, 'never' as const), a: duration, b: duration, resetAfterSecs: duration })
        .map(({ policy, a, b, resetAfterSecs }) => ({ policy, backoffInitialSecs: Math.min(a, b), backoffMaxSecs: Math.max(a, b), resetAfterSecs })),
      deploy: fc.record({ strategy: fc.constantFrom('start-first' as const, 'stop-first' as const), readyTimeoutSecs: duration }),
    },
    { requiredKeys: ['name', 'image', 'env', 'replicas', 'stopGraceSecs', 'init', 'labels', 'resources', 'restart', 'deploy'] },
  )
  // A route needs a port; a spec without one drops its route. structuredClone gives plain
  // objects (fast-check builds some with a null prototype, which toStrictEqual would notice).
  .map((s) => {
    const out = structuredClone(s);
    if (out.volumes) out.volumes = Object.fromEntries(Object.entries(out.volumes).map(([k, p]) => [k, `/v/${k}${p}`]));
    if (out.mounts) out.mounts = out.mounts.map((m, i) => ({ ...m, path: `/m/${i}${m.path}` }));
    // A variable is in env or in secret_env, never both.
    if (out.secretEnv) {
      const env = out.env;
      const left = Object.entries(out.secretEnv).filter(([k]) => !Object.hasOwn(env, k));
      if (left.length > 0) out.secretEnv = Object.fromEntries(left);
      else delete out.secretEnv;
    }
    if (out.port === undefined) delete out.route;
    return out;
  });

/** The same value with every object's keys in reverse order. */
function reverseKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(reverseKeys);
  if (typeof v !== 'object' || v === null) return v;
  return Object.fromEntries(Object.entries(v).reverse().map(([k, x]) => [k, reverseKeys(x)]));
}

// ---- tests --------------------------------------------------------------------------------------

describe('specHash', () => {
  it('is 16 hex characters and deterministic', () => {
    expect(specHash(full)).toMatch(/^[0-9a-f]{16}$/);
    expect(specHash(structuredClone(full))).toBe(specHash(full));
  });

  it('ignores key order in the file and in the object', () => {
    const reordered = spec('[[service]]\nimage = "img"\nenv = { B = "2", A = "1" }\nname = "web"\n');
    expect(specHash(reordered)).toBe(specHash(spec(`${BASE}env = { A = "1", B = "2" }\n`)));
    expect(specHash(reverseKeys(full) as ServiceSpec)).toBe(specHash(full));
  });

  it('treats explicit defaults like omitted ones', () => {
    const explicit = spec(
      `${BASE}replicas = 1\nstop_grace_secs = 10\ninit = true\nenv = {}\nlabels = {}\nport = 80\n` +
        `[service.resources]\n[service.readiness]\npath = "/"\nport = 80\ninterval_secs = 5\ntimeout_secs = 3\n` +
        `failure_threshold = 3\nsuccess_threshold = 1\ninitial_delay_secs = 10\n[service.route]\nhost = "WEB.localhost"\npath = "/"\n` +
        `[service.restart]\npolicy = "always"\nbackoff_initial_secs = 1\nbackoff_max_secs = 60\nreset_after_secs = 60\n` +
        `[service.deploy]\nstrategy = "start-first"\nready_timeout_secs = 60\n`,
    );
    const omitted = spec(`${BASE}port = 80\n[service.readiness]\npath = "/"\n[service.route]\nhost = "web.localhost"\n`);
    expect(explicit).toStrictEqual(omitted);
    expect(specHash(explicit)).toBe(specHash(omitted));
  });

  it('drops undefined properties', () => {
    expect(specHash({ ...full, command: undefined } as ServiceSpec)).toBe(specHash((({ command: _c, ...rest }) => rest)(full) as ServiceSpec));
  });

  const mutations: [string, (s: ServiceSpec) => void][] = [
    ['name', (s) => (s.name = 'web2')],
    ['image', (s) => (s.image = 'orca-example/web:2')],
    ['command', (s) => s.command?.push('-v')],
    ['command removed', (s) => delete s.command],
    ['entrypoint', (s) => (s.entrypoint = ['/bin/bash', '-c'])],
    ['env value', (s) => (s.env.GREETING = 'hi')],
    ['env key', (s) => (s.env.OTHER = 'hello')],
    ['replicas', (s) => (s.replicas = 3)],
    ['port', (s) => (s.port = 81)],
    ['stop_grace_secs', (s) => (s.stopGraceSecs = 10.5)],
    ['init', (s) => (s.init = false)],
    ['labels', (s) => (s.labels.team = 'api')],
    ['placement.node', (s) => (s.placement = { node: 'n3' })],
    ['placement.labels', (s) => (s.placement = { node: 'n2', labels: { zone: 'a' } })],
    ['route.host', (s) => s.route && (s.route.host = 'api.localhost')],
    ['route.path', (s) => s.route && (s.route.path = '/api')],
    ['resources.memory', (s) => (s.resources.memoryBytes = 128 * 2 ** 20)],
    ['resources.cpus', (s) => (s.resources.cpus = 1)],
    ['readiness.path', (s) => s.readiness && (s.readiness.check = { kind: 'http', path: '/ok', port: 80 })],
    ['readiness.port', (s) => s.readiness && (s.readiness.check = { kind: 'http', path: '/ready', port: 81 })],
    ['readiness kind', (s) => s.readiness && (s.readiness.check = { kind: 'tcp', port: 80 })],
    ['readiness.interval_secs', (s) => s.readiness && (s.readiness.intervalSecs = 5.5)],
    ['readiness.timeout_secs', (s) => s.readiness && (s.readiness.timeoutSecs = 2)],
    ['readiness.failure_threshold', (s) => s.readiness && (s.readiness.failureThreshold = 4)],
    ['readiness.success_threshold', (s) => s.readiness && (s.readiness.successThreshold = 2)],
    ['readiness.initial_delay_secs', (s) => s.readiness && (s.readiness.initialDelaySecs = 0)],
    ['liveness removed', (s) => delete s.liveness],
    ['liveness.exec', (s) => s.liveness && (s.liveness.check = { kind: 'exec', command: ['true'] })],
    ['restart.policy', (s) => (s.restart.policy = 'never')],
    ['restart.backoff_initial_secs', (s) => (s.restart.backoffInitialSecs = 2)],
    ['restart.backoff_max_secs', (s) => (s.restart.backoffMaxSecs = 30)],
    ['restart.reset_after_secs', (s) => (s.restart.resetAfterSecs = 120)],
    ['deploy.strategy', (s) => (s.deploy.strategy = 'stop-first')],
    ['volumes path', (s) => s.volumes && (s.volumes.data = '/data')],
    ['volumes added', (s) => s.volumes && (s.volumes.logs = '/var/log/app')],
    ['volumes removed', (s) => delete s.volumes],
    ['mounts.host', (s) => s.mounts?.[0] && (s.mounts[0].host = '/srv/other')],
    ['mounts.read_only', (s) => s.mounts?.[0] && (s.mounts[0].readOnly = false)],
    ['mounts added', (s) => s.mounts?.push({ host: '/srv/b', path: '/b', readOnly: false })],
    ['secrets', (s) => (s.secrets = ['api-key', 'db-password'])],
    ['secrets removed', (s) => delete s.secrets],
    ['secret_env value', (s) => s.secretEnv && (s.secretEnv.DB_PASSWORD = 'api-key')],
    ['secret_env key', (s) => (s.secretEnv = { PASSWORD: 'db-password' })],
    ['deploy.ready_timeout_secs', (s) => (s.deploy.readyTimeoutSecs = 30)],
  ];

  it.each(mutations)('changes when %s changes', (_field, mutate) => {
    const changed = structuredClone(full);
    mutate(changed);
    expect(changed).not.toEqual(full);
    expect(specHash(changed)).not.toBe(specHash(full));
    expect(diffSpecs(full, changed)).not.toEqual([]);
  });
});

describe('properties over generated specs', () => {
  it('render → parse gives back the same spec and hash', () => {
    fc.assert(
      fc.property(serviceSpec, (s) => {
        const back = spec(toManifestToml(s));
        expect(back).toStrictEqual(s);
        expect(specHash(back)).toBe(specHash(s));
      }),
      { numRuns: 300 },
    );
  });

  it('hashes are equal exactly when specs are equal, and diff agrees', () => {
    fc.assert(
      fc.property(serviceSpec, serviceSpec, (a, b) => {
        const same = canonicalJson(a) === canonicalJson(b);
        expect(specHash(a) === specHash(b)).toBe(same);
        expect(diffSpecs(a, b).length === 0).toBe(same);
        expect(diffSpecs(a, a)).toEqual([]);
      }),
      { numRuns: 200 },
    );
  });

  it('key order never changes the hash', () => {
    fc.assert(fc.property(serviceSpec, (s) => specHash(reverseKeys(s) as ServiceSpec) === specHash(s)));
  });
});
