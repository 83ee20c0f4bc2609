/**
 * Servers that run containers too (their embedded agents), on one etcd (SPEC §3.11): a standby's
 * own agent joins the leader over the network like any agent, and comes home to its server's
 * in-memory hub when that server takes the lead.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { request } from 'node:https';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEST_IMAGE } from '../images.js';
import { startEtcd, type EtcdProcess } from '../etcd.js';
import { cleanup, orca, startServer, stopServer, testEnv, waitFor, type ServerProcess } from './harness.js';

const FLAGS = ['--tls', '--heartbeat-interval', '0.2', '--heartbeat-timeout', '1.5', '--node-down-grace', '2', '--watchdog-interval', '2', '--leader-lease-secs', '2'];

describe('two servers with their own agents on one etcd', () => {
  let env: { cluster: string; dataDir: string };
  let etcd: EtcdProcess;
  let a: ServerProcess | undefined;
  let b: ServerProcess | undefined;
  let bDir: string;
  let keyDir: string;
  const token = randomBytes(24).toString('hex');
  /** The first server's CA: the cluster's, for both servers. */
  const caFile = () => join(env.dataDir, 'tls', 'ca.crt');
  const nodes = async (api: string) => {
    const r = await orca(['--api', api, '--token', token, '--ca-cert', caFile(), 'nodes', '-o', 'json']);
    return r.code === 0 ? (JSON.parse(r.stdout) as { nodes: Array<{ name: string; state: string }> }).nodes : [];
  };

  beforeAll(async () => {
    env = await testEnv('ha-emb');
    etcd = await startEtcd();
    bDir = await mkdtemp(join(tmpdir(), `${env.cluster}-b-`));
    keyDir = await mkdtemp(join(tmpdir(), `${env.cluster}-key-`));
    await writeFile(join(keyDir, 'cluster.key'), randomBytes(32), { mode: 0o600 });
    for (const d of [env.dataDir, bDir]) await writeFile(join(d, 'cluster.token'), `${token}\n`, { mode: 0o600 });
    const extra = [...FLAGS, '--store', etcd.storeUrl, '--cluster-key-file', join(keyDir, 'cluster.key')];
    /** /healthz over https, trusting the cluster CA (the harness's own wait speaks plain fetch). */
    const healthy = (api: string) =>
      new Promise<boolean>((resolve) => {
        readFile(caFile(), 'utf8').then(
          (ca) =>
            request(`${api}/healthz`, { ca }, (res) => {
              res.resume();
              resolve(res.statusCode === 200);
            })
              .on('error', () => resolve(false))
              .end(),
          () => resolve(false),
        );
      });
    a = await startServer({ cluster: env.cluster, dataDir: env.dataDir, node: 'a', extra, waitReady: false });
    await waitFor(() => healthy(a!.api), 30_000, 'a ready');
    b = await startServer({ cluster: env.cluster, dataDir: bDir, node: 'b', extra, waitReady: false });
    await waitFor(() => healthy(b!.api), 30_000, 'b ready');
  }, 90_000);

  afterAll(async () => {
    await stopServer(a);
    await stopServer(b);
    await etcd?.stop();
    await cleanup(env.cluster, env.dataDir);
    await rm(bDir, { recursive: true, force: true });
    await rm(keyDir, { recursive: true, force: true });
  });

  it('over TLS, both servers have the one cluster CA (the second took the first one\'s from the store)', async () => {
    expect(a!.api).toMatch(/^https:/);
    expect(await readFile(join(bDir, 'tls', 'ca.crt'), 'utf8')).toBe(await readFile(caFile(), 'utf8'));
    // The CLI trusts b with a's CA file.
    const r = await orca(['--api', b!.api, '--token', token, '--ca-cert', caFile(), 'servers', '-o', 'json']);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { servers: Array<{ name: string; role: string }> }).servers.map((x) => [x.name, x.role])).toEqual([
      ['a', 'leader'],
      ['b', 'standby'],
    ]);
  });

  it("the standby's agent joins the leader (over wss, trusting the shared CA); when the leader dies, it comes home to its own server, which leads", async () => {
    // Both nodes ready at the leader: b's agent reached a over the network.
    await waitFor(async () => (await nodes(a!.api)).filter((n) => n.state === 'ready').length === 2, 30_000, 'a and b ready');
    expect(b!.logs()).toContain('standing by');
    const file = join(env.dataDir, 'web.toml');
    await writeFile(file, `[[service]]\nname = "web"\nimage = "${TEST_IMAGE}"\ncommand = ["sleep", "3600"]\nreplicas = 2\nstop_grace_secs = 0.5\n`);
    const r = await orca(['--api', `${a!.api},${b!.api}`, '--token', token, '--ca-cert', caFile(), 'apply', '-f', file, '--wait', '--timeout', '60']);
    expect(r.code, r.stdout + r.stderr).toBe(0);

    process.kill(a!.pid, 'SIGKILL');
    await a!.exited;
    // b leads, its own agent is back on its in-memory hub, and a (its agent died with it) goes down.
    await waitFor(async () => {
      const n = await nodes(b!.api);
      return n.find((x) => x.name === 'b')?.state === 'ready' && n.find((x) => x.name === 'a')?.state === 'down';
    }, 30_000, 'b ready at b, a down');
    const embeddedAgain = b!.logs().split('\n').filter((l) => l.includes('"agent session established"') && l.includes('"remote":"embedded"'));
    expect(embeddedAgain.length).toBeGreaterThan(0);
    // Both replicas run on b now.
    await waitFor(async () => {
      const s = await orca(['--api', b!.api, '--token', token, '--ca-cert', caFile(), 'status', 'web', '-o', 'json']);
      if (s.code !== 0) return false;
      const inst = (JSON.parse(s.stdout) as { services: Array<{ instances: Array<{ node: string; ready: boolean }> }> }).services[0]!.instances;
      return inst.filter((i) => i.ready && i.node === 'b').length === 2;
    }, 60_000, 'both replicas on b');
  });
});
