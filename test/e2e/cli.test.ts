import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { systemClock } from '../../core/clock.js';
import { WS_ECHO_IMAGE } from '../images.js';
import { cleanup, cli, orca, startServer, stopServer, testEnv, waitFor, ORCA, ROOT, type ServerProcess } from './harness.js';

/** Keys that occur twice in one object of a JSON text (JSON.parse keeps the last silently). */
function repeatedKeys(json: string): string[] {
  const objects: Array<Set<string> | null> = [];
  const found: string[] = [];
  let expectKey = false;
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === '{' || c === '[') {
      objects.push(c === '{' ? new Set() : null);
      expectKey = c === '{';
    } else if (c === '}' || c === ']') objects.pop();
    else if (c === ',') expectKey = objects.at(-1) instanceof Set;
    else if (c === '"') {
      let j = i + 1;
      while (json[j] !== '"') j += json[j] === '\\' ? 2 : 1;
      const top = objects.at(-1);
      if (expectKey && top) {
        const key = json.slice(i + 1, j);
        if (top.has(key)) found.push(key);
        top.add(key);
      }
      expectKey = false;
      i = j;
    }
  }
  return found;
}

interface PipedRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  firstLine: string;
  stderr: string;
}

/**
 * Runs `orca ARGS` with stdout piped into a reader that closes the pipe after the first line
 * (as `| head -1` does), calls `afterClose` once it has, and resolves when orca has ended.
 */
function pipedIntoHead(args: string[], afterClose: () => Promise<void> = async () => {}, timeoutMs = 30_000): Promise<PipedRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ORCA, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let stderr = '';
    let firstLine = '';
    child.stderr.on('data', (d) => (stderr += d));
    const onData = (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      firstLine = out.slice(0, nl);
      child.stdout.off('data', onData);
      child.stdout.destroy(); // the reader is gone: orca's next write meets EPIPE
      void afterClose().catch(reject);
    };
    child.stdout.on('data', onData);
    const timer = systemClock.setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`orca ${args.join(' ')} did not end after its reader closed; stderr=${stderr}`));
    }, timeoutMs);
    child.on('exit', (code, signal) => {
      systemClock.clearTimeout(timer);
      resolve({ code, signal, firstLine, stderr });
    });
  });
}

