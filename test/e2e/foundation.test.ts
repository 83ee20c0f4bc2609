import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { DockerRuntime } from '../../runtime/docker-runtime.js';
import { LABEL } from '../../runtime/labels.js';
import { cleanup, cli, holdsFor, orca, startServer, stopServer, testEnv, waitFor, ORCA, ROOT, type ServerProcess } from './harness.js';

const FIX = join(ROOT, 'test/e2e/fixtures');
const rt = new DockerRuntime();

interface Status {
  services: Array<{
    name: string;
    revision: number;
    state: string;
    replicas: { desired: number; running: number; ready: number };
    instances: Array<{ id: string; node: string; state: string; ready: boolean; restarts: number; lastExit: unknown; containerId: string; address: string; nextRetryAt: string | null }>;
  }>;
}

describe('foundation: apply, status, adoption across restarts (real Docker)', () => {
  let env: { cluster: string; dataDir: string };
  let server: ServerProcess | undefined;
  let run: ReturnType<typeof cli>;

  const containers = async () =>
    (await rt.list({ [LABEL.cluster]: env.cluster })).map((c) => ({ id: c.id, startedAt: c.startedAt, status: c.status })).sort((a, b) => a.id.localeCompare(b.id));

  const statusJson = async () => JSON.parse((await run(['status', '-o', 'json'])).stdout) as Status;
  /** Waits until web has its two replicas ready; returns its status. */
  const twoReady = async () => {
    let status: Status | undefined;
    await waitFor(
      async () => {
        status = await statusJson();
        const web = status.services.find((x) => x.name === 'web');
        return web?.replicas.ready === 2 && web.replicas.running === 2 && web.state === 'healthy';
      },
      20_000,
      'two ready replicas',
    );
    return status!.services.find((x) => x.name === 'web')!;
  };
  /** Each test that needs web as the fixture describes it sets it up itself (a no-op when it is there). */
  const ensureWeb = async () => {
    const r = await run(['apply', '-f', join(FIX, 'web.toml')]);
    expect(r.code, r.stderr).toBe(0);
    return twoReady();
  };
  const writeWeb3 = async () => {
    const changed = join(env.dataDir, 'web3.toml');
    await writeFile(changed, '[[service]]\nname = "web"\nimage = "orca-example/web:1"\nreplicas = 3\nport = 80\nstop_grace_secs = 1\nenv = { GREETING = "hello" }\n');
    return changed;
  };

  beforeAll(async () => {
    env = await testEnv('foundation');
    server = await startServer(env);
    run = cli(server, env.dataDir);
  });

  afterAll(async () => {
    await stopServer(server);
    await cleanup(env.cluster, env.dataDir);
  });

  it('applies a 2-replica service and both run, as status -o json shows', async () => {
    // Whatever ran before: web is created here (deleting it first keeps its history, not its containers).
    if ((await statusJson()).services.some((x) => x.name === 'web')) {
      expect((await run(['delete', 'web'])).code).toBe(0);
      await waitFor(async () => (await containers()).length === 0, 20_000, 'web gone');
    }
    const r = await run(['apply', '-f', join(FIX, 'web.toml')]);
    expect(r).toMatchObject({ code: 0, stdout: 'service/web created\n' });
    const web = await twoReady();
    expect(web).toMatchObject({ name: 'web', state: 'healthy', replicas: { desired: 2, running: 2, ready: 2 } });
    expect(web.instances).toHaveLength(2);
    for (const i of web.instances) {
      expect(i).toMatchObject({ node: 'n1', state: 'running', ready: true, restarts: 0, lastExit: null, nextRetryAt: null });
      expect(i.id).toMatch(new RegExp(`^web-${web.revision}-[01]-[a-z0-9]{4}$`));
      expect(i.address).toMatch(/^127\.0\.0\.1:\d+$/);
      // The published port answers on loopback with the example page.
      const body = await (await fetch(`http://${i.address}/`)).text();
      expect(body).toContain('orca-example web v1');
    }
    // SPEC §4's keys, plus `error` (a terminal error) and `probe` (the last readiness answer).
    expect(Object.keys(web.instances[0]!).sort()).toEqual(['address', 'containerId', 'error', 'id', 'lastExit', 'nextRetryAt', 'node', 'probe', 'ready', 'restarts', 'state']);
    // Docker agrees: two running containers carrying the cluster label.
    expect((await containers()).filter((c) => c.status === 'running')).toHaveLength(2);
  });

  it('applying the same manifest again is unchanged and touches no container', async () => {
    await ensureWeb();
    const before = await containers();
    const historyBefore = (await run(['history', 'web'])).stdout;
    const r = await run(['apply', '-f', join(FIX, 'web.toml')]);
    expect(r).toMatchObject({ code: 0, stdout: 'service/web unchanged\n' });
    await holdsFor(async () => JSON.stringify(await containers()) === JSON.stringify(before), 500, 'the containers are the same');
    expect((await run(['history', 'web'])).stdout).toBe(historyBefore); // no new revision
  });

  it('rejects bad manifests with exit 2, every error named, and stores nothing', async () => {
    const stored = (await statusJson()).services.map((x) => [x.name, x.revision]);
    const r = await run(['apply', '-f', join(FIX, 'bad.toml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('bad.toml');
    expect(r.stderr).toContain('replicas');
    expect(r.stderr).toContain('interval_secs');
    expect(r.stderr).toContain('colour');
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    const syntax = join(env.dataDir, 'syntax.toml');
    await writeFile(syntax, '[[service]]\nname = "x"\nimage = \n');
    const s = await run(['apply', '-f', syntax]);
    expect(s.code).toBe(2);
    expect(s.stderr).toMatch(/syntax\.toml:3:\d+: /);
    expect((await statusJson()).services.map((x) => [x.name, x.revision])).toEqual(stored);
  });

  it('diff shows field changes with exit 1, and none with exit 0', async () => {
    await ensureWeb();
    expect((await run(['diff', '-f', join(FIX, 'web.toml')])).code).toBe(0);
    const d = await run(['diff', '-f', await writeWeb3()]);
    expect(d.code).toBe(1);
    expect(d.stdout).toContain('replicas: 2 → 3');
  });

  it('kill -9 of the server and a restart adopt the same containers, restarting none', async () => {
    await ensureWeb();
    const before = await containers();
    await stopServer(server, 'SIGKILL');
    server = await startServer(env);
    run = cli(server, env.dataDir);
    const st = await statusJson();
    // Ready at once: the readiness of adopted instances is probed before /healthz says ready.
    expect(st.services.find((x) => x.name === 'web')).toMatchObject({ name: 'web', state: 'healthy', replicas: { running: 2, ready: 2 } });
    await holdsFor(async () => JSON.stringify(await containers()) === JSON.stringify(before), 500, 'the adopted containers are the same');
  });

  it('a second server on the same data directory refuses to start, saying why', async () => {
    const second = await orca(['server', '--data-dir', env.dataDir, '--cluster-id', env.cluster, '--api-listen', '127.0.0.1:0']);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/locked|another orca server/i);
    // The first one is unharmed.
    expect((await run(['status'])).code).toBe(0);
  });

  it('a server whose proxy address is taken exits 1 saying so, rather than running half-up', async () => {
    const { createServer } = await import('node:net');
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    const port = (taken.address() as { port: number }).port;
    try {
      const other = await testEnv('foundation-proxy');
      const r = await orca(['server', '--data-dir', other.dataDir, '--cluster-id', other.cluster, '--api-listen', '127.0.0.1:0', '--proxy-listen', `127.0.0.1:${port}`]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/EADDRINUSE.*--proxy-listen/);
      await cleanup(other.cluster, other.dataDir);
    } finally {
      taken.close();
    }
  });

  it('speaks the exit codes: unreachable 3, wrong token 1, unknown service 1, usage 2', async () => {
    expect((await orca(['--api', 'http://127.0.0.1:1', 'status'])).code).toBe(3);
    const bad = await orca(['--api', server!.api, '--token', 'nope', 'status']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('401');
    expect((await run(['status', 'nosuch'])).code).toBe(1);
    expect((await run(['apply'])).code).toBe(2);
    expect((await run(['frobnicate'])).code).toBe(2);
  });

  it('streams the reconciliation log live with events -f', async () => {
    await ensureWeb();
    const { spawn } = await import('node:child_process');
    const follower = spawn(process.execPath, [ORCA, '--api', server!.api, '--data-dir', env.dataDir, 'events', '-f', '-o', 'json', '--service', 'web'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    follower.stdout.on('data', (d) => (out += d));
    try {
      // The recent past arrives first, once the follower is subscribed: from then on it sees everything.
      await waitFor(() => out.includes('\n'), 10_000, 'events -f streaming');
      const before = out.length;
      const c = (await containers()).find((x) => x.status === 'running')!;
      await rt.remove(c.id, { force: true });
      await waitFor(() => out.slice(before).includes('"action":"container.create"'), 10_000, 'a live event');
      const line = out.slice(before).split('\n').find((l) => l.includes('"action":"container.create"'))!;
      expect(Object.keys(JSON.parse(line)).sort()).toEqual(['action', 'durationMs', 'instance', 'node', 'outcome', 'reason', 'reconciler', 'service', 'time']);
    } finally {
      follower.kill('SIGINT');
    }
    await waitFor(async () => (await containers()).filter((x) => x.status === 'running').length === 2, 10_000, 'healed');
  });

  it('shows logs of the running instances', async () => {
    await ensureWeb();
    const r = await run(['logs', 'web', '--tail', '5']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('orca-example web v1 starting');
  });

  it('scales, rolls back and deletes', async () => {
    const { revision } = await ensureWeb();
    const changed = await writeWeb3();
    const two = await containers();
    expect((await run(['apply', '-f', changed])).stdout).toBe('service/web configured\n');
    await waitFor(async () => (await containers()).filter((c) => c.status === 'running').length === 3, 20_000, 'three replicas');
    // Scaling adds a replica; it restarts none of the two that ran.
    expect((await containers()).filter((c) => two.some((t) => t.id === c.id))).toEqual(two);
    const rb = await run(['rollback', 'web']);
    expect(rb).toMatchObject({ code: 0 });
    expect(rb.stdout).toContain(`rolled back to revision ${revision} as revision ${revision + 2}`);
    await waitFor(async () => (await containers()).length === 2, 20_000, 'back to two replicas');
    expect(await containers()).toEqual(two);
    const del = await run(['delete', 'web']);
    expect(del).toMatchObject({ code: 0, stdout: 'service/web deleted\n' });
    await waitFor(async () => (await containers()).length === 0, 20_000, 'all containers removed');
    const h = await run(['history', 'web']);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain('deleted');
  });
});
