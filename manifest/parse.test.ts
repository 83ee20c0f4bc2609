import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { formatManifestError, parseManifestText, type ServiceSpec } from './index.js';

const BASE = '[[service]]\nname = "web"\nimage = "img"\n';
/** A valid minimal service plus `extra` (scalars first, then any [service.x] tables). */
const svc = (extra: string) => BASE + extra;

function errors(text: string): string[] {
  const r = parseManifestText(text, 'f.toml');
  return r.ok ? [] : r.errors.map(formatManifestError);
}

function specOf(text: string): ServiceSpec {
  const r = parseManifestText(text, 'f.toml');
  if (!r.ok) throw new Error(r.errors.map(formatManifestError).join('\n'));
  expect(r.value).toHaveLength(1);
  return r.value[0]!.spec;
}

describe('parseManifestText: valid manifests', () => {
  it('normalises the SPEC §2 example with every field', () => {
    const text = readFileSync(new URL('./fixtures/full.toml', import.meta.url), 'utf8');
    const r = parseManifestText(text, 'full.toml');
    expect(r).toEqual({
      ok: true,
      value: [
        {
          file: 'full.toml',
          spec: {
            name: 'web',
            image: 'orca-example/web:1',
            command: ['/bin/httpd', '-f', '-p', '80', '-h', '/www'],
            entrypoint: ['/bin/sh', '-c'],
            env: { GREETING: 'hello' },
            replicas: 2,
            port: 80,
            stopGraceSecs: 10,
            init: true,
            labels: { team: 'web' },
            placement: { node: 'n2' },
            volumes: { data: '/var/lib/app' },
            mounts: [{ host: '/srv/shared', path: '/shared', readOnly: true }],
            secrets: ['db-password'],
            secretEnv: { DB_PASSWORD: 'db-password' },
            route: { host: 'web.localhost', path: '/' },
            resources: { memoryBytes: 64 * 1024 * 1024, cpus: 0.5 },
            readiness: {
              check: { kind: 'http', path: '/ready', port: 80 },
              intervalSecs: 5,
              timeoutSecs: 3,
              failureThreshold: 3,
              successThreshold: 1,
              initialDelaySecs: 10,
            },
            liveness: {
              check: { kind: 'http', path: '/healthz', port: 80 },
              intervalSecs: 10,
              timeoutSecs: 3,
              failureThreshold: 3,
              successThreshold: 1,
              initialDelaySecs: 0,
            },
            restart: { policy: 'always', backoffInitialSecs: 1, backoffMaxSecs: 60, resetAfterSecs: 60 },
            deploy: { strategy: 'start-first', readyTimeoutSecs: 60 },
          },
        },
      ],
    });
  });

  it('fills every default for a minimal service, leaving optional fields absent', () => {
    const spec = specOf(BASE);
    expect(spec).toStrictEqual({
      name: 'web',
      image: 'img',
      env: {},
      replicas: 1,
      stopGraceSecs: 10,
      init: true,
      labels: {},
      resources: {},
      restart: { policy: 'always', backoffInitialSecs: 1, backoffMaxSecs: 60, resetAfterSecs: 60 },
      deploy: { strategy: 'start-first', readyTimeoutSecs: 60 },
    });
  });

  it('keeps volumes, mounts (in order, read_only default false), sorted secrets and secret_env; empty ones are absent', () => {
    const spec = specOf(svc('volumes = { data = "/data" }\nmounts = [{ host = "/srv/b", path = "/b" }, { host = "/srv/a", path = "/a", read_only = true }]\nsecrets = ["z", "a"]\nsecret_env = { PW = "z" }\n'));
    expect(spec.volumes).toEqual({ data: '/data' });
    expect(spec.mounts).toEqual([
      { host: '/srv/b', path: '/b', readOnly: false },
      { host: '/srv/a', path: '/a', readOnly: true },
    ]);
    expect(spec.secrets).toEqual(['a', 'z']);
    expect(spec.secretEnv).toEqual({ PW: 'z' });
    expect(specOf(svc('volumes = {}\nmounts = []\nsecrets = []\nsecret_env = {}\n'))).toStrictEqual(specOf(BASE));
  });

  it('rolls a service with volumes out stop-first, unless the manifest says otherwise', () => {
    expect(specOf(svc('volumes = { data = "/data" }\n')).deploy.strategy).toBe('stop-first');
    expect(specOf(svc('volumes = { data = "/data" }\n[service.deploy]\nstrategy = "start-first"\n')).deploy.strategy).toBe('start-first');
    expect(specOf(svc('volumes = {}\n')).deploy.strategy).toBe('start-first');
    expect(specOf(svc('mounts = [{ host = "/srv", path = "/srv" }]\n')).deploy.strategy).toBe('start-first');
  });

  it('fills probe defaults and the probe port from the service port', () => {
    const spec = specOf(svc('port = 8080\n[service.readiness]\ntcp = true\n[service.liveness]\nexec = ["true"]\n'));
    expect(spec.readiness).toStrictEqual({
      check: { kind: 'tcp', port: 8080 },
      intervalSecs: 5,
      timeoutSecs: 3,
      failureThreshold: 3,
      successThreshold: 1,
      initialDelaySecs: 10,
    });
    expect(spec.liveness).toStrictEqual({
      check: { kind: 'exec', command: ['true'] },
      intervalSecs: 10,
      timeoutSecs: 3,
      failureThreshold: 3,
      successThreshold: 1,
      initialDelaySecs: 0,
    });
  });

  it('lets an explicit probe port override the service port', () => {
    const spec = specOf(svc('port = 80\n[service.readiness]\npath = "/r"\nport = 9090\n'));
    expect(spec.readiness?.check).toEqual({ kind: 'http', path: '/r', port: 9090 });
  });

  it.each([
    ['stop_grace_secs = 0', (s: ServiceSpec) => s.stopGraceSecs, 0],
    ['stop_grace_secs = 0.5', (s: ServiceSpec) => s.stopGraceSecs, 0.5],
    ['replicas = 0', (s: ServiceSpec) => s.replicas, 0],
    ['init = false', (s: ServiceSpec) => s.init, false],
    ['port = 65535', (s: ServiceSpec) => s.port, 65535],
    ['placement = { labels = { zone = "a" } }', (s: ServiceSpec) => s.placement, { labels: { zone: 'a' } }],
    ['placement = { node = "n1", labels = {} }', (s: ServiceSpec) => s.placement, { node: 'n1' }],
    ['port = 80\nroute = { host = "WEB.Example.COM" }', (s: ServiceSpec) => s.route, { host: 'web.example.com', path: '/' }],
    ['port = 80\nroute = { host = "*.example.com", path = "/api" }', (s: ServiceSpec) => s.route, { host: '*.example.com', path: '/api' }],
    ['port = 80\nroute = { host = "a.example.com", tls = "acme" }', (s: ServiceSpec) => s.route, { host: 'a.example.com', path: '/', tls: 'acme' }],
    ['port = 80\nroute = { host = "*.example.com", tls = "manual" }', (s: ServiceSpec) => s.route, { host: '*.example.com', path: '/', tls: 'manual' }],
    ['port = 80\nroute = { host = "a.example.com", tls = "off" }', (s: ServiceSpec) => s.route, { host: 'a.example.com', path: '/' }],
    ['[service.readiness]\nexec = ["cat", "/tmp/ok"]\ninitial_delay_secs = 0\ninterval_secs = 0.05', (s: ServiceSpec) => s.readiness?.initialDelaySecs, 0],
    ['[service.liveness]\nexec = ["true"]\nsuccess_threshold = 1', (s: ServiceSpec) => s.liveness?.successThreshold, 1],
    ['[service.restart]\npolicy = "on-failure"\nbackoff_initial_secs = 0.2\nbackoff_max_secs = 0.2', (s: ServiceSpec) => s.restart, { policy: 'on-failure', backoffInitialSecs: 0.2, backoffMaxSecs: 0.2, resetAfterSecs: 60 }],
    ['[service.deploy]\nstrategy = "stop-first"', (s: ServiceSpec) => s.deploy, { strategy: 'stop-first', readyTimeoutSecs: 60 }],
  ])('accepts %s', (extra, get, want) => {
    expect(get(specOf(svc(`${extra}\n`)))).toEqual(want);
  });

  it.each([
    ['"64m"', 64 * 2 ** 20],
    ['"64M"', 64 * 2 ** 20],
    ['"64mi"', 64 * 2 ** 20],
    ['"64MiB"', 64 * 2 ** 20],
    ['"64mb"', 64 * 2 ** 20],
    ['"6144k"', 6 * 2 ** 20],
    ['"6144Ki"', 6 * 2 ** 20],
    ['"1g"', 2 ** 30],
    ['"1.5g"', 1.5 * 2 ** 30],
    ['"6291456"', 6291456],
    ['"6291456b"', 6291456],
    ['6291456', 6291456],
  ])('parses memory = %s', (value, bytes) => {
    expect(specOf(svc(`[service.resources]\nmemory = ${value}\n`)).resources).toEqual({ memoryBytes: bytes });
  });

  it('returns every service of a file, in order', () => {
    const r = parseManifestText(`${BASE}[[service]]\nname = "api"\nimage = "img"\n`, 'f.toml');
    expect(r.ok && r.value.map((s) => s.spec.name)).toEqual(['web', 'api']);
  });

  it('accepts a byte-order mark', () => {
    expect(specOf(`\uFEFF${BASE}`).name).toBe('web');
  });
});

