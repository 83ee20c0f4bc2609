/**
 * The shipped example, exactly as the README and its own header tell an operator to run it:
 * examples/counter.toml — a web service counting hits in the example redis by its service name,
 * the database on a volume, its password a secret.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cleanup, cli, ROOT, startServer, stopServer, testEnv, waitFor, type ServerProcess } from './harness.js';
import { httpClient } from './http-client.js';

describe('examples/counter.toml', () => {
  let env: { cluster: string; dataDir: string };
  let server: ServerProcess | undefined;
  let run: ReturnType<typeof cli>;

  beforeAll(async () => {
    env = await testEnv('example');
    server = await startServer(env);
    run = cli(server, env.dataDir);
  });
  afterAll(async () => {
    await stopServer(server);
    await cleanup(env.cluster, env.dataDir);
  });

  it('counts hits through the proxy once its secret is set; refused (exit 2, naming the secret) before', async () => {
    const manifest = join(ROOT, 'examples', 'counter.toml');
    const early = await run(['apply', '-f', manifest]);
    expect(early.code).toBe(2);
    expect(early.stderr).toContain('db-password');
    const pw = join(env.dataDir, 'pw');
    await writeFile(pw, 'a long random password');
    expect((await run(['secret', 'set', 'db-password', '-f', pw])).code).toBe(0);
    const r = await run(['apply', '-f', manifest, '--wait', '--timeout', '90'], 120_000);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const http = httpClient(server!.proxy!);
    try {
      const hit = async () => (await http.get('counter.localhost', '/cgi-bin/hit')).body;
      await waitFor(async () => /hits \d+/.test(await hit().catch(() => '')), 30_000, 'counter answers');
      const first = Number(/hits (\d+)/.exec(await hit())![1]);
      const second = Number(/hits (\d+)/.exec(await hit())![1]);
      expect(second).toBe(first + 1);
      expect((await http.get('counter.localhost', '/cgi-bin/count')).body).toContain(`hits ${second}`);
    } finally {
      http.close();
    }
  });
});
