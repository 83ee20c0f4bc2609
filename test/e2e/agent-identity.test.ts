import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEST_IMAGE } from '../images.js';
import { cleanup, cli, orca, startAgentProcess, startServer, stopAgentProcess, stopServer, testEnv, waitFor, type AgentProcess, type ServerProcess } from './harness.js';

const AGENT_FLAGS = ['--reconnect-initial', '0.2', '--reconnect-max', '0.5', '--watchdog-interval', '2'];

describe('node identity: two agents with the same node name', () => {
  let env: { cluster: string; dataDir: string };
  const dirs: string[] = [];
  let server: ServerProcess | undefined;
  let first: AgentProcess | undefined;
  let second: AgentProcess | undefined;
  let run: ReturnType<typeof cli>;

  beforeAll(async () => {
    env = await testEnv('ident');
    server = await startServer({ ...env, extra: ['--watchdog-interval', '2'] });
    run = cli(server, env.dataDir);
    const token = (await readFile(join(env.dataDir, 'cluster.token'), 'utf8')).trim();
    for (let i = 0; i < 2; i++) dirs.push(await mkdtemp(join(tmpdir(), `${env.cluster}-a${i}-`)));
    first = startAgentProcess({ api: server.api, node: 'n2', dataDir: dirs[0]!, token, cluster: env.cluster, extra: AGENT_FLAGS });
    await waitFor(async () => first!.logs().includes('session with the server established'), 15_000, 'first agent welcomed');
    // The second joins with a ws:// URL (as --join allows).
    second = startAgentProcess({ api: server.api.replace(/^http/, 'ws'), node: 'n2', dataDir: dirs[1]!, token, cluster: env.cluster, extra: AGENT_FLAGS });
  });

  afterAll(async () => {
    await stopAgentProcess(second);
    await stopAgentProcess(first);
    await stopServer(server);
    await cleanup(env.cluster, env.dataDir);
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('the second says why and waits; the first keeps its session; no slot runs twice', async () => {
    await waitFor(async () => /node name n2 already has a live session from .*; waiting/.test(second!.logs()), 15_000, 'second agent refused');
    const file = join(env.dataDir, 'dup.toml');
    await writeFile(file, `[[service]]\nname = "dup"\nimage = "${TEST_IMAGE}"\ncommand = ["sleep", "3600"]\nreplicas = 4\nstop_grace_secs = 0.5\n`);
    const r = await run(['apply', '-f', file, '--wait', '--timeout', '60']);
    expect(r.code, r.stderr).toBe(0);
    // A few of the second's retries later, still four containers: nobody ran n2's slots twice.
    await waitFor(async () => (second!.logs().match(/already has a live session/g) ?? []).length >= 3, 15_000, 'second agent retrying');
    const ids = execFileSync('docker', ['ps', '-q', '--filter', `label=orca.cluster=${env.cluster}`, '--filter', 'label=orca.service=dup']).toString().trim().split('\n').filter(Boolean);
    expect(ids).toHaveLength(4);
    expect(first!.logs()).not.toContain('session with the server ended');
    expect(second!.logs()).not.toContain('session with the server established');
    const nodes = JSON.parse((await run(['nodes', '-o', 'json'])).stdout) as { nodes: Array<{ name: string; state: string }> };
    expect(nodes.nodes.find((n) => n.name === 'n2')?.state).toBe('ready');
  });

  it('--join refuses other schemes with exit 2 and a clear message', async () => {
    const r = await orca(['agent', '--join', 'ftp://127.0.0.1:1', '--node-name', 'n9', '--token', 't', '--data-dir', dirs[1]!]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--join: "ftp://127.0.0.1:1" must be a ws://, wss://, http:// or https:// URL');
  });
});