const RESERVED = 'keys starting with "orca." are reserved for Orca';
const DNS = 'must be a DNS label: 1-63 lower-case letters, digits or "-", starting and ending with a letter or digit';
const HOST = 'must be a host name like "web.example.com" or a wildcard like "*.example.com"';
const MEM_FMT = 'must be a size like "64m" (suffix b, k, m, g or ki, mi, gi) or an integer number of bytes';
const CHECK = 'set exactly one of path = "/…", tcp = true, exec = […]';
const PLACEMENT = 'must set node or labels, e.g. { node = "n2" } or { labels = { zone = "a" } }';
const W = 'f.toml: service "web"';
const ABSOLUTE = 'must be an absolute path (starting with "/")';
const NORMALISED = 'must be a normalised path (no "//", "." or ".." segments, no trailing "/")';
const UNDER_SECRETS = 'must not be at or under /run/secrets (where secrets are delivered)';

describe('parseManifestText: schema errors', () => {
  it.each<[string, string, string[]]>([
    // name and image
    ['name missing', '[[service]]\nimage = "i"\n', ['f.toml: service #1: name: is required']],
    ['name upper case', '[[service]]\nname = "Web"\nimage = "i"\n', [`f.toml: service #1: name: ${DNS}`]],
    ['name trailing dash', '[[service]]\nname = "web-"\nimage = "i"\n', [`f.toml: service #1: name: ${DNS}`]],
    ['name 64 chars', `[[service]]\nname = "${'a'.repeat(64)}"\nimage = "i"\n`, [`f.toml: service #1: name: ${DNS}`]],
    ['name not a string', '[[service]]\nname = 1\nimage = "i"\n', ['f.toml: service #1: name: must be a string']],
    ['second service unnamed', `${BASE}[[service]]\nimage = "i"\n`, ['f.toml: service #2: name: is required']],
    ['image missing', '[[service]]\nname = "web"\n', [`${W}: image: is required`]],
    ['image empty', '[[service]]\nname = "web"\nimage = ""\n', [`${W}: image: must be a non-empty string`]],
    // command, entrypoint, env
    ['command a string', 'command = "ls"', [`${W}: command: must be an array of strings`]],
    ['command empty', 'command = []', [`${W}: command: must not be empty`]],
    ['command with a number', 'command = ["a", 1]', [`${W}: command[1]: must be a string`]],
    ['entrypoint empty', 'entrypoint = []', [`${W}: entrypoint: must not be empty`]],
    ['env value a number', 'env = { A = 1 }', [`${W}: env.A: must be a string`]],
    ['env value a bool', 'env = { DEBUG = true }', [`${W}: env.DEBUG: must be a string`]],
    ['env not a table', 'env = "A=1"', [`${W}: env: must be a table of strings`]],
    ['env key with =', 'env = { "A=B" = "x" }', [`${W}: env."A=B": must be a variable name (non-empty, without "=")`]],
    ['env key __proto__', 'env = { __proto__ = "x" }', [`${W}: env.__proto__: "__proto__" is not supported as a key`]],
    // scalars
    ['replicas negative', 'replicas = -1', [`${W}: replicas: must be an integer ≥ 0`]],
    ['replicas fractional', 'replicas = 1.5', [`${W}: replicas: must be an integer ≥ 0`]],
    ['replicas a string', 'replicas = "2"', [`${W}: replicas: must be an integer ≥ 0`]],
    ['port 0', 'port = 0', [`${W}: port: must be an integer between 1 and 65535`]],
    ['port 65536', 'port = 65536', [`${W}: port: must be an integer between 1 and 65535`]],
    ['port a string', 'port = "80"', [`${W}: port: must be an integer between 1 and 65535`]],
    ['stop_grace_secs negative', 'stop_grace_secs = -1', [`${W}: stop_grace_secs: must be a number ≥ 0`]],
    ['init a string', 'init = "yes"', [`${W}: init: must be true or false`]],
    // labels and placement
    ['reserved label', 'labels = { "orca.service" = "x" }', [`${W}: labels."orca.service": ${RESERVED}`]],
    ['reserved label, upper case', 'labels = { "ORCA.x" = "x" }', [`${W}: labels."ORCA.x": ${RESERVED}`]],
    ['label value a number', 'labels = { team = 1 }', [`${W}: labels.team: must be a string`]],
    ['placement empty', 'placement = {}', [`${W}: placement: ${PLACEMENT}`]],
    // volumes, mounts, secrets, secret_env
    ['volume name not a DNS label', 'volumes = { Data = "/data" }', [`${W}: volumes.Data: ${DNS}`]],
    ['volume path relative', 'volumes = { data = "data" }', [`${W}: volumes.data: ${ABSOLUTE}`]],
    ['volume path not normalised', 'volumes = { data = "/a/../data" }', [`${W}: volumes.data: ${NORMALISED}`]],
    ['volume path with a trailing slash', 'volumes = { data = "/data/" }', [`${W}: volumes.data: ${NORMALISED}`]],
    ['volume path doubled slash', 'volumes = { data = "//data" }', [`${W}: volumes.data: ${NORMALISED}`]],
    ['volume path the root', 'volumes = { data = "/" }', [`${W}: volumes.data: must not be "/" (the container's root)`]],
    ['volume path over secrets', 'volumes = { data = "/run/secrets" }', [`${W}: volumes.data: ${UNDER_SECRETS}`]],
    ['volume path under secrets', 'volumes = { data = "/run/secrets/db" }', [`${W}: volumes.data: ${UNDER_SECRETS}`]],
    ['volume path with a control character', 'volumes = { data = "/da\\nta" }', [`${W}: volumes.data: must not contain control characters`]],
    ['volume path a number', 'volumes = { data = 1 }', [`${W}: volumes.data: must be an absolute path`]],
    ['volumes, 33', `volumes = { ${Array.from({ length: 33 }, (_, i) => `v${i} = "/v${i}"`).join(', ')} }`, [`${W}: volumes: must have at most 32 keys`]],
    ['two volumes on one path', 'volumes = { a = "/data", b = "/data" }', [`${W}: volumes.b: is also the path of volumes.a (one mount per container path)`]],
    ['mounts not an array', 'mounts = { host = "/a", path = "/b" }', [`${W}: mounts: must be an array of tables like { host = "/srv/shared", path = "/shared" }`]],
    ['mount host missing', 'mounts = [{ path = "/b" }]', [`${W}: mounts[0].host: is required`]],
    ['mount host relative', 'mounts = [{ host = "srv", path = "/b" }]', [`${W}: mounts[0].host: ${ABSOLUTE}`]],
    ['mount host not normalised', 'mounts = [{ host = "/srv/./a", path = "/b" }]', [`${W}: mounts[0].host: ${NORMALISED}`]],
    ['mount path the root', 'mounts = [{ host = "/srv", path = "/" }]', [`${W}: mounts[0].path: must not be "/" (the container's root)`]],
    ['mount path under secrets', 'mounts = [{ host = "/srv", path = "/run/secrets/x" }]', [`${W}: mounts[0].path: ${UNDER_SECRETS}`]],
    ['mount read_only a string', 'mounts = [{ host = "/srv", path = "/b", read_only = "yes" }]', [`${W}: mounts[0].read_only: must be true or false`]],
    ['mount with a typo', 'mounts = [{ host = "/srv", path = "/b", readonly = true }]', [`${W}: mounts[0].readonly: unknown key (did you mean "read_only"?)`]],
    ['mounts, 33', `mounts = [${Array.from({ length: 33 }, (_, i) => `{ host = "/h", path = "/m${i}" }`).join(', ')}]`, [`${W}: mounts: must have at most 32 mounts`]],
    ['a mount on a volume path', 'volumes = { data = "/data" }\nmounts = [{ host = "/srv", path = "/data" }]', [`${W}: mounts[0].path: is also the path of volumes.data (one mount per container path)`]],
    ['secrets a string', 'secrets = "db"', [`${W}: secrets: must be an array of secret names`]],
    ['secret name not a DNS label', 'secrets = ["db_password"]', [`${W}: secrets[0]: ${DNS}`]],
    ['secret listed twice', 'secrets = ["db", "api", "db"]', [`${W}: secrets[2]: is listed more than once`]],
    ['secrets, 65', `secrets = [${Array.from({ length: 65 }, (_, i) => `"s${i}"`).join(', ')}]`, [`${W}: secrets: must have at most 64 secrets`]],
    ['secret_env value not a secret name', 'secret_env = { PW = "Db" }', [`${W}: secret_env.PW: ${DNS}`]],
    ['secret_env key with =', 'secret_env = { "A=B" = "db" }', [`${W}: secret_env."A=B": must be a variable name (non-empty, without "=")`]],
    ['secret_env clashes with env', 'env = { PW = "x" }\nsecret_env = { PW = "db" }', [`${W}: secret_env.PW: is also set in env (a variable comes from one place)`]],
    ['placement labels empty', 'placement = { labels = {} }', [`${W}: placement: ${PLACEMENT}`]],
    ['placement node empty', 'placement = { node = "" }', [`${W}: placement.node: must be a non-empty string`]],
    ['placement unknown key', 'placement = { zone = "a" }', [`${W}: placement.zone: unknown key`, `${W}: placement: ${PLACEMENT}`]],
    // route
    ['route without port', 'route = { host = "web.localhost" }', [`${W}: route: needs the service's "port" (the container port that takes traffic)`]],
    ['route host missing', 'port = 80\nroute = { path = "/" }', [`${W}: route.host: is required`]],
    ['route host with _', 'port = 80\nroute = { host = "a_b.com" }', [`${W}: route.host: ${HOST}`]],
    ['route host with port', 'port = 80\nroute = { host = "a.com:80" }', [`${W}: route.host: ${HOST}`]],
    ['route wildcard inside', 'port = 80\nroute = { host = "a.*.com" }', [`${W}: route.host: ${HOST}`]],
    ['route tls unknown', 'port = 80\nroute = { host = "a.com", tls = "yes" }', [`${W}: route.tls: must be one of "off", "acme", "manual"`]],
    ['route tls acme on a wildcard', 'port = 80\nroute = { host = "*.a.com", tls = "acme" }', [`${W}: route.tls: tls = "acme" needs an exact host: a wildcard host takes a manual certificate (tls = "manual", orca cert set)`]],
    ['route path relative', 'port = 80\nroute = { host = "a.com", path = "api" }', [`${W}: route.path: must be a URL path starting with "/" (no spaces, query or fragment)`]],
    ['route a string', 'port = 80\nroute = "a.com"', [`${W}: route: must be a table`]],
    // resources
    ['memory bad suffix', '[service.resources]\nmemory = "64x"', [`${W}: resources.memory: ${MEM_FMT}`]],
    ['memory fractional bytes', '[service.resources]\nmemory = 6291456.5', [`${W}: resources.memory: ${MEM_FMT}`]],
    ['memory below 6m', '[service.resources]\nmemory = "5m"', [`${W}: resources.memory: must be at least 6m (Docker's minimum)`]],
    ['memory bytes below 6m', '[service.resources]\nmemory = 1000', [`${W}: resources.memory: must be at least 6m (Docker's minimum)`]],
    ['memory a bool', '[service.resources]\nmemory = true', [`${W}: resources.memory: must be a string like "64m" or an integer number of bytes`]],
    ['cpus 0', '[service.resources]\ncpus = 0', [`${W}: resources.cpus: must be a number ≥ 0.01 (Docker's minimum)`]],
    ['cpus a string', '[service.resources]\ncpus = "1"', [`${W}: resources.cpus: must be a number ≥ 0.01`]],
    // probes
    ['interval below minimum', 'port = 80\n[service.readiness]\npath = "/"\ninterval_secs = 0.01', [`${W}: readiness.interval_secs: must be a number ≥ 0.05`]],
    ['timeout a string', 'port = 80\n[service.readiness]\npath = "/"\ntimeout_secs = "3"', [`${W}: readiness.timeout_secs: must be a number ≥ 0.05`]],
    ['interval infinite', 'port = 80\n[service.readiness]\npath = "/"\ninterval_secs = inf', [`${W}: readiness.interval_secs: must be a number ≥ 0.05`]],
    ['interval too long', 'port = 80\n[service.readiness]\npath = "/"\ninterval_secs = 1e10', [`${W}: readiness.interval_secs: must be at most 86400 (one day)`]],
    ['initial delay negative', 'port = 80\n[service.liveness]\ntcp = true\ninitial_delay_secs = -1', [`${W}: liveness.initial_delay_secs: must be a number ≥ 0`]],
    ['failure_threshold 0', 'port = 80\n[service.readiness]\ntcp = true\nfailure_threshold = 0', [`${W}: readiness.failure_threshold: must be an integer ≥ 1`]],
    ['success_threshold fractional', 'port = 80\n[service.readiness]\ntcp = true\nsuccess_threshold = 1.5', [`${W}: readiness.success_threshold: must be an integer ≥ 1`]],
    ['liveness success_threshold 2', 'port = 80\n[service.liveness]\ntcp = true\nsuccess_threshold = 2', [`${W}: liveness.success_threshold: must be 1 for a liveness probe (as in Kubernetes)`]],
    ['probe without check', 'port = 80\n[service.readiness]\ninterval_secs = 1', [`${W}: readiness: needs a check: ${CHECK}`]],
    ['probe with two checks', 'port = 80\n[service.readiness]\npath = "/"\ntcp = true', [`${W}: readiness: has path and tcp: ${CHECK}`]],
    ['probe path relative', 'port = 80\n[service.readiness]\npath = "ready"', [`${W}: readiness.path: must start with "/"`]],
    ['probe tcp false', 'port = 80\n[service.readiness]\ntcp = false', [`${W}: readiness.tcp: must be true (to use another check, omit tcp)`]],
    ['probe exec empty', '[service.liveness]\nexec = []', [`${W}: liveness.exec: must not be empty`]],
    ['probe exec with port', '[service.liveness]\nexec = ["true"]\nport = 80', [`${W}: liveness.port: only applies to path and tcp checks`]],
    ['probe port out of range', '[service.readiness]\ntcp = true\nport = 0', [`${W}: readiness.port: must be an integer between 1 and 65535`]],
    ['http probe with no port anywhere', '[service.readiness]\npath = "/ready"', [`${W}: readiness: a path or tcp check needs a port: set readiness.port or the service's "port"`]],
    ['tcp probe with no port anywhere', '[service.liveness]\ntcp = true', [`${W}: liveness: a path or tcp check needs a port: set liveness.port or the service's "port"`]],
    ['probe a string', 'readiness = "/ready"', [`${W}: readiness: must be a table`]],
    // restart and deploy
    ['restart policy', '[service.restart]\npolicy = "sometimes"', [`${W}: restart.policy: must be one of "always", "on-failure", "never"`]],
    ['backoff max below initial', '[service.restart]\nbackoff_initial_secs = 10\nbackoff_max_secs = 5', [`${W}: restart.backoff_max_secs: must be ≥ backoff_initial_secs (10)`]],
    ['backoff max below default initial', '[service.restart]\nbackoff_max_secs = 0.5', [`${W}: restart.backoff_max_secs: must be ≥ backoff_initial_secs (1, the default)`]],
    ['backoff initial above default max', '[service.restart]\nbackoff_initial_secs = 100', [`${W}: restart.backoff_initial_secs: must be ≤ backoff_max_secs (60, the default)`]],
    ['reset_after 0', '[service.restart]\nreset_after_secs = 0', [`${W}: restart.reset_after_secs: must be a number ≥ 0.05`]],
    ['deploy strategy', '[service.deploy]\nstrategy = "rolling"', [`${W}: deploy.strategy: must be one of "start-first", "stop-first"`]],
    ['ready_timeout 0', '[service.deploy]\nready_timeout_secs = 0', [`${W}: deploy.ready_timeout_secs: must be a number ≥ 0.05`]],
  ])('%s', (_what, toml, want) => {
    const text = toml.startsWith('[[service]]') ? toml : svc(`${toml}\n`);
    expect(errors(text)).toEqual(want);
  });

  it.each<[string, string, string[]]>([
    ['top level', '[[services]]\nname = "web"\n', ['f.toml: services: unknown key (did you mean "service"?)', 'f.toml: no [[service]] found (nothing to apply)']],
    ['top level next to a service', `${BASE}[[services]]\nname = "api"\n`, ['f.toml: services: unknown key (did you mean "service"?)']],
    ['service level', svc('nmae = "x"\nrepilcas = 2\nfoo = 1\n'), [`${W}: nmae: unknown key (did you mean "name"?)`, `${W}: repilcas: unknown key (did you mean "replicas"?)`, `${W}: foo: unknown key`]],
    ['service level, missing unit', svc('stop_grace = 3\n'), [`${W}: stop_grace: unknown key (did you mean "stop_grace_secs"?)`]],
    ['readiness', svc('port = 80\n[service.readiness]\npath = "/"\nintervall = 3\n'), [`${W}: readiness.intervall: unknown key (did you mean "interval_secs"?)`]],
    ['liveness', svc('port = 80\n[service.liveness]\ntcp = true\ntimeout = 3\n'), [`${W}: liveness.timeout: unknown key (did you mean "timeout_secs"?)`]],
    ['route', svc('port = 80\n[service.route]\nhost = "a.com"\nprefix = "/"\n'), [`${W}: route.prefix: unknown key`]],
    ['resources', svc('[service.resources]\nmemroy = "64m"\n'), [`${W}: resources.memroy: unknown key (did you mean "memory"?)`]],
    ['restart', svc('[service.restart]\npolcy = "never"\n'), [`${W}: restart.polcy: unknown key (did you mean "policy"?)`]],
    ['deploy', svc('[service.deploy]\nstrategie = "stop-first"\n'), [`${W}: deploy.strategie: unknown key (did you mean "strategy"?)`]],
    ['placement', svc('placement = { node = "n1", nodes = "n2" }\n'), [`${W}: placement.nodes: unknown key (did you mean "node"?)`]],
    ['nested table under a probe', svc('port = 80\n[service.readiness]\npath = "/"\n[service.readiness.http]\nx = 1\n'), [`${W}: readiness.http: unknown key`]],
  ])('reports unknown keys: %s', (_what, text, want) => {
    expect(errors(text)).toEqual(want);
  });

  it('reports [service] written as a single table', () => {
    expect(errors('[service]\nname = "web"\nimage = "i"\n')).toEqual([
      'f.toml: service: must be an array of tables: write [[service]], not [service]',
    ]);
  });

  it.each([
    ['an empty file', ''],
    ['only comments', '# nothing here\n'],
    ['an empty service array', 'service = []\n'],
  ])('reports %s as nothing to apply', (_what, text) => {
    expect(errors(text)).toEqual(['f.toml: no [[service]] found (nothing to apply)']);
  });

  it('reports every error in a file, across services and levels', () => {
    const text = [
      '[[service]]',
      'name = "web"',
      'image = ""',
      'replicas = -1',
      'bogus = 1',
      '[service.readiness]',
      'path = "/ready"',
      'interval_secs = 0',
      '[[service]]',
      'name = "API"',
      'port = 0',
      '[service.deploy]',
      'strategy = "x"',
      '[[extra]]',
    ].join('\n');
    expect(errors(text)).toEqual([
      `${W}: image: must be a non-empty string`,
      `${W}: replicas: must be an integer ≥ 0`,
      `${W}: readiness.interval_secs: must be a number ≥ 0.05`,
      `${W}: bogus: unknown key`,
      `${W}: readiness: a path or tcp check needs a port: set readiness.port or the service's "port"`,
      `f.toml: service #2: name: ${DNS}`,
      'f.toml: service #2: image: is required',
      'f.toml: service #2: port: must be an integer between 1 and 65535',
      'f.toml: service #2: deploy.strategy: must be one of "start-first", "stop-first"',
      'f.toml: extra: unknown key',
    ]);
  });

  it('returns structured errors', () => {
    const r = parseManifestText(svc('port = 80\n[service.readiness]\npath = "/"\ninterval_secs = 0.01\n'), 'f.toml');
    expect(r).toEqual({
      ok: false,
      errors: [{ file: 'f.toml', service: 'web', path: 'readiness.interval_secs', message: 'must be a number ≥ 0.05' }],
    });
  });

  it('rejects a service name used twice in one file', () => {
    expect(errors(`${BASE}${BASE}`)).toEqual([`${W}: defined more than once (already defined earlier in this file)`]);
  });
});

