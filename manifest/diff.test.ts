import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { diffSpecs, formatManifestError, parseManifestText, toManifestToml, type ServiceSpec } from './index.js';

function spec(text: string): ServiceSpec {
  const r = parseManifestText(text, 'f.toml');
  if (!r.ok) throw new Error(r.errors.map(formatManifestError).join('\n'));
  return r.value[0]!.spec;
}

const full = spec(readFileSync(new URL('./fixtures/full.toml', import.meta.url), 'utf8'));
const BASE = '[[service]]\nname = "web"\nimage = "img:1"\n';

describe('diffSpecs', () => {
  it('finds nothing between equal specs, however they were written', () => {
    expect(diffSpecs(full, structuredClone(full))).toEqual([]);
    expect(diffSpecs(spec(BASE), spec(`${BASE}replicas = 1\ninit = true\n[service.restart]\npolicy = "always"\n`))).toEqual([]);
  });

  it('reports changed fields with manifest paths, in SPEC order', () => {
    const a = spec(`${BASE}env = { GREETING = "hello", KEEP = "x" }\nport = 80\n[service.resources]\nmemory = "64m"\n[service.readiness]\npath = "/ready"\n`);
    const b = spec(
      `${BASE.replace('img:1', 'img:2')}env = { GREETING = "hi", KEEP = "x", "NEW.VAR" = "1" }\nport = 80\nreplicas = 3\n` +
        `[service.resources]\nmemory = "128m"\n[service.readiness]\npath = "/ready"\ninterval_secs = 0.5\n`,
    );
    expect(diffSpecs(a, b)).toEqual([
      { path: 'image', from: 'img:1', to: 'img:2' },
      { path: 'env.GREETING', from: 'hello', to: 'hi' },
      { path: 'env."NEW.VAR"', from: undefined, to: '1' },
      { path: 'replicas', from: 1, to: 3 },
      { path: 'resources.memory', from: '64m', to: '128m' },
      { path: 'readiness.interval_secs', from: 5, to: 0.5 },
    ]);
  });

  it('treats arrays as one value and shows a changed probe check', () => {
    const a = spec(`${BASE}command = ["a", "b"]\nport = 80\n[service.liveness]\npath = "/healthz"\n`);
    const b = spec(`${BASE}command = ["a", "c"]\nport = 80\n[service.liveness]\ntcp = true\n`);
    expect(diffSpecs(a, b)).toEqual([
      { path: 'command', from: ['a', 'b'], to: ['a', 'c'] },
      { path: 'liveness.path', from: '/healthz', to: undefined },
      { path: 'liveness.tcp', from: undefined, to: true },
    ]);
  });

  it('lists every field of a new service, and of a deleted one', () => {
    const created = diffSpecs(undefined, spec(BASE));
    expect(created.map((c) => c.path)).toEqual([
      'name',
      'image',
      'replicas',
      'stop_grace_secs',
      'init',
      'restart.policy',
      'restart.backoff_initial_secs',
      'restart.backoff_max_secs',
      'restart.reset_after_secs',
      'deploy.strategy',
      'deploy.ready_timeout_secs',
    ]);
    expect(created.every((c) => c.from === undefined)).toBe(true);
    const deleted = diffSpecs(spec(BASE), undefined);
    expect(deleted.map((c) => ({ path: c.path, to: c.to }))).toEqual(created.map((c) => ({ path: c.path, to: undefined })));
    expect(diffSpecs(undefined, undefined)).toEqual([]);
  });

  it('orders placement and nested label changes', () => {
    const a = spec(`${BASE}placement = { node = "n1", labels = { zone = "a" } }\n`);
    const b = spec(`${BASE}placement = { labels = { disk = "ssd", zone = "b" } }\n`);
    expect(diffSpecs(a, b)).toEqual([
      { path: 'placement.node', from: 'n1', to: undefined },
      { path: 'placement.labels.disk', from: undefined, to: 'ssd' },
      { path: 'placement.labels.zone', from: 'a', to: 'b' },
    ]);
  });
});

