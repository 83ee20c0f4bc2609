import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import TOML from '@iarna/toml';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { FULL_EXAMPLE } from '../scripts/manifest-docs.js';
import { schema as schemaCommand } from '../cli/commands/schema.js';
import { manifestJsonSchema, MANIFEST_SCHEMA_ID, type JsonSchema } from './json-schema.js';
import { parseManifestText } from './parse.js';

const ROOT = join(import.meta.dirname, '..');
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');

/** What `orca schema` prints, parsed: the very bytes an editor gets. */
function printedSchema(): JsonSchema {
  let out = '';
  schemaCommand({ write: (s: string) => (out += s) });
  return JSON.parse(out) as JsonSchema;
}

// Strict about the schema itself: an unknown keyword, a tuple or a non-finite number is an error.
// Not strictTypes / strictRequired, which want `type` and `properties` repeated in every `if` and
// `not` fragment of an object rule (the object itself already says them).
const ajv = new Ajv({ strictSchema: true, strictNumbers: true, strictTuples: true, allErrors: true });
const validate = ajv.compile(printedSchema());

/** The JSON Schema's verdict on TOML text (the document as @iarna/toml parses it). */
function schemaAccepts(text: string): boolean {
  let doc: unknown;
  try {
    doc = TOML.parse(text);
  } catch {
    return false;
  }
  // TOML dates are objects to a JSON validator; no manifest field takes one anyway.
  return validate(JSON.parse(JSON.stringify(doc)));
}
const parserAccepts = (text: string) => parseManifestText(text, 'm.toml').ok;
const schemaErrors = () => ajv.errorsText(validate.errors);

const toml = (doc: object) => TOML.stringify(doc as TOML.JsonMap);

const valid: Array<[string, string]> = [
  ...readdirSync(join(ROOT, 'examples'))
    .filter((f) => f.endsWith('.toml'))
    .map((f): [string, string] => [`examples/${f}`, read(`examples/${f}`)]),
  ['manifest/fixtures/full.toml', read('manifest/fixtures/full.toml')],
  ['test/e2e/fixtures/web.toml', read('test/e2e/fixtures/web.toml')],
  ['the complete example of docs/manifest.md', FULL_EXAMPLE],
];

const invalidDir = join(ROOT, 'manifest/fixtures/invalid');
const invalid: Array<[string, string]> = [
  ['test/e2e/fixtures/bad.toml', read('test/e2e/fixtures/bad.toml')],
  ...readdirSync(invalidDir)
    .filter((f) => f.endsWith('.toml'))
    .sort()
    .map((f): [string, string] => [`manifest/fixtures/invalid/${f}`, readFileSync(join(invalidDir, f), 'utf8')]),
];

/** ```toml blocks holding a [[service]] in the user docs. */
function docBlocks(): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const file of ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)]) {
    const text = read(file);
    let i = 0;
    for (const m of text.matchAll(/```toml\n([\s\S]*?)```/g)) {
      i += 1;
      if (m[1]?.includes('[[service]]')) out.push([`${file} block ${i}`, m[1]]);
    }
  }
  return out;
}

