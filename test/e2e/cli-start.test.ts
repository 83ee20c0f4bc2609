import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanup, ROOT, startServer, stopServer, testEnv, waitFor, type RunResult, type ServerProcess } from './harness.js';

/**
 * bin/orca runs the bundled CLI (scripts/bundle-cli.ts, part of `npm run build`): dist/cli/orca.cjs
 * with the light commands inside, a bundle of its own for each command that needs the manifest
 * schemas, and the heavy commands (server, agent) from their compiled modules. The light side
 * is checked in a copy holding only bin/, package.json and the bundle — no node_modules, none of
 * tsc's dist/ — so that a command reaching outside its bundle fails here.
 */

/** Runs `node <root>/bin/orca ARGS`. */
function run(root: string, args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(root, 'bin', 'orca'), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

const ONLY_ENV = { ORCA_API: '', ORCA_TOKEN: '', ORCA_HOME: '', ORCA_CA_CERT: '' };

describe('CLI start: the bundled CLI', () => {
  let env: Awaited<ReturnType<typeof testEnv>>;
  let server: ServerProcess;
  let copy: string;
  let version: string;

  beforeAll(async () => {
    version = (JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    copy = await mkdtemp(join(tmpdir(), 'orca-cli-start-'));
    await cp(join(ROOT, 'bin'), join(copy, 'bin'), { recursive: true });
    await cp(join(ROOT, 'package.json'), join(copy, 'package.json'));
    await mkdir(join(copy, 'dist', 'cli'), { recursive: true });
    for (const f of ['orca.cjs', 'orca.cjs.cache', 'import.cjs', 'bundle']) await cp(join(ROOT, 'dist', 'cli', f), join(copy, 'dist', 'cli', f), { recursive: true });
    env = await testEnv('cli-start');
    // The harness starts `orca server` through bin/orca: the heavy command, by the unbundled path.
    server = await startServer(env);
  });

  afterAll(async () => {
    await stopServer(server);
    if (env) await cleanup(env.cluster, env.dataDir);
    if (copy) await rm(copy, { recursive: true, force: true });
  });

  it('--version and --help come from the bundle alone', async () => {
    const v = await run(copy, ['--version']);
    expect(v).toMatchObject({ code: 0, stdout: `${version}\n` });
    const h = await run(copy, ['--help']);
    expect(h.code).toBe(0);
    for (const cmd of ['server', 'agent', 'apply', 'status', 'logs', 'events', 'secret']) expect(h.stdout).toMatch(new RegExp(`^  ${cmd}\\b`, 'm'));
    // Help of an unbundled command needs no module of it.
    const s = await run(copy, ['server', '--help']);
    expect(s.code).toBe(0);
    expect(s.stdout).toContain('--api-listen');
  });

  it('apply (its own bundle) and status (inside orca.cjs) work against a server, with no node_modules', async () => {
    const base = ['--api', server.api, '--data-dir', env.dataDir];
    const manifest = join(env.dataDir, 'start.toml');
    await writeFile(manifest, '[[service]]\nname = "start"\nimage = "orca-example/web:1"\nreplicas = 1\nport = 80\nstop_grace_secs = 1\n');
    const applied = await run(copy, [...base, 'apply', '-f', manifest, '-o', 'json'], ONLY_ENV);
    expect(applied.stderr).toBe('');
    expect(applied.code).toBe(0);
    expect(JSON.parse(applied.stdout)).toMatchObject({ dryRun: false, results: [{ service: 'start', result: 'created' }] });
    await waitFor(
      async () => {
        const r = await run(copy, [...base, 'status', '-o', 'json'], ONLY_ENV);
        return r.code === 0 && (JSON.parse(r.stdout) as { services: Array<{ replicas: { running: number } }> }).services[0]?.replicas.running === 1;
      },
      60_000,
      'start running',
    );
    const table = await run(copy, [...base, 'status'], ONLY_ENV);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^SERVICE\s+REVISION\s+STATE/);
    expect(table.stdout).toMatch(/^start\s+1\s/m);
  });

  it('errors keep their exit codes and messages across the bundles', async () => {
    // Unreachable server: exit 3 (a CliError thrown inside orca.cjs).
    const down = await run(copy, ['--api', 'http://127.0.0.1:1', 'status'], ONLY_ENV);
    expect(down.code).toBe(3);
    expect(down.stderr).toMatch(/^error: cannot reach the Orca server at http:\/\/127\.0\.0\.1:1: ECONNREFUSED/);
    // An invalid manifest: exit 2 (a CliError thrown inside bundle/apply.cjs, caught by orca.cjs).
    const bad = join(env.dataDir, 'bad.toml');
    await writeFile(bad, '[[service]]\nname = "x"\n');
    const invalid = await run(copy, ['--api', server.api, 'apply', '-f', bad], ONLY_ENV);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toMatch(/^error: .*bad\.toml: service "x": image: is required/);
    expect(invalid.stderr).not.toMatch(/\n\s+at /); // no stack trace
    // A usage error: exit 2.
    const usage = await run(copy, ['no-such-command']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("unknown command 'no-such-command'");
    // A failure inside an unbundled command (server, in tsc's dist/): its CliError, exit 2.
    const serverBad = await run(ROOT, ['server', '--data-dir', env.dataDir, '--api-listen', 'nonsense']);
    expect(serverBad.code).toBe(2);
    expect(serverBad.stderr).toMatch(/^error: .*api-listen/m);
    expect(serverBad.stderr).not.toMatch(/\n\s+at /);
  });

  it('a code cache that does not match is ignored, and no bundle falls back to a clear message', async () => {
    await writeFile(join(copy, 'dist', 'cli', 'orca.cjs.cache'), 'not a V8 code cache');
    expect(await run(copy, ['--version'])).toMatchObject({ code: 0, stdout: `${version}\n` });
    await rm(join(copy, 'dist'), { recursive: true });
    const unbuilt = await run(copy, ['--version']);
    expect(unbuilt.code).toBe(1);
    expect(unbuilt.stderr).toContain('Orca is not built yet: run `npm ci && npm run build`');
  });
});
