import { describe, expect, it } from 'vitest';
import { formatManifestError, LIMITS, parseManifestText } from './index.js';

const W = 'f.toml: service "web"';
const svc = (extra: string) => `[[service]]\nname = "web"\nimage = "img"\n${extra}\n`;

function errors(text: string): string[] {
  const r = parseManifestText(text, 'f.toml');
  return r.ok ? [] : r.errors.map(formatManifestError);
}

const tomlArray = (n: number, item = '"a"') => `[${Array.from({ length: n }, () => item).join(', ')}]`;
const tomlTable = (n: number, value = '"v"') => `{ ${Array.from({ length: n }, (_, i) => `k${i} = ${value}`).join(', ')} }`;

describe('manifest bounds (SPEC §2): every number and string has an upper limit', () => {
  // [what, field lines, the value at the limit (valid), the value past it, the error]
  it.each<[string, (v: string) => string, string, string, string]>([
    ['replicas', (v) => `replicas = ${v}`, '1000', '1001', `${W}: replicas: must be at most 1000`],
    ['port', (v) => `port = ${v}`, '65535', '65536', `${W}: port: must be an integer between 1 and 65535`],
    ['stop_grace_secs', (v) => `stop_grace_secs = ${v}`, '86400', '86400.5', `${W}: stop_grace_secs: must be at most 86400 (one day)`],
    [
      'readiness.interval_secs',
      (v) => `port = 80\n[service.readiness]\ntcp = true\ninterval_secs = ${v}`,
      '86400',
      '86401',
      `${W}: readiness.interval_secs: must be at most 86400 (one day)`,
    ],
    [
      'readiness.timeout_secs',
      (v) => `port = 80\n[service.readiness]\ntcp = true\ntimeout_secs = ${v}`,
      '86400',
      '1e9',
      `${W}: readiness.timeout_secs: must be at most 86400 (one day)`,
    ],
    [
      'liveness.initial_delay_secs',
      (v) => `port = 80\n[service.liveness]\ntcp = true\ninitial_delay_secs = ${v}`,
      '86400',
      '100000',
      `${W}: liveness.initial_delay_secs: must be at most 86400 (one day)`,
    ],
    [
      'readiness.failure_threshold',
      (v) => `port = 80\n[service.readiness]\ntcp = true\nfailure_threshold = ${v}`,
      '1000',
      '1001',
      `${W}: readiness.failure_threshold: must be at most 1000`,
    ],
    [
      'readiness.success_threshold',
      (v) => `port = 80\n[service.readiness]\ntcp = true\nsuccess_threshold = ${v}`,
      '1000',
      '999999999',
      `${W}: readiness.success_threshold: must be at most 1000`,
    ],
    ['readiness.port', (v) => `[service.readiness]\ntcp = true\nport = ${v}`, '65535', '70000', `${W}: readiness.port: must be an integer between 1 and 65535`],
    [
      'restart.backoff_max_secs',
      (v) => `[service.restart]\nbackoff_max_secs = ${v}`,
      '86400',
      '86401',
      `${W}: restart.backoff_max_secs: must be at most 86400 (one day)`,
    ],
    [
      'restart.reset_after_secs',
      (v) => `[service.restart]\nreset_after_secs = ${v}`,
      '86400',
      '86401',
      `${W}: restart.reset_after_secs: must be at most 86400 (one day)`,
    ],
    [
      'deploy.ready_timeout_secs',
      (v) => `[service.deploy]\nready_timeout_secs = ${v}`,
      '86400',
      '86401',
      `${W}: deploy.ready_timeout_secs: must be at most 86400 (one day)`,
    ],
    ['resources.memory (string)', (v) => `[service.resources]\nmemory = ${v}`, '"1024g"', '"1025g"', `${W}: resources.memory: must be at most 1024g (1 TiB)`],
    ['resources.memory (bytes)', (v) => `[service.resources]\nmemory = ${v}`, String(1024 ** 4), String(1024 ** 4 + 1), `${W}: resources.memory: must be at most 1024g (1 TiB)`],
    ['resources.memory (huge)', (v) => `[service.resources]\nmemory = ${v}`, '"64m"', `"${'9'.repeat(40)}g"`, `${W}: resources.memory: must be at most 1024g (1 TiB)`],
    ['resources.cpus', (v) => `[service.resources]\ncpus = ${v}`, '1024', '1024.5', `${W}: resources.cpus: must be at most 1024`],
  ])('%s', (_what, field, atLimit, past, want) => {
    expect(errors(svc(field(atLimit)))).toEqual([]);
    expect(errors(svc(field(past)))).toEqual([want]);
  });

  const bigString = (n: number) => `"${'x'.repeat(n)}"`;
  it.each<[string, string, string, string]>([
    ['command items', `command = ${tomlArray(1000)}`, `command = ${tomlArray(1001)}`, `${W}: command: must have at most 1000 items`],
    ['entrypoint items', `entrypoint = ${tomlArray(1000)}`, `entrypoint = ${tomlArray(1001)}`, `${W}: entrypoint: must have at most 1000 items`],
    ['command item length', `command = [${bigString(65536)}]`, `command = [${bigString(65536)}, ${bigString(65537)}]`, `${W}: command[1]: must be at most 65536 characters`],
    ['env keys', `env = ${tomlTable(1000)}`, `env = ${tomlTable(1001)}`, `${W}: env: must have at most 1000 keys`],
    ['env value', `env = { A = ${bigString(65536)} }`, `env = { A = ${bigString(65537)} }`, `${W}: env.A: must be at most 65536 characters`],
    ['env key', `env = { ${'K'.repeat(256)} = "v" }`, `env = { ${'K'.repeat(257)} = "v" }`, `${W}: env."${'K'.repeat(39)}…": key must be at most 256 characters`],
    ['labels keys', `labels = ${tomlTable(1000)}`, `labels = ${tomlTable(1001)}`, `${W}: labels: must have at most 1000 keys`],
    ['label key', `labels = { ${'k'.repeat(256)} = "v" }`, `labels = { ${'k'.repeat(257)} = "v" }`, `${W}: labels."${'k'.repeat(39)}…": key must be at most 256 characters`],
    ['label value', `labels = { a = ${bigString(4096)} }`, `labels = { a = ${bigString(4097)} }`, `${W}: labels.a: must be at most 4096 characters`],
    ['placement.node', `placement = { node = ${bigString(253)} }`, `placement = { node = ${bigString(254)} }`, `${W}: placement.node: must be at most 253 characters`],
    [
      'placement.labels value',
      `placement = { labels = { a = ${bigString(4096)} } }`,
      `placement = { labels = { a = ${bigString(4097)} } }`,
      `${W}: placement.labels.a: must be at most 4096 characters`,
    ],
    ['route.path', `port = 80\nroute = { host = "a.com", path = "/${'p'.repeat(1023)}" }`, `port = 80\nroute = { host = "a.com", path = "/${'p'.repeat(1024)}" }`, `${W}: route.path: must be at most 1024 characters`],
    ['route.host', `port = 80\nroute = { host = "${'a.'.repeat(126)}a" }`, `port = 80\nroute = { host = "${'a.'.repeat(127)}a" }`, `${W}: route.host: must be at most 253 characters`],
    [
      'readiness.path',
      `port = 80\n[service.readiness]\npath = "/${'p'.repeat(1023)}"`,
      `port = 80\n[service.readiness]\npath = "/${'p'.repeat(1024)}"`,
      `${W}: readiness.path: must be at most 1024 characters`,
    ],
    ['liveness.exec items', `[service.liveness]\nexec = ${tomlArray(1000)}`, `[service.liveness]\nexec = ${tomlArray(1001)}`, `${W}: liveness.exec: must have at most 1000 items`],
  ])('%s', (_what, atLimit, past, want) => {
    expect(errors(svc(atLimit))).toEqual([]);
    expect(errors(svc(past))).toEqual([want]);
  });

  it('image', () => {
    const withImage = (n: number) => `[[service]]\nname = "web"\nimage = "${'i'.repeat(n)}"\n`;
    expect(errors(withImage(LIMITS.image))).toEqual([]);
    expect(errors(withImage(LIMITS.image + 1))).toEqual([`${W}: image: must be at most 512 characters`]);
  });

  it('accepts at most 1000 services in one file', () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => `[[service]]\nname = "s${i}"\nimage = "i"\n`).join('');
    expect(errors(many(1000))).toEqual([]);
    expect(errors(many(1001))).toEqual(['f.toml: service: must have at most 1000 services in one file']);
  });

  it('reports at most 50 errors per file, then counts the rest', () => {
    const text = svc(Array.from({ length: 120 }, (_, i) => `typo${i} = 1`).join('\n'));
    const out = errors(text);
    expect(out).toHaveLength(51);
    expect(out[50]).toBe('f.toml: … and 70 more errors (fix these first)');
  });
});