describe('the CLI as a tool in pipes (real server)', () => {
  let env: { cluster: string; dataDir: string };
  let server: ServerProcess | undefined;
  let run: ReturnType<typeof cli>;
  let manifest: string;
  let global: string[];

  const writeManifest = (replicas: number) =>
    writeFile(
      manifest,
      `[[service]]\nname = "pipes"\nimage = "${WS_ECHO_IMAGE}"\nreplicas = ${replicas}\nport = 80\nstop_grace_secs = 0.1\n[service.route]\nhost = "pipes.localhost"\n`,
    );

  beforeAll(async () => {
    env = await testEnv('cli');
    server = await startServer(env);
    run = cli(server, env.dataDir);
    global = ['--api', server.api, '--data-dir', env.dataDir];
    manifest = join(env.dataDir, 'pipes.toml');
    await writeManifest(1);
    expect((await run(['apply', '-f', manifest, '--wait', '--timeout', '60'])).code).toBe(0);
  });

  afterAll(async () => {
    await stopServer(server);
    await cleanup(env.cluster, env.dataDir);
  });

  it('`orca --version` prints the version of package.json', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await orca(['--version']);
    expect(r).toMatchObject({ code: 0, stdout: `${version}\n`, stderr: '' });
  });

  it('`orca events -f | head -1` ends quietly with exit 0 when the reader goes away', async () => {
    let replicas = 1;
    const r = await pipedIntoHead([...global, 'events', '-f'], async () => {
      // New events reach `orca events -f` after its reader has gone: its next write meets EPIPE.
      const recorded = async () => (await run(['events', '-o', 'json', '--service', 'pipes'])).stdout.split('\n').filter(Boolean).length;
      for (let i = 0; i < 3; i++) {
        replicas = replicas === 1 ? 2 : 1;
        await writeManifest(replicas);
        const before = await recorded();
        await run(['apply', '-f', manifest]);
        await waitFor(async () => (await recorded()) > before, 10_000, "the apply's events recorded");
      }
    });
    expect(r.firstLine).toMatch(/reason=/);
    expect(r).toMatchObject({ code: 0, signal: null });
    expect(r.stderr).not.toMatch(/EPIPE|\n\s+at /);
  });

  it('`orca events -o json | head -1` gives one JSON object and exit 0', async () => {
    // A change whatever an earlier test left: its events reach the follower after its reader left.
    const current = (JSON.parse((await run(['status', 'pipes', '-o', 'json'])).stdout) as { services: Array<{ replicas: { desired: number } }> }).services[0]!.replicas.desired;
    const r = await pipedIntoHead([...global, 'events', '--service', 'pipes', '-o', 'json', '-f'], async () => {
      await writeManifest(current === 1 ? 2 : 1);
      await run(['apply', '-f', manifest]);
    });
    expect(JSON.parse(r.firstLine)).toMatchObject({ service: 'pipes', reconciler: expect.any(String), action: expect.any(String) });
    expect(r).toMatchObject({ code: 0, signal: null });
    expect(r.stderr).toBe('');
  });

  it('`orca status --watch -o json | head -1` ends quietly with exit 0', async () => {
    const r = await pipedIntoHead([...global, 'status', '--watch', '-o', 'json']);
    expect(JSON.parse(r.firstLine)).toMatchObject({ services: [{ name: 'pipes' }] });
    expect(r).toMatchObject({ code: 0, signal: null });
    expect(r.stderr).toBe('');
  });

  it('every read command speaks -o json with the same option name', async () => {
    await waitFor(async () => JSON.parse((await run(['status', '-o', 'json'])).stdout).services[0].replicas.ready >= 1, 20_000, 'a ready replica');
    const nodes = JSON.parse((await run(['nodes', '-o', 'json'])).stdout) as { nodes: Array<{ name: string }> };
    expect(nodes.nodes.map((n) => n.name)).toEqual(['n1']);
    const history = JSON.parse((await run(['history', 'pipes', '-o', 'json'])).stdout) as { service: string; revisions: Array<{ revision: number; outcome: string }> };
    expect(history.service).toBe('pipes');
    expect(history.revisions.length).toBeGreaterThanOrEqual(2);
    const events = (await run(['events', '--service', 'pipes', '-o', 'json'])).stdout.trim().split('\n');
    for (const line of events) expect(JSON.parse(line)).toMatchObject({ service: 'pipes' });
    const table = await run(['events', '--service', 'pipes', '-o', 'table']);
    expect(table.code).toBe(0);
    expect(table.stdout).toContain('reason=');
    const bad = await run(['status', '-o', 'yaml']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/table, json/);
  });

  it('apply and diff speak -o json', async () => {
    await writeManifest(1);
    const dry = await run(['apply', '-f', manifest, '--dry-run', '-o', 'json']);
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.stdout)).toEqual({ dryRun: true, results: [{ service: 'pipes', result: expect.stringMatching(/^(configured|unchanged)$/), revision: expect.any(Number) }] });
    await writeManifest(3);
    await run(['apply', '-f', manifest]);
    await writeManifest(4);
    const d = await run(['diff', '-f', manifest, '-o', 'json']);
    expect(d.code).toBe(1);
    const body = JSON.parse(d.stdout) as { differs: boolean; services: Array<{ service: string; exists: boolean; changes: Array<{ path: string; to: unknown }> }> };
    expect(body.differs).toBe(true);
    expect(body.services[0]).toMatchObject({ service: 'pipes', exists: true });
    expect(body.services[0]!.changes).toContainEqual(expect.objectContaining({ path: 'replicas', from: 3, to: 4 }));
  });

  it('no server log line repeats a key (a child logger binds it once)', async () => {
    expect(repeatedKeys('{"a":1,"b":{"a":2},"c":["a"],"a":3}')).toEqual(['a']);
    const lines = server!.logs().split('\n').filter((l) => l.startsWith('{'));
    expect(lines.some((l) => l.includes('"route.add"'))).toBe(true);
    const repeated = lines.map((l) => ({ keys: repeatedKeys(l), line: l })).filter((x) => x.keys.length > 0);
    expect(repeated).toEqual([]);
  });
});