describe('parseManifestText: TOML syntax errors', () => {
  it.each([
    ['a missing value', '[[service]]\nname = "web"\nimage =\n', 'f.toml:3:8: Unexpected character, expecting string, number, datetime, boolean, inline array or inline table'],
    ['an unterminated string', '[[service]]\nname = "web\n', 'f.toml:2:12: Unterminated string'],
    ['a key defined twice', '[[service]]\nname = "a"\nname = "b"\n', "f.toml:3:11: Can't redefine existing key"],
    ['a key with a space', 'a = 1\n  b c = 2\n', 'f.toml:2:5: Invalid character, expected "="'],
  ])('reports %s as file:line:col (1-based)', (_what, text, want) => {
    expect(errors(text)).toEqual([want]);
  });
});

describe('parseManifestText: TOML types no field takes', () => {
  it.each([
    ['a datetime for a table', 'port = 80\nroute = 1979-05-27T00:00:00Z', [`${W}: route: must be a table`]],
    ['a date for a string', '[service.env]\nA = 1979-05-27', [`${W}: env.A: must be a string`]],
    ['an integer too big for JavaScript', 'replicas = 99999999999999999999', [`${W}: replicas: must be an integer ≥ 0`]],
    ['an array of tables for a table', 'port = 80\n[[service.readiness]]\npath = "/"', [`${W}: readiness: must be a table`]],
    ['a nested table in a string map', '[service.env]\nX = "1"\n[service.env.Y]\nZ = "2"', [`${W}: env.Y: must be a string`]],
  ])('rejects %s', (_what, extra, want) => {
    expect(errors(svc(`${extra}\n`))).toEqual(want);
  });

  it('rejects services that are not tables', () => {
    expect(errors('service = [1, "x"]\n')).toEqual(['f.toml: service #1: must be a table', 'f.toml: service #2: must be a table']);
  });
});
