import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../../core/clock.js';
import { ensureClusterTls, serverNames } from '../../server/cluster-tls.js';
import { TEST_IMAGE } from '../images.js';
import { cleanup, orca, ROOT, startAgentProcess, startServer, stopAgentProcess, stopServer, testEnv, waitFor, type AgentProcess, type ServerProcess } from './harness.js';

const SERVER_FLAGS = ['--tls', '--heartbeat-interval', '0.2', '--heartbeat-timeout', '1', '--node-down-grace', '1.5', '--watchdog-interval', '2'];
const AGENT_FLAGS = ['--reconnect-initial', '0.2', '--reconnect-max', '0.5', '--watchdog-interval', '2'];
/** DEFAULTS.api.tlsHandshakeTimeoutMs, which the server is started with. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

/** GET over https trusting `ca`; resolves with the status. */
function httpsStatus(url: string, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    request(url, { ca }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    })
      .on('error', reject)
      .end();
  });
}

describe('TLS on the API port (--tls on 127.0.0.1)', () => {
  let env: { cluster: string; dataDir: string };
  let server: ServerProcess | undefined;
  let agent: AgentProcess | undefined;
  let elsewhere: string;
  let ca: string;
  let caPath: string;
  let token: string;
  /** `orca` as a user on another host would run it: no data directory of the server's. */
  const remote = (args: string[], extra: Record<string, string> = {}) => orca(['--api', server!.api, '--token', token, '--data-dir', elsewhere, ...args], extra);

  beforeAll(async () => {
    env = await testEnv('tls');
    elsewhere = await mkdtemp(join(tmpdir(), `${env.cluster}-client-`));
    server = await startServer({ ...env, extra: SERVER_FLAGS, waitReady: false });
    caPath = join(env.dataDir, 'tls', 'ca.crt');
    ca = await readFile(caPath, 'utf8');
    await waitFor(async () => (await httpsStatus(`${server!.api}/healthz`, ca)) === 200, 30_000, `server ready\n${server.logs()}`);
    token = (await readFile(join(env.dataDir, 'cluster.token'), 'utf8')).trim();
  });

  afterAll(async () => {
    await stopAgentProcess(agent);
    await stopServer(server);
    if (env) await cleanup(env.cluster, env.dataDir);
    if (elsewhere) await rm(elsewhere, { recursive: true, force: true });
  });

  it('listens on https:// and says so', () => {
    expect(server!.api).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it('the CLI trusts the CA of the data directory it uses, or the one given with --ca-cert or ORCA_CA_CERT', async () => {
    const own = await orca(['--api', server!.api, '--data-dir', env.dataDir, 'nodes', '-o', 'json']);
    expect(own.code, own.stderr).toBe(0);
    expect(JSON.parse(own.stdout).nodes.map((n: { name: string }) => n.name)).toContain('n1');
    const copy = join(elsewhere, 'cluster-ca.crt');
    await copyFile(caPath, copy);
    const flag = await remote(['--ca-cert', copy, 'status']);
    expect(flag.code, flag.stderr).toBe(0);
    const envVar = await remote(['status'], { ORCA_CA_CERT: copy });
    expect(envVar.code, envVar.stderr).toBe(0);
  });

  it('without trust in the cluster CA, or with another CA, the CLI says what to do and exits 1 (no stack trace)', async () => {
    const none = await remote(['status']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/cannot verify the TLS certificate of the Orca server at https:\/\/127\.0\.0\.1:\d+/);
    expect(none.stderr).toContain('--ca-cert');
    expect(none.stderr).not.toMatch(/\n\s+at /);

    // Another cluster's CA with the very same subject (same cluster id).
    const otherDir = await mkdtemp(join(tmpdir(), `${env.cluster}-other-`));
    try {
      await ensureClusterTls(otherDir, { names: serverNames({ advertise: '127.0.0.1', apiHost: '127.0.0.1', sans: [] }), clusterId: env.cluster, commonName: 'n1', nowMs: systemClock.now() });
      const wrong = await remote(['--ca-cert', join(otherDir, 'tls', 'ca.crt'), 'status']);
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toMatch(/cannot verify the TLS certificate/);
      expect(wrong.stderr).toContain(`checked against ${join(otherDir, 'tls', 'ca.crt')}`);
    } finally {
      await rm(otherDir, { recursive: true, force: true });
    }

    const missing = await remote(['--ca-cert', join(elsewhere, 'no-such.crt'), 'status']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--ca-cert: cannot read .*no-such\.crt: ENOENT/);
  });

  it('plaintext HTTP on the TLS port (curl, node) is refused with a 400 that says to use https, and the server keeps serving', async () => {
    const plainUrl = `${server!.api.replace('https:', 'http:')}/v1/status`;
    const curl = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile('curl', ['-sS', '-i', '--max-time', '10', plainUrl], (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, out: stdout + stderr }));
    });
    expect(curl.out).toMatch(/^HTTP\/1\.1 400/);
    expect(curl.out).toContain('this port speaks TLS: use https://');
    const viaCli = await orca(['--api', server!.api.replace('https:', 'http:'), '--data-dir', env.dataDir, 'status']);
    expect(viaCli.code).toBe(2);
    expect(viaCli.stderr).toContain('use https://');
    expect(await httpsStatus(`${server!.api}/healthz`, ca)).toBe(200);
    expect(server!.child.exitCode).toBeNull();
  });

  it('a TLS handshake that never starts is closed after the handshake timeout, and others are served meanwhile', async () => {
    const { port } = new URL(server!.api);
    const started = systemClock.now();
    const socket = connect(Number(port), '127.0.0.1');
    socket.on('error', () => undefined);
    const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(systemClock.now() - started)));
    // While it hangs, the API answers.
    expect(await httpsStatus(`${server!.api}/healthz`, ca)).toBe(200);
    const afterMs = await closed;
    expect(afterMs).toBeGreaterThanOrEqual(HANDSHAKE_TIMEOUT_MS - 500);
    expect(afterMs).toBeLessThan(HANDSHAKE_TIMEOUT_MS + 5_000);
    expect(await httpsStatus(`${server!.api}/healthz`, ca)).toBe(200);
  }, 30_000);

  it('an agent joins over wss:// with --ca-cert and runs a replica', async () => {
    const agentDir = await mkdtemp(join(tmpdir(), `${env.cluster}-n2-`));
    const copy = join(agentDir, 'cluster-ca.crt');
    await copyFile(caPath, copy);
    agent = startAgentProcess({ api: server!.api.replace('https:', 'wss:'), node: 'n2', dataDir: agentDir, token, cluster: env.cluster, extra: ['--ca-cert', copy, ...AGENT_FLAGS] });
    const nodes = async () => JSON.parse((await orca(['--api', server!.api, '--data-dir', env.dataDir, 'nodes', '-o', 'json'])).stdout).nodes as Array<{ name: string; state: string }>;
    await waitFor(async () => (await nodes()).some((n) => n.name === 'n2' && n.state === 'ready'), 20_000, `n2 ready\n${agent.logs()}`);
    const file = join(env.dataDir, 'on-n2.toml');
    await writeFile(file, `[[service]]\nname = "onn2"\nimage = "${TEST_IMAGE}"\ncommand = ["sleep", "3600"]\nstop_grace_secs = 0.5\nplacement = { node = "n2" }\n`);
    const applied = await orca(['--api', server!.api, '--data-dir', env.dataDir, 'apply', '-f', file, '--wait', '--timeout', '60'], {}, 90_000);
    expect(applied.code, applied.stdout + applied.stderr).toBe(0);
    const st = JSON.parse((await orca(['--api', server!.api, '--data-dir', env.dataDir, 'status', 'onn2', '-o', 'json'])).stdout);
    expect(st.services[0].instances).toEqual([expect.objectContaining({ node: 'n2', state: 'running', ready: true })]);
    await stopAgentProcess(agent);
    await rm(agentDir, { recursive: true, force: true });
  }, 120_000);

  it('an agent joins over https:// with a join token alone: the token pins the CA this server presents', async () => {
    const created = await orca(['--api', server!.api, '--data-dir', env.dataDir, 'token', 'create', '--uses', '1']);
    expect(created.code, created.stderr).toBe(0);
    const agentDir = await mkdtemp(join(tmpdir(), `${env.cluster}-n4-`));
    const tokenFile = join(agentDir, 'join.token');
    await writeFile(tokenFile, created.stdout.trim(), { mode: 0o600 });
    const joined = startAgentProcess({ api: server!.api, node: 'n4', dataDir: agentDir, tokenFile, cluster: env.cluster, extra: AGENT_FLAGS });
    try {
      const nodes = async () => JSON.parse((await orca(['--api', server!.api, '--data-dir', env.dataDir, 'nodes', '-o', 'json'])).stdout).nodes as Array<{ name: string; state: string }>;
      await waitFor(async () => (await nodes()).some((n) => n.name === 'n4' && n.state === 'ready'), 20_000, `n4 ready\n${joined.logs()}`);
    } finally {
      await stopAgentProcess(joined);
      await rm(agentDir, { recursive: true, force: true });
    }
  }, 60_000);

  it('an agent given no CA does not join, and says why', async () => {
    const agentDir = await mkdtemp(join(tmpdir(), `${env.cluster}-n3-`));
    const lost = startAgentProcess({ api: server!.api, node: 'n3', dataDir: agentDir, token, cluster: env.cluster, extra: AGENT_FLAGS });
    try {
      await waitFor(() => /SELF_SIGNED_CERT_IN_CHAIN|self-signed certificate/.test(lost.logs()), 15_000, `a certificate error in the agent's log\n${lost.logs()}`);
      const nodes = JSON.parse((await orca(['--api', server!.api, '--data-dir', env.dataDir, 'nodes', '-o', 'json'])).stdout).nodes as Array<{ name: string }>;
      expect(nodes.map((n) => n.name)).not.toContain('n3');
    } finally {
      await stopAgentProcess(lost);
      await rm(agentDir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe('certificate issuance, as the built server runs it', () => {
  it('issues the CA and the server certificate in a worker thread: @peculiar/x509 (and its reflect polyfill) never load into the server, and the files are good', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'orca-cert-worker-'));
    try {
      const script = `
        const { ensureClusterTls } = await import(${JSON.stringify(join(ROOT, 'dist/server/cluster-tls.js'))});
        const tls = await ensureClusterTls(${JSON.stringify(dir)}, { names: ['127.0.0.1', 'localhost'], clusterId: 'c1', commonName: 'n1', nowMs: Date.now() });
        const { X509Certificate, createPrivateKey } = await import('node:crypto');
        const cert = new X509Certificate(tls.chainPem.split('-----END CERTIFICATE-----')[0] + '-----END CERTIFICATE-----');
        const ca = new X509Certificate(tls.caPem);
        process.stdout.write(JSON.stringify({
          created: tls.created,
          verified: cert.verify(ca.publicKey) && cert.checkPrivateKey(createPrivateKey(tls.keyPem)),
          san: cert.subjectAltName,
          polyfill: typeof Reflect.getMetadata,
        }));`;
      const out = await new Promise<string>((resolve, reject) =>
        execFile(process.execPath, ['--input-type=module', '-e', script], { timeout: 30_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${String(err)}\n${stderr}`)) : resolve(stdout))),
      );
      expect(JSON.parse(out)).toEqual({ created: { ca: true, serverCert: true }, verified: true, san: 'IP Address:127.0.0.1, DNS:localhost', polyfill: 'undefined' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
