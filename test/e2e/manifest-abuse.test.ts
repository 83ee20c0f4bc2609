import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanup, cli, startServer, stopServer, testEnv, type ServerProcess } from './harness.js';

/**
 * Manifests found by fuzzing the CLI (issue 9): `orca apply -f` on each is one clear error
 * naming the file, exit 2, no stack trace, quick — and nothing is stored. The server's own
 * parser (POST /v1/apply) is bounded the same way.
 */
const BASE = '[[service]]\nname = "web"\nimage = "orca-test/none:1"\n';
const ATTACKS: Array<[string, string, () => string]> = [
  ['a 2 MB key', 'key.toml', () => `${BASE}${'k'.repeat(2_000_000)} = 1\n`],
  ['a 200 KB key', 'key200.toml', () => `${BASE}${'k'.repeat(200_000)} = 1\n`],
  ['arrays 10,000 deep', 'arrays.toml', () => `${BASE}command = ${'['.repeat(10_000)}${']'.repeat(10_000)}\n`],
  ['inline tables 10,000 deep', 'tables.toml', () => `${BASE}env = ${'{ a = '.repeat(10_000)}1${' }'.repeat(10_000)}\n`],
  ['a dotted key 10,000 deep', 'dotted.toml', () => `${BASE}${'a.'.repeat(10_000)}b = 1\n`],
  ['a 5 MB string value', 'string.toml', () => `${BASE}env = { A = "${'x'.repeat(5_000_000)}" }\n`],
  ['a 200 KB wrong value', 'value.toml', () => `${BASE}replicas = "${'x'.repeat(200_000)}"\n`],
  ['replicas = 100000', 'replicas.toml', () => `${BASE}replicas = 100000\n`],
];

describe('orca apply -f: hostile manifests (real server)', () => {
  let env: { cluster: string; dataDir: string };
  let server: ServerProcess | undefined;
  let run: ReturnType<typeof cli>;
  let dir: string;

  beforeAll(async () => {
    env = await testEnv('manifest-abuse');
    server = await startServer(env);
    run = cli(server, env.dataDir);
    dir = await mkdtemp(join(tmpdir(), 'orca-manifest-abuse-'));
    for (const [, name, make] of ATTACKS) await writeFile(join(dir, name), make());
  });

  afterAll(async () => {
    await stopServer(server);
    await cleanup(env.cluster, env.dataDir);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it.each(ATTACKS)('%s: exit 2, names the file, no stack trace, under 2 s, nothing stored', async (_what, name) => {
    const file = join(dir, name);
    const started = performance.now();
    const r = await run(['apply', '-f', file], 10_000);
    const elapsed = performance.now() - started;
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(file);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(r.stderr).not.toMatch(/RangeError|Maximum call stack/);
    expect(r.stderr.length).toBeLessThan(400);
    expect(elapsed).toBeLessThan(2_000);
    const status = await run(['status', '-o', 'json']);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ services: [] });
  });

  it('the server parses as boundedly: POST /v1/apply with each attack is a 400 naming the file, quickly', async () => {
    const token = (await readFile(join(env.dataDir, 'cluster.token'), 'utf8')).trim();
    for (const [what, name, make] of ATTACKS) {
      const started = performance.now();
      const res = await fetch(`${server!.api}/v1/apply`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ files: [{ file: name, text: make() }] }),
      });
      const body = await res.text();
      expect({ what, status: res.status }).toEqual({ what, status: 400 });
      expect(body).toContain(name);
      expect(body.length).toBeLessThan(1_000);
      expect(performance.now() - started).toBeLessThan(2_000);
    }
    // Still alive and still empty.
    const status = await run(['status', '-o', 'json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ services: [] });
  });
});
