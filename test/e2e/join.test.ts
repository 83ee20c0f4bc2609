import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { PROTOCOL_VERSION } from '../../protocol/messages.js';
import { TEST_IMAGE } from '../images.js';
import { cleanup, cli, holdsFor, startAgentProcess, startServer, stopAgentProcess, stopServer, testEnv, waitFor, type AgentProcess, type ServerProcess } from './harness.js';

const AGENT_FLAGS = ['--reconnect-initial', '0.2', '--reconnect-max', '0.5', '--watchdog-interval', '2'];

interface NodeRow {
  name: string;
  state: string;
}
interface Instance {
  node: string;
  ready: boolean;
}

/**
 * Joining with tokens (SPEC §3.10) on one Docker host: a server (embedded agent n1) and two
 * agents n2 and n3 that are given a join token file — never the admin token, never a CA file.
 */
describe('join tokens, node credentials, node removal', () => {
  let env: { cluster: string; dataDir: string };
  let server: ServerProcess | undefined;
  let run: ReturnType<typeof cli>;
  const agents: AgentProcess[] = [];
  let work: string;
  const dirs: Record<string, string> = {};
  let token = '';
  let adminToken = '';

  const nodes = async () => (JSON.parse((await run(['nodes', '-o', 'json'])).stdout) as { nodes: NodeRow[] }).nodes;
  const instances = async (service: string) => {
    const r = await run(['status', service, '-o', 'json']);
    return ((JSON.parse(r.stdout) as { services: Array<{ instances: Instance[] }> }).services[0]?.instances ?? []) as Instance[];
  };
  const containers = (service: string, node?: string) =>
    execFileSync('docker', ['ps', '-q', '--filter', `label=orca.cluster=${env.cluster}`, '--filter', `label=orca.service=${service}`, ...(node ? ['--filter', `label=orca.node=${node}`] : [])])
      .toString()
      .trim()
      .split('\n')
      .filter(Boolean);
  const tokenFile = async (name: string, text: string) => {
    const f = join(work, name);
    await writeFile(f, `${text}\n`, { mode: 0o600 });
    return f;
  };
  const agent = async (node: string, o: { tokenFile?: string; env?: Record<string, string>; dir?: string } = {}) => {
    const dir = o.dir ?? (dirs[node] ??= await mkdtemp(join(work, `${node}-`)));
    const a = startAgentProcess({ api: server!.api, node, dataDir: dir, cluster: env.cluster, extra: AGENT_FLAGS, ...(o.tokenFile ? { tokenFile: o.tokenFile } : {}), ...(o.env ? { env: o.env } : {}) });
    agents.push(a);
    return a;
  };
  /** An agent that must end by itself: its exit code and output. */
  const refusedAgent = async (node: string, o: Parameters<typeof agent>[1]) => {
    const a = await agent(node, { dir: await mkdtemp(join(work, `${node}-x-`)), ...o });
    const code = await Promise.race([a.exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 20_000))]);
    return { code, logs: a.logs() };
  };

  beforeAll(async () => {
    env = await testEnv('join');
    work = await mkdtemp(join(tmpdir(), `${env.cluster}-work-`));
    server = await startServer({ ...env, extra: ['--watchdog-interval', '2'] });
    run = cli(server, env.dataDir);
    adminToken = (await readFile(join(env.dataDir, 'cluster.token'), 'utf8')).trim();
    const made = await run(['token', 'create', '--uses', '2']);
    expect(made.code, made.stderr).toBe(0);
    token = made.stdout.trim();
    expect(token).toMatch(/^orca1\.[0-9a-f]{64}\.[a-z0-9]{12}\.[A-Za-z0-9_-]{43}$/);
    expect(made.stderr).toMatch(/expires .*, 2 uses/);
    const file = await tokenFile('join.token', token);
    await agent('n2', { tokenFile: file });
    // The other one takes it from the environment.
    await agent('n3', { env: { ORCA_JOIN_TOKEN: token } });
    await waitFor(async () => (await nodes()).filter((n) => n.state === 'ready').length === 3, 30_000, 'n1, n2 and n3 ready');
  });

  afterAll(async () => {
    for (const a of agents) await stopAgentProcess(a);
    await stopServer(server);
    await cleanup(env.cluster, env.dataDir);
    await rm(work, { recursive: true, force: true });
  });

  it('two agents joined with the token: each keeps its credential (0600); the token is used up; no secret in any listing or log', async () => {
    expect((await nodes()).map((n) => n.name).sort()).toEqual(['n1', 'n2', 'n3']);
    for (const n of ['n2', 'n3']) {
      const f = join(dirs[n]!, 'node.credential');
      expect((await stat(f)).mode & 0o777).toBe(0o600);
      expect(await readFile(f, 'utf8')).toContain(`"node":"${n}"`);
      // Neither agent was given the admin token, in any form.
      expect(await stat(join(dirs[n]!, 'cluster.token')).catch(() => null)).toBeNull();
    }
    const ls = await run(['token', 'ls', '-o', 'json']);
    const listed = (JSON.parse(ls.stdout) as { tokens: Array<Record<string, unknown>> }).tokens;
    expect(listed).toEqual([expect.objectContaining({ id: token.split('.')[2], uses: 2, used: 2, left: 0, state: 'used-up' })]);
    const secret = token.split('.')[3]!;
    expect(ls.stdout).not.toContain(secret);
    expect((await run(['token', 'ls'])).stdout).not.toContain(secret);
    expect(server!.logs()).not.toContain(secret);
    for (const a of agents) expect(a.logs()).not.toContain(secret);
    expect(agents[0]!.logs()).toContain('joining over plaintext: nothing was verified');
  });

  it('a node credential calling the API gets 403; a join token gets 401', async () => {
    const cred = (JSON.parse(await readFile(join(dirs.n2!, 'node.credential'), 'utf8')) as { credential: string }).credential;
    const r = await fetch(`${server!.api}/v1/services`, { headers: { authorization: `Bearer ${cred}` } });
    expect(r.status).toBe(403);
    expect(((await r.json()) as { error: string }).error).toBe('ORCA_FORBIDDEN');
    const status = await run(['--token', cred, 'status']);
    expect(status.code).toBe(1);
    expect(status.stderr).toContain('may only hold an agent session for its own node');
    expect((await fetch(`${server!.api}/v1/status`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
  });

  it('used-up, expired and removed tokens are refused with their reason (exit 2)', async () => {
    const usedUp = await refusedAgent('n4', { tokenFile: join(work, 'join.token') });
    expect(usedUp.code).toBe(2);
    expect(usedUp.logs).toMatch(/refused the join token: join token \w+ is used up \(2 of 2 uses\)/);
    const short = (await run(['token', 'create', '--ttl', '1s'])).stdout.trim();
    await new Promise((r) => setTimeout(r, 1200));
    const expired = await refusedAgent('n4', { tokenFile: await tokenFile('short.token', short) });
    expect(expired.code).toBe(2);
    expect(expired.logs).toMatch(/join token \w+ expired at/);
    const gone = (await run(['token', 'create'])).stdout.trim();
    expect((await run(['token', 'rm', gone.split('.')[2]!])).code).toBe(0);
    const removed = await refusedAgent('n4', { env: { ORCA_JOIN_TOKEN: gone } });
    expect(removed.code).toBe(2);
    expect(removed.logs).toMatch(/join token \w+ was removed/);
    expect((await nodes()).map((n) => n.name)).not.toContain('n4');
  });

  it('a name bound to another credential is refused — by join and by hello — and the incumbent keeps its session and its containers', async () => {
    const file = join(env.dataDir, 'spread.toml');
    await writeFile(file, `[[service]]\nname = "spread"\nimage = "${TEST_IMAGE}"\ncommand = ["sleep", "3600"]\nreplicas = 6\nstop_grace_secs = 0.5\n`);
    const applied = await run(['apply', '-f', file, '--wait', '--timeout', '60']);
    expect(applied.code, applied.stderr).toBe(0);
    await waitFor(async () => containers('spread', 'n2').length > 0 && containers('spread', 'n3').length > 0, 30_000, 'replicas on n2 and n3');
    const onN2 = containers('spread', 'n2').sort();

    // A valid token, for a name someone holds: the join is refused, with the reason.
    const fresh = (await run(['token', 'create'])).stdout.trim();
    const claim = await refusedAgent('n2', { tokenFile: await tokenFile('fresh.token', fresh) });
    expect(claim.code).toBe(2);
    expect(claim.logs).toContain('node name n2 is already joined with another credential');

    // n3's own credential, saying hello as n2: closed 4409 before anything is taken.
    const n3cred = (JSON.parse(await readFile(join(dirs.n3!, 'node.credential'), 'utf8')) as { credential: string }).credential;
    const closed = await new Promise<{ code: number; reason: string }>((resolve, reject) => {
      const ws = new WebSocket(`${server!.api.replace(/^http/, 'ws')}/v1/agent`, { headers: { authorization: `Bearer ${n3cred}` } });
      ws.once('open', () => ws.send(JSON.stringify({ type: 'hello', v: PROTOCOL_VERSION, node: 'n2', cluster: env.cluster, advertise: '127.0.0.1', labels: {}, capacity: {}, reports: [], endpoints: [] })));
      ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
      ws.once('error', reject);
    });
    expect(closed).toEqual({ code: 4409, reason: 'node name n2 is bound to another credential' });

    await holdsFor(async () => (await nodes()).find((n) => n.name === 'n2')?.state === 'ready', 3000, 'n2 stays ready');
    expect(agents[0]!.logs()).not.toContain('session with the server ended');
    expect(containers('spread', 'n2').sort()).toEqual(onN2);
    expect(containers('spread')).toHaveLength(6);
  });

  it('orca nodes rm n2: its agent is disconnected and exits 2 needing a new token, cannot come back with its credential, its replicas move, and nodes no longer lists it', async () => {
    const n2 = agents[0]!;
    const r = await run(['nodes', 'rm', 'n2']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('node/n2 removed (credential revoked, session closed)');
    expect(await Promise.race([n2.exited, new Promise<'running'>((res) => setTimeout(() => res('running'), 15_000))])).toBe(2);
    expect(n2.logs()).toContain('needs a new join token');
    expect((await nodes()).map((n) => n.name).sort()).toEqual(['n1', 'n3']);
    // Its six replicas are all ready again on n1 and n3.
    await waitFor(async () => {
      const list = await instances('spread');
      return list.length === 6 && list.every((i) => i.ready && i.node !== 'n2');
    }, 60_000, 'spread rescheduled off n2');
    // With its credential (no token), it is refused at once, saying why.
    const again = await agent('n2');
    const code = await Promise.race([again.exited, new Promise<'running'>((res) => setTimeout(() => res('running'), 15_000))]);
    expect(code).toBe(2);
    expect(again.logs()).toMatch(/no longer accepts the credential of node n2.*needs a new join token/);
    expect((await nodes()).map((n) => n.name)).not.toContain('n2');
    // The admin token was never needed by an agent: only n1 (embedded) holds it.
    for (const a of agents) expect(a.logs()).not.toContain(adminToken);
  });
});

describe('join over TLS: the token pins the cluster CA', () => {
  let first: { cluster: string; dataDir: string };
  let other: { cluster: string; dataDir: string };
  let server: ServerProcess | undefined;
  let work: string;
  const agents: AgentProcess[] = [];

  beforeAll(async () => {
    first = await testEnv('pin');
    other = { cluster: first.cluster, dataDir: await mkdtemp(join(tmpdir(), `${first.cluster}-other-`)) };
    work = await mkdtemp(join(tmpdir(), `${first.cluster}-work-`));
  });

  afterAll(async () => {
    for (const a of agents) await stopAgentProcess(a);
    await stopServer(server);
    await cleanup(first.cluster, first.dataDir);
    await rm(other.dataDir, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  });

  it('a token whose CA hash does not match (a server with another CA on the same address): the agent refuses to connect and says why', async () => {
    // (The harness's readiness probe does not trust the cluster CA: the log says when it is ready.)
    const ready = async (s: ServerProcess) => waitFor(() => s.logs().includes('"server ready"'), 30_000, `server ready\n${s.logs()}`);
    server = await startServer({ ...first, extra: ['--tls', '--no-local-agent'], waitReady: false });
    await ready(server);
    expect(server.api).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const made = await cli(server, first.dataDir)(['token', 'create']);
    expect(made.code, made.stderr).toBe(0);
    const token = made.stdout.trim();
    const ownCa = await readFile(join(first.dataDir, 'tls', 'ca.crt'), 'utf8');
    const address = server.api.replace(/^https:\/\//, '');
    await stopServer(server);
    // Another server, another data directory (so another CA), on the very same address.
    server = await startServer({ ...other, extra: ['--tls', '--no-local-agent', '--api-listen', address], waitReady: false });
    await ready(server);
    expect(server.api).toBe(`https://${address}`);
    expect(await readFile(join(other.dataDir, 'tls', 'ca.crt'), 'utf8')).not.toBe(ownCa);
    const file = join(work, 'join.token');
    await writeFile(file, `${token}\n`, { mode: 0o600 });
    const dir = await mkdtemp(join(work, 'n2-'));
    const a = startAgentProcess({ api: server.api, node: 'n2', dataDir: dir, tokenFile: file, cluster: first.cluster, extra: AGENT_FLAGS });
    agents.push(a);
    const code = await Promise.race([a.exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 20_000))]);
    expect(code).toBe(2);
    expect(a.logs()).toMatch(/is not the one the join token pins \(CA sha256 [0-9a-f]{16}…\).*not connecting/);
    // Nothing was sent: the impostor saw no join, and the agent holds no credential.
    expect(server.logs()).not.toContain('node joined');
    expect(server.logs()).not.toContain('join refused');
    expect(await stat(join(dir, 'node.credential')).catch(() => null)).toBeNull();
    expect(server.logs()).not.toContain(token.split('.')[3]!);
  });
});
