/**
 * The store on etcd as an operator meets it (SPEC §3.11 "Store on etcd", issue 14): `orca server
 * --store etcd://…` on real etcd members started here (loopback ports, temp dirs) and real Docker.
 * One member: apply, status, SIGKILL the server and start it again — service, revisions, history,
 * events, secrets and tokens are all in etcd (no cluster.db in the data directory) and the
 * replicas are adopted, not recreated; a second server on the same etcd and cluster id accepts the
 * same admin token and reads the same secrets. Three members: an acknowledged apply survives kill
 * -9 of any one member, and applying while it is down works. An unreachable etcd at start: exit
 * non-zero naming the endpoints; bad store flags: exit 2.
 */
import { copyFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../runtime/docker-runtime.js';
import { LABEL } from '../../runtime/labels.js';
import { freePort, startEtcd, type EtcdProcess } from '../etcd.js';
import { cleanup, cli, orca, ROOT, startServer, stopServer, testEnv, waitFor, type ServerProcess } from './harness.js';

const FIX = join(ROOT, 'test/e2e/fixtures');
const rt = new DockerRuntime();

interface Status {
  services: Array<{ name: string; revision: number; state: string; replicas: { desired: number; running: number; ready: number } }>;
}
interface History {
  revisions: Array<{ revision: number; outcome: string }>;
}

/** web.toml with GREETING set to `greeting` (a new revision each time it changes). */
async function webManifest(dir: string, greeting: string): Promise<string> {
  const file = join(dir, `web-${greeting}.toml`);
  await writeFile(file, `[[service]]\nname = "web"\nimage = "orca-example/web:1"\nreplicas = 2\nport = 80\nstop_grace_secs = 1\nenv = { GREETING = "${greeting}" }\n`);
  return file;
}

describe('orca server --store etcd:// on one etcd member (real etcd, real Docker)', () => {
  let etcd: EtcdProcess;
  let env: { cluster: string; dataDir: string };
  let server: ServerProcess | undefined;
  let second: ServerProcess | undefined;
  let secondDir: string;
  let run: ReturnType<typeof cli>;
  const args = () => ['--store', etcd.storeUrl];

  const status = async () => JSON.parse((await run(['status', '-o', 'json'])).stdout) as Status;
  const webReady = (revision: number) =>
    waitFor(
      async () => {
        const web = (await status()).services.find((s) => s.name === 'web');
        return web?.revision === revision && web.replicas.ready === 2 && web.state === 'healthy';
      },
      60_000,
      `web at revision ${revision} with two ready replicas`,
    );
  const containers = async () => (await rt.list({ [LABEL.cluster]: env.cluster })).map((c) => c.id).sort();

  beforeAll(async () => {
    etcd = await startEtcd();
    env = await testEnv('etcd');
    secondDir = await mkdtemp(join(tmpdir(), `${env.cluster}-second-`));
    server = await startServer({ ...env, extra: args() });
    run = cli(server, env.dataDir);
  });

  afterAll(async () => {
    await stopServer(second);
    await stopServer(server);
    if (env) await cleanup(env.cluster, env.dataDir);
    if (secondDir) await rm(secondDir, { recursive: true, force: true });
    await etcd?.stop();
  });

  it('keeps everything in etcd: after a SIGKILLed server starts again, service, revisions, history, events, secrets and tokens are there and the replicas are adopted', async () => {
    expect(server!.logs()).toContain('"store open"');
    let r = await run(['apply', '-f', join(FIX, 'web.toml')]);
    expect(r, r.stderr).toMatchObject({ code: 0, stdout: 'service/web created\n' });
    await webReady(1);
    r = await run(['apply', '-f', await webManifest(env.dataDir, 'second')]);
    expect(r, r.stderr).toMatchObject({ code: 0, stdout: 'service/web configured\n' });
    await webReady(2);
    const secretFile = join(env.dataDir, 'db-password.txt');
    await writeFile(secretFile, 's3cret-value');
    expect((await run(['secret', 'set', 'db-password', '-f', secretFile])).code).toBe(0);
    const token = (await run(['token', 'create', '--ttl', '1h'])).stdout.trim();
    expect(token).toMatch(/^orca1\./);
    const history = (await run(['history', 'web', '-o', 'json'])).stdout;
    const eventsBefore = (await run(['events', '-o', 'json', '--service', 'web'])).stdout.trim().split('\n').filter(Boolean);
    expect(eventsBefore.length).toBeGreaterThan(0);
    const before = await containers();
    expect(before).toHaveLength(2);

    // Nothing of the cluster state is on this host's disk: it is all in etcd, under the prefix.
    expect(await stat(join(env.dataDir, 'cluster.db')).catch(() => null)).toBeNull();
    const admin = new Etcd3({ hosts: etcd.endpoints });
    try {
      const keys = await admin.getAll().prefix(`/orca/${env.cluster}/store/`).keys();
      expect(keys).toContain(`/orca/${env.cluster}/store/svc!web`);
      expect(keys.some((k) => k.startsWith(`/orca/${env.cluster}/store/evt!`))).toBe(true);
      // The admin token is there as a hash only; the secret's value is sealed.
      const all = JSON.stringify(await admin.getAll().prefix(`/orca/${env.cluster}/`).strings());
      expect(all).not.toContain((await readFile(join(env.dataDir, 'cluster.token'), 'utf8')).trim());
      expect(all).not.toContain('s3cret-value');
    } finally {
      admin.close();
    }

    await stopServer(server, 'SIGKILL');
    server = await startServer({ ...env, extra: args() });
    run = cli(server, env.dataDir);

    await webReady(2);
    expect(await containers()).toEqual(before); // adopted, not recreated
    expect((await run(['history', 'web', '-o', 'json'])).stdout).toBe(history);
    expect((JSON.parse(history) as History).revisions.map((x) => x.revision)).toEqual([1, 2]);
    const eventsAfter = (await run(['events', '-o', 'json', '--service', 'web'])).stdout;
    for (const line of eventsBefore) expect(eventsAfter).toContain(line);
    const secrets = JSON.parse((await run(['secret', 'ls', '-o', 'json'])).stdout) as { secrets: Array<{ name: string; version: number }> };
    expect(secrets.secrets).toEqual([expect.objectContaining({ name: 'db-password', version: 1 })]);
    const tokens = JSON.parse((await run(['token', 'ls', '-o', 'json'])).stdout) as { tokens: Array<{ id: string }> };
    expect(tokens.tokens.map((t) => t.id)).toEqual([token.split('.')[2]]);
  });

  it('a second server on the same etcd and cluster id takes the first one\'s admin token and cluster key, and reads the same secrets', async () => {
    // Without the token it is refused, and makes none of its own.
    const refused = await orca(['server', '--data-dir', secondDir, '--cluster-id', env.cluster, '--node-name', 'n2', '--no-local-agent', '--api-listen', '127.0.0.1:0', '--proxy-listen', '127.0.0.1:0', ...args()], {}, 60_000);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('--token-file');
    expect(await stat(join(secondDir, 'cluster.token')).catch(() => null)).toBeNull();

    const tokenCopy = join(secondDir, 'first.token');
    const keyCopy = join(secondDir, 'first.key');
    await copyFile(join(env.dataDir, 'cluster.token'), tokenCopy);
    await copyFile(join(env.dataDir, 'cluster.key'), keyCopy);
    second = await startServer({ cluster: env.cluster, dataDir: secondDir, node: 'n2', extra: [...args(), '--no-local-agent', '--token-file', tokenCopy, '--cluster-key-file', keyCopy] });
    const token = (await readFile(join(env.dataDir, 'cluster.token'), 'utf8')).trim();
    // Same token (also written to the second data directory for a CLI there), same secrets.
    expect((await readFile(join(secondDir, 'cluster.token'), 'utf8')).trim()).toBe(token);
    const viaSecond = (a: string[]) => orca(['--api', second!.api, '--token', token, ...a]);
    const st = await viaSecond(['status', '-o', 'json']);
    expect(st.code, st.stderr).toBe(0);
    expect((JSON.parse(st.stdout) as Status).services.map((s) => s.name)).toEqual(['web']);
    const ls = await viaSecond(['secret', 'ls', '-o', 'json']);
    expect(ls.code, ls.stderr).toBe(0);
    expect((JSON.parse(ls.stdout) as { secrets: Array<{ name: string }> }).secrets.map((s) => s.name)).toEqual(['db-password']);
    const wrong = await orca(['--api', second!.api, '--token', 'not-the-token', 'status']);
    expect(wrong.code).not.toBe(0);
  });
});

describe('orca server on a three-member etcd (real etcd, real Docker)', () => {
  let etcd: EtcdProcess;
  let env: { cluster: string; dataDir: string };
  let server: ServerProcess | undefined;
  let run: ReturnType<typeof cli>;

  beforeAll(async () => {
    etcd = await startEtcd({ members: 3 });
    env = await testEnv('etcd3');
    server = await startServer({ ...env, extra: ['--store', etcd.storeUrl] });
    run = cli(server, env.dataDir);
  });
  afterAll(async () => {
    await stopServer(server);
    if (env) await cleanup(env.cluster, env.dataDir);
    await etcd?.stop();
  });

  it('an acknowledged apply survives kill -9 of any one member, and apply works while it is down', async () => {
    const revisions = async () => {
      const h = await run(['history', 'web', '-o', 'json']);
      expect(h.code, `history: ${h.stderr}\n${server!.logs().slice(-3000)}`).toBe(0);
      return (JSON.parse(h.stdout) as History).revisions.map((x) => x.revision);
    };
    const current = async () => (JSON.parse((await run(['status', '-o', 'json'])).stdout) as Status).services.find((s) => s.name === 'web')?.revision;
    let r = await run(['apply', '-f', await webManifest(env.dataDir, 'm')]);
    expect(r, r.stderr).toMatchObject({ code: 0, stdout: 'service/web created\n' });
    let acknowledged = [1];
    for (let i = 0; i < 3; i++) {
      await etcd.member(i).kill9();
      // Everything acknowledged is still there, read through the two members left.
      expect(await revisions()).toEqual(acknowledged);
      r = await run(['apply', '-f', await webManifest(env.dataDir, `down-${i}`)]);
      expect(r, `apply with member ${i} down: ${r.stderr}`).toMatchObject({ code: 0, stdout: 'service/web configured\n' });
      acknowledged = [...acknowledged, acknowledged.length + 1];
      expect(await revisions()).toEqual(acknowledged);
      expect(await current()).toBe(acknowledged.length);
      await etcd.member(i).restart();
    }
    // The last one rolls out: two ready replicas of revision 4.
    await waitFor(
      async () => {
        const web = (JSON.parse((await run(['status', '-o', 'json'])).stdout) as Status).services.find((s) => s.name === 'web');
        return web?.revision === 4 && web.replicas.ready === 2;
      },
      90_000,
      'web at revision 4 with two ready replicas',
    );
  });
});

describe('orca server --store on a TLS etcd (client certificates required)', () => {
  it('stores through --etcd-ca, --etcd-cert and --etcd-key; without the client certificate it cannot start', async () => {
    const etcd = await startEtcd({ tls: true });
    const env = await testEnv('etcd-tls');
    let server: ServerProcess | undefined;
    try {
      const tls = etcd.tls!;
      const refused = await orca(['server', '--data-dir', env.dataDir, '--cluster-id', env.cluster, '--no-local-agent', '--api-listen', '127.0.0.1:0', '--proxy-listen', '127.0.0.1:0', '--store', etcd.storeUrl, '--etcd-ca', tls.ca], {}, 60_000);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(etcd.endpoints[0]);
      server = await startServer({ ...env, extra: ['--no-local-agent', '--store', etcd.storeUrl, '--etcd-ca', tls.ca, '--etcd-cert', tls.cert, '--etcd-key', tls.key] });
      const run = cli(server, env.dataDir);
      const r = await run(['apply', '-f', join(FIX, 'web.toml')]);
      expect(r, r.stderr).toMatchObject({ code: 0, stdout: 'service/web created\n' });
      expect((JSON.parse((await run(['status', '-o', 'json'])).stdout) as Status).services.map((s) => [s.name, s.revision])).toEqual([['web', 1]]);
    } finally {
      await stopServer(server);
      await cleanup(env.cluster, env.dataDir);
      await etcd.stop();
    }
  });
});

describe('orca server --store: refusals', () => {
  it('etcd unreachable at start: exits non-zero within seconds, naming the endpoints', async () => {
    const env = await testEnv('etcd-down');
    try {
      const port = await freePort();
      const t0 = Date.now();
      const r = await orca(['server', '--data-dir', env.dataDir, '--cluster-id', env.cluster, '--no-local-agent', '--api-listen', '127.0.0.1:0', '--proxy-listen', '127.0.0.1:0', '--store', `etcd://127.0.0.1:${port}`], {}, 60_000);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`127.0.0.1:${port}`);
      expect(r.stderr).toMatch(/cannot open the store on etcd/);
      expect(Date.now() - t0).toBeLessThan(20_000);
    } finally {
      await rm(env.dataDir, { recursive: true, force: true });
    }
  });

  it('bad store flags: exit 2 naming the flag, nothing started', async () => {
    const env = await testEnv('etcd-flags');
    try {
      const r = await orca(['server', '--data-dir', env.dataDir, '--store', 'http://127.0.0.1:2379', '--store-prefix', 'x']);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('--store: "http://127.0.0.1:2379" must be etcd://HOST:PORT');
      expect(r.stderr).toContain(`--store-prefix: "x" must start with '/'`);
      const alone = await orca(['server', '--data-dir', env.dataDir, '--etcd-ca', '/nope.pem']);
      expect(alone.code).toBe(2);
      expect(alone.stderr).toContain('--etcd-ca: only with --store');
    } finally {
      await rm(env.dataDir, { recursive: true, force: true });
    }
  });
});