describe('diffSpecs: volumes, mounts and secrets', () => {
  it('shows volumes and secret_env per key, secrets as one list, mounts per item and field, in SPEC order', () => {
    const a = spec(`${BASE}volumes = { data = "/data" }\nmounts = [{ host = "/srv/a", path = "/a" }]\nsecrets = ["one"]\nsecret_env = { PW = "one" }\n`);
    const b = spec(
      `${BASE}volumes = { data = "/var/data", logs = "/logs" }\nmounts = [{ host = "/srv/a", path = "/a", read_only = true }, { host = "/srv/b", path = "/b" }]\n` +
        `secrets = ["two", "one"]\nsecret_env = { PW = "two" }\n[service.deploy]\nstrategy = "stop-first"\n`,
    );
    expect(diffSpecs(a, b)).toEqual([
      { path: 'volumes.data', from: '/data', to: '/var/data' },
      { path: 'volumes.logs', from: undefined, to: '/logs' },
      { path: 'mounts[0].read_only', from: false, to: true },
      { path: 'mounts[1].host', from: undefined, to: '/srv/b' },
      { path: 'mounts[1].path', from: undefined, to: '/b' },
      { path: 'mounts[1].read_only', from: undefined, to: false },
      { path: 'secrets', from: ['one'], to: ['one', 'two'] },
      { path: 'secret_env.PW', from: 'one', to: 'two' },
    ]);
  });

  it('finds nothing when only the order of secrets differs', () => {
    expect(diffSpecs(spec(`${BASE}secrets = ["a", "b"]\n`), spec(`${BASE}secrets = ["b", "a"]\n`))).toEqual([]);
  });

  it('round-trips the new fields through TOML', () => {
    expect(spec(toManifestToml(full))).toEqual(full);
  });
});

describe('toManifestToml', () => {
  it('renders the SPEC example explicitly, as a [[service]] table', () => {
    expect(toManifestToml(full)).toBe(
      [
        '[[service]]',
        'name = "web"',
        'image = "orca-example/web:1"',
        'command = ["/bin/httpd", "-f", "-p", "80", "-h", "/www"]',
        'entrypoint = ["/bin/sh", "-c"]',
        'env = { GREETING = "hello" }',
        'replicas = 2',
        'port = 80',
        'stop_grace_secs = 10',
        'init = true',
        'labels = { team = "web" }',
        'placement = { node = "n2" }',
        'volumes = { data = "/var/lib/app" }',
        'mounts = [{ host = "/srv/shared", path = "/shared", read_only = true }]',
        'secrets = ["db-password"]',
        'secret_env = { DB_PASSWORD = "db-password" }',
        '',
        '[service.route]',
        'host = "web.localhost"',
        'path = "/"',
        '',
        '[service.resources]',
        'memory = "64m"',
        'cpus = 0.5',
        '',
        '[service.readiness]',
        'path = "/ready"',
        'port = 80',
        'interval_secs = 5',
        'timeout_secs = 3',
        'failure_threshold = 3',
        'success_threshold = 1',
        'initial_delay_secs = 10',
        '',
        '[service.liveness]',
        'path = "/healthz"',
        'port = 80',
        'interval_secs = 10',
        'timeout_secs = 3',
        'failure_threshold = 3',
        'success_threshold = 1',
        'initial_delay_secs = 0',
        '',
        '[service.restart]',
        'policy = "always"',
        'backoff_initial_secs = 1',
        'backoff_max_secs = 60',
        'reset_after_secs = 60',
        '',
        '[service.deploy]',
        'strategy = "start-first"',
        'ready_timeout_secs = 60',
        '',
      ].join('\n'),
    );
  });

  it('round-trips the SPEC example and awkward keys and values', () => {
    expect(spec(toManifestToml(full))).toStrictEqual(full);
    const odd = spec(
      `${BASE}env = { "A.B" = "x\\"y\\\\z\\n", "with space" = "\\u00e9" }\nlabels = { "a/b" = "=" }\n` +
        `[service.resources]\nmemory = 6291457\ncpus = 0.01\n[service.liveness]\nexec = ["sh", "-c", "exit 0"]\n`,
    );
    expect(spec(toManifestToml(odd))).toStrictEqual(odd);
  });
});