describe('orca schema: the JSON Schema of a manifest', () => {
  it('is a draft-07 schema with an $id and a title, that a strict validator compiles', () => {
    const s = printedSchema();
    expect(s.$schema).toBe('http://json-schema.org/draft-07/schema#');
    expect(s.$id).toBe(MANIFEST_SCHEMA_ID);
    expect(s.title).toBe('Orca manifest');
    expect(ajv.validateSchema(s)).toBe(true);
    // Pure: the same every time.
    expect(manifestJsonSchema()).toEqual(s);
  });

  it('describes the TOML document: a required, non-empty array of service tables, strict at every level', () => {
    const s = printedSchema();
    expect(s.type).toBe('object');
    expect(s.required).toEqual(['service']);
    expect(s.additionalProperties).toBe(false);
    const service = (s.properties as Record<string, JsonSchema>).service!;
    expect(service).toMatchObject({ type: 'array', minItems: 1, maxItems: 1000 });
    const item = service.items as JsonSchema;
    expect(item).toMatchObject({ type: 'object', required: ['name', 'image'], additionalProperties: false });
    expect((item.properties as Record<string, JsonSchema>).name!.description).toMatch(/DNS label/);
  });

  it('leaves no field as "anything goes", and every field of a service has a description', () => {
    const empty: string[] = [];
    const undescribed: string[] = [];
    const walk = (props: Record<string, JsonSchema>, at: string) => {
      for (const [k, j] of Object.entries(props)) {
        const p = `${at}${k}`;
        if (!['type', 'anyOf', 'oneOf', 'const', 'enum'].some((kw) => kw in j)) empty.push(p);
        if (typeof j.description !== 'string' || j.description.length < 10) undescribed.push(p);
        const sub = (j.type === 'array' ? (j.items as JsonSchema) : j).properties as Record<string, JsonSchema> | undefined;
        if (sub) walk(sub, `${p}.`);
      }
    };
    const s = printedSchema();
    const item = ((s.properties as Record<string, JsonSchema>).service!.items as JsonSchema).properties as Record<string, JsonSchema>;
    walk(item, '');
    expect(empty).toEqual([]);
    expect(undescribed).toEqual([]);
  });

  it('memory sizes: strings like "64m" and integers of bytes within bounds, nothing else', () => {
    const mem = (memory: unknown) => schemaAccepts(toml({ service: [{ name: 'w', image: 'i', resources: { memory } }] }));
    for (const ok of ['64m', '64M', '1.5g', '512mi', '512MiB', '1024k', ' 32m ', 6 * 1024 * 1024]) expect(mem(ok), String(ok)).toBe(true);
    for (const bad of ['lots', '64x', '-1m', '64 m b', 1024, 2 * 1024 ** 4, 1.5, true]) expect(mem(bad), String(bad)).toBe(false);
  });

  for (const [name, text] of [...valid, ...docBlocks()]) {
    it(`accepts ${name}, as the parser does`, () => {
      expect(parserAccepts(text), 'parser').toBe(true);
      expect(schemaAccepts(text), schemaErrors()).toBe(true);
    });
  }

  for (const [name, text] of invalid) {
    it(`rejects ${name}, as the parser does`, () => {
      expect(parserAccepts(text), 'parser').toBe(false);
      expect(schemaAccepts(text)).toBe(false);
    });
  }

  /** One field changed in a valid service; the schema and the parser must agree on each. */
  const base = () => ({ name: 'web', image: 'orca-example/web:1', port: 80 }) as Record<string, unknown>;
  const edits: Array<[string, Record<string, unknown>, boolean]> = [
    ['the base service', {}, true],
    ['replicas 0', { replicas: 0 }, true],
    ['replicas 1001', { replicas: 1001 }, false],
    ['replicas 1.5', { replicas: 1.5 }, false],
    ['port 0', { port: 0 }, false],
    ['port 65535', { port: 65535 }, true],
    ['name with upper case', { name: 'Web' }, false],
    ['name of 64 characters', { name: 'a'.repeat(64) }, false],
    ['name ending in -', { name: 'web-' }, false],
    ['empty image', { image: '' }, false],
    ['empty command', { command: [] }, false],
    ['command of numbers', { command: [1] }, false],
    ['env of strings', { env: { A: 'x', 'B.C': 'y' } }, true],
    ['env with a number', { env: { A: 1 } }, false],
    ['env key with =', { env: { 'A=B': 'x' } }, false],
    ['stop_grace_secs 0', { stop_grace_secs: 0 }, true],
    ['stop_grace_secs past a day', { stop_grace_secs: 86401 }, false],
    ['init as a string', { init: 'yes' }, false],
    ['labels', { labels: { team: 'web' } }, true],
    ['reserved label ORCA.x', { labels: { 'ORCA.x': 'y' } }, false],
    ['placement on a node', { placement: { node: 'n2' } }, true],
    ['placement by labels', { placement: { labels: { zone: 'a' } } }, true],
    ['empty placement', { placement: {} }, false],
    ['placement with empty labels', { placement: { labels: {} } }, false],
    ['a volume', { volumes: { data: '/var/lib/app' } }, true],
    ['a volume at /', { volumes: { data: '/' } }, false],
    ['a volume at a relative path', { volumes: { data: 'var/lib' } }, false],
    ['a volume path with ..', { volumes: { data: '/var/../lib' } }, false],
    ['a volume path with //', { volumes: { data: '/var//lib' } }, false],
    ['a volume path ending in /', { volumes: { data: '/var/lib/' } }, false],
    ['a volume path with a control character', { volumes: { data: '/var/\u0001' } }, false],
    ['a volume named Data', { volumes: { Data: '/data' } }, false],
    ['a volume under /run/secrets', { volumes: { data: '/run/secrets/x' } }, false],
    ['a volume at /run/secretsx', { volumes: { data: '/run/secretsx' } }, true],
    ['a mount', { mounts: [{ host: '/srv/shared', path: '/shared', read_only: true }] }, true],
    ['a mount of the host root', { mounts: [{ host: '/', path: '/host' }] }, true],
    ['a mount without path', { mounts: [{ host: '/srv' }] }, false],
    ['a mount with an unknown key', { mounts: [{ host: '/srv', path: '/s', rw: true }] }, false],
    ['secrets', { secrets: ['db-password'] }, true],
    ['a secret listed twice', { secrets: ['a', 'a'] }, false],
    ['secret_env', { secret_env: { DB: 'db-password' } }, true],
    ['secret_env naming a bad secret', { secret_env: { DB: 'DB_PASS' } }, false],
    ['a route', { route: { host: 'Web.Localhost', path: '/api', tls: 'manual' } }, true],
    ['a wildcard route', { route: { host: '*.example.com' } }, true],
    ['a wildcard route with acme', { route: { host: '*.example.com', tls: 'acme' } }, false],
    ['an exact route with acme', { route: { host: 'web.example.com', tls: 'acme' } }, true],
    ['a route path without /', { route: { host: 'web.localhost', path: 'api' } }, false],
    ['a route with tls = "on"', { route: { host: 'web.localhost', tls: 'on' } }, false],
    ['cpus 0.5', { resources: { cpus: 0.5 } }, true],
    ['cpus 0', { resources: { cpus: 0 } }, false],
    ['readiness by path', { readiness: { path: '/ready', interval_secs: 0.05 } }, true],
    ['readiness interval 0.01', { readiness: { path: '/ready', interval_secs: 0.01 } }, false],
    ['readiness without a check', { readiness: { interval_secs: 1 } }, false],
    ['readiness tcp = false', { readiness: { tcp: false } }, false],
    ['readiness exec', { readiness: { exec: ['cat', '/tmp/ok'] } }, true],
    ['readiness exec with a port', { readiness: { exec: ['true'], port: 81 } }, false],
    ['liveness success_threshold 1', { liveness: { tcp: true, success_threshold: 1 } }, true],
    ['liveness success_threshold 2', { liveness: { tcp: true, success_threshold: 2 } }, false],
    ['readiness failure_threshold 1001', { readiness: { tcp: true, failure_threshold: 1001 } }, false],
    ['restart on-failure', { restart: { policy: 'on-failure' } }, true],
    ['restart unless-stopped', { restart: { policy: 'unless-stopped' } }, false],
    ['deploy stop-first', { deploy: { strategy: 'stop-first', ready_timeout_secs: 120 } }, true],
    ['deploy recreate', { deploy: { strategy: 'recreate' } }, false],
    ['an unknown table', { network: { mode: 'host' } }, false],
  ];
  for (const [what, patch, expected] of edits) {
    it(`agrees with the parser on ${what} (${expected ? 'valid' : 'invalid'})`, () => {
      const text = toml({ service: [{ ...base(), ...patch }] });
      expect(parserAccepts(text), 'parser').toBe(expected);
      expect(schemaAccepts(text), expected ? schemaErrors() : 'schema').toBe(expected);
    });
  }

  it('agrees on probes and routes without the service port', () => {
    const noPort = (patch: object) => toml({ service: [{ name: 'web', image: 'i', ...patch }] });
    for (const [patch, expected] of [
      [{ route: { host: 'web.localhost' } }, false],
      [{ readiness: { path: '/ready' } }, false],
      [{ readiness: { path: '/ready', port: 8080 } }, true],
      [{ liveness: { tcp: true } }, false],
      [{ liveness: { exec: ['true'] } }, true],
    ] as const) {
      expect(parserAccepts(noPort(patch)), JSON.stringify(patch)).toBe(expected);
      expect(schemaAccepts(noPort(patch)), JSON.stringify(patch)).toBe(expected);
    }
  });

  /**
   * Rules JSON Schema cannot say: the editor accepts these, `orca apply` refuses them. Listed so
   * the gap is known; a rule moved into the schema moves out of this list.
   */
  it('leaves to the parser only the rules that compare fields or count across tables', () => {
    const gaps: Array<[string, object]> = [
      ['backoff_max_secs below backoff_initial_secs', { restart: { backoff_initial_secs: 10, backoff_max_secs: 5 } }],
      ['two mounts on one container path', { volumes: { a: '/data' }, mounts: [{ host: '/srv', path: '/data' }] }],
      ['a variable in env and secret_env', { env: { DB: 'x' }, secret_env: { DB: 'db' } }],
      ['a memory size below Docker\'s minimum', { resources: { memory: '1m' } }],
    ];
    for (const [what, patch] of gaps) {
      const text = toml({ service: [{ ...base(), ...patch }] });
      expect(parserAccepts(text), what).toBe(false);
      expect(schemaAccepts(text), what).toBe(true);
    }
    const twice = toml({ service: [base(), base()] });
    expect(parserAccepts(twice)).toBe(false);
    expect(schemaAccepts(twice)).toBe(true);
  });
});

describe('orca schema: patterns every engine reads', () => {
  it('uses no look-around, no flags, no octal and no escaped slash in any pattern', () => {
    const patterns: string[] = [];
    const walk = (v: unknown) => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (typeof v === 'object' && v !== null) {
        for (const [k, x] of Object.entries(v)) {
          if (k === 'pattern' && typeof x === 'string') patterns.push(x);
          else walk(x);
        }
      }
    };
    walk(manifestJsonSchema());
    expect(patterns.length).toBeGreaterThan(5);
    for (const p of patterns) {
      expect(p, p).not.toMatch(/\(\?[=!<]|\\\/|\\0|^\/.*\/[a-z]*$/);
      expect(() => new RegExp(p, 'u'), p).not.toThrow();
    }
  });
});
