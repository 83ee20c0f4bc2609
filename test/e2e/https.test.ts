/**
 * HTTPS at the edge (SPEC §3.12) on real Docker with a real ACME CA: Debian's pebble on loopback
 * (its own HTTPS signed by a throw-away CA given to the server with --acme-ca-file, challtestsrv
 * as its DNS, HTTP-01 sent to the server's plain proxy port). A route with tls = "acme" is served
 * over HTTPS with the certificate pebble issued, on the server's proxy and on an agent's
 * (--proxy-listen-tls); plain HTTP gets 308. pebble issues short-lived certificates here, so the
 * certificate is renewed during the run: replaced before it expires with no failed request in a
 * loop of new TLS connections. pebble killed: a new host's order fails, is shown failed and backs
 * off while the plain route keeps serving, and succeeds once pebble is back. A manual
 * certificate for the wrong host is refused (exit 2, saying why); the right one is served.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import https from 'node:https';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEST_IMAGE } from '../images.js';
import { systemClock, sleep } from '../../core/clock.js';
import { issueCert, makeCa } from '../certs.js';
import { ensurePebble, startPebble, type Pebble } from '../pebble.js';
import { cleanup, cli, startAgentProcess, startServer, stopAgentProcess, stopServer, testEnv, waitFor, type AgentProcess, type ServerProcess } from './harness.js';
import { httpClient } from './http-client.js';
import { freePort } from '../ports.js';

/** pebble's certificate lifetime here: renewed a third before the end, i.e. after 40 s. */
const VALIDITY_SECS = 60;
const SERVER_FLAGS = ['--heartbeat-interval', '0.2', '--heartbeat-timeout', '2', '--node-down-grace', '60', '--watchdog-interval', '5', '--acme-retry-secs', '2'];

const service = (name: string, host: string, tls: string, extra = '') => `[[service]]
name = "${name}"
image = "${TEST_IMAGE}"
command = ["sh", "-c", "mkdir -p /tmp/www && echo ${name} > /tmp/www/index.html && echo ok > /tmp/www/ready && exec httpd -f -p 80 -h /tmp/www"]
replicas = 1
port = 80
stop_grace_secs = 1
${extra}
[service.route]
host = "${host}"
tls = "${tls}"

[service.readiness]
path = "/ready"
interval_secs = 0.2
timeout_secs = 0.5
failure_threshold = 1
initial_delay_secs = 0
`;

interface CertRow {
  host: string;
  issuer: string | null;
  notAfter: string | null;
  status: string;
  reason: string | null;
}

/** One GET over a new TLS connection to 127.0.0.1:port with SNI `host`, trusting `ca`; the status, body and the certificate served. */
function tlsGet(port: number, host: string, ca: string, timeoutMs = 5_000): Promise<{ status: number; body: string; cert: X509Certificate }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/', servername: host, headers: { host }, ca, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => {
        const raw = (res.socket as import('node:tls').TLSSocket).getPeerX509Certificate?.();
        if (!raw) return reject(new Error('no peer certificate'));
        resolve({ status: res.statusCode ?? 0, body, cert: raw });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

function logged(logs: string, msg: string): Record<string, unknown> | null {
  const line = logs.split('\n').find((l) => l.includes(`"msg":"${msg}"`));
  return line ? (JSON.parse(line) as Record<string, unknown>) : null;
}

describe('HTTPS at the edge with pebble (real Docker)', () => {
  let env: { cluster: string; dataDir: string };
  let pebble: Pebble;
  let server: ServerProcess | undefined;
  let agent: AgentProcess | undefined;
  let agentDir = '';
  let run: ReturnType<typeof cli>;
  let plainPort = 0;
  let tlsPort = 0;
  let agentTlsPort = 0;
  let plain: ReturnType<typeof httpClient>;
  const pebbleLog: string[] = [];

  const certs = async (): Promise<CertRow[]> => {
    const r = await run(['certs', '-o', 'json']);
    if (r.code !== 0) throw new Error(r.stderr);
    return (JSON.parse(r.stdout) as { certs: CertRow[] }).certs;
  };
  const certOf = async (host: string) => (await certs()).find((c) => c.host === host);
  const apply = async (name: string, text: string) => {
    const file = join(env.dataDir, `${name}.toml`);
    await writeFile(file, text);
    const r = await run(['apply', '-f', file, '--wait', '--timeout', '90']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  };

  beforeAll(async () => {
    ensurePebble();
    env = await testEnv('https');
    plainPort = await freePort();
    pebble = await startPebble({ httpPort: plainPort, validitySecs: VALIDITY_SECS, log: (l) => pebbleLog.push(l) });
    server = await startServer({
      ...env,
      extra: [...SERVER_FLAGS, '--proxy-listen', `127.0.0.1:${plainPort}`, '--proxy-listen-tls', '127.0.0.1:0', '--acme-directory', pebble.directory, '--acme-ca-file', pebble.caFile, '--acme-email', 'ops@example.com'],
    });
    run = cli(server, env.dataDir);
    const tls = logged(server.logs(), 'proxy listening for TLS');
    tlsPort = Number(String(tls?.proxy).split(':').at(-1));
    plain = httpClient(`127.0.0.1:${plainPort}`);
    const token = (await readFile(join(env.dataDir, 'cluster.token'), 'utf8')).trim();
    agentDir = await mkdtemp(join(tmpdir(), `${env.cluster}-n2-`));
    agent = startAgentProcess({ api: server.api, node: 'n2', dataDir: agentDir, token, cluster: env.cluster, extra: ['--reconnect-initial', '0.2', '--reconnect-max', '0.5', '--proxy-listen', '127.0.0.1:0', '--proxy-listen-tls', '127.0.0.1:0'] });
    await waitFor(() => logged(agent!.logs(), 'proxy listening for TLS') !== null, 20_000, `the agent's TLS listener\n${agent.logs()}`);
    agentTlsPort = Number(String(logged(agent.logs(), 'proxy listening for TLS')?.proxy).split(':').at(-1));
    await waitFor(async () => JSON.parse((await run(['nodes', '-o', 'json'])).stdout).nodes.filter((n: { state: string }) => n.state === 'ready').length === 2, 20_000, 'two nodes ready');
  });

  afterAll(async () => {
    plain?.close();
    await stopAgentProcess(agent);
    await stopServer(server, 'SIGKILL');
    await pebble?.stop();
    await cleanup(env.cluster, env.dataDir);
    if (agentDir) await rm(agentDir, { recursive: true, force: true });
  });

  it('tls = "acme": pebble issues the certificate; served over HTTPS on the server’s proxy and on the agent’s; plain HTTP gets 308', async () => {
    await apply('web', service('web', 'web.localhost', 'acme'));
    await waitFor(async () => (await certOf('web.localhost'))?.status === 'valid', 60_000, `web.localhost valid\n${JSON.stringify(await certs().catch(() => []))}\n${pebbleLog.slice(-20).join('\n')}`);
    const row = (await certOf('web.localhost'))!;
    expect(row.issuer).toMatch(/^Pebble Intermediate CA/);
    const roots = await pebble.roots();
    const r = await tlsGet(tlsPort, 'web.localhost', roots);
    expect(r.status).toBe(200);
    expect(r.body.trim()).toBe('web');
    expect(r.cert.subjectAltName).toContain('DNS:web.localhost');
    expect(new Date(r.cert.validTo).toISOString()).toBe(row.notAfter);
    // The agent's proxy got the certificate over its session (in memory, nothing restarted).
    await waitFor(async () => (await tlsGet(agentTlsPort, 'web.localhost', roots).catch(() => null))?.status === 200, 15_000, "the agent's proxy serving web.localhost over TLS");
    expect((await tlsGet(agentTlsPort, 'web.localhost', roots)).cert.serialNumber).toBe(r.cert.serialNumber);
    // Plain HTTP: 308 to https at the TLS port.
    const redirect = await new Promise<{ status: number; location: string | undefined }>((resolve, reject) => {
      const q = http.request({ host: '127.0.0.1', port: plainPort, path: '/x?y=1', headers: { host: 'web.localhost' }, agent: false }, (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0, location: res.headers.location });
      });
      q.on('error', reject);
      q.end();
    });
    expect(redirect).toEqual({ status: 308, location: `https://web.localhost:${tlsPort}/x?y=1` });
    const ev = await run(['events', '-o', 'json', '--since', '10m']);
    expect(ev.stdout).toMatch(/"reconciler":"acme".*"action":"cert\.obtain".*"outcome":"ok"/);
  });

  it('renewal: the short-lived certificate is replaced before it expires, with no failed request in a loop of new TLS connections', async () => {
    const first = await tlsGet(tlsPort, 'web.localhost', await pebble.roots());
    const expires = Date.parse(first.cert.validTo);
    let roots = await pebble.roots();
    const result = { sent: 0, failed: 0, failures: [] as string[], serials: new Set<string>() };
    const deadline = expires + 5_000;
    let renewedAt = 0;
    while (systemClock.now() < deadline) {
      result.sent++;
      try {
        const r = await tlsGet(tlsPort, 'web.localhost', roots);
        if (r.status !== 200) {
          result.failed++;
          result.failures.push(`HTTP ${r.status}`);
        }
        result.serials.add(r.cert.serialNumber);
        if (r.cert.serialNumber !== first.cert.serialNumber && renewedAt === 0) renewedAt = systemClock.now();
      } catch (err) {
        result.failed++;
        result.failures.push(String(err));
        roots = await pebble.roots();
      }
      if (renewedAt !== 0 && systemClock.now() > renewedAt + 2_000) break;
      await sleep(systemClock, 50);
    }
    console.log(`renewal: ${result.sent} requests, ${result.failed} failed, served ${result.serials.size} certificates; renewed ${Math.round((expires - renewedAt) / 1000)} s before the first expired`);
    expect(result.failures).toEqual([]);
    expect(renewedAt).toBeGreaterThan(0);
    expect(renewedAt).toBeLessThan(expires);
    // The agent's proxy has it too.
    await waitFor(async () => (await tlsGet(agentTlsPort, 'web.localhost', roots).catch(() => null))?.cert.serialNumber !== first.cert.serialNumber, 10_000, "the agent's proxy serving the renewed certificate");
  });

  it('pebble down: a new host’s order fails, is shown failed and backs off, the plain route keeps serving; once pebble is back it is issued', async () => {
    await apply('plain', service('plain', 'plain.localhost', 'off'));
    await pebble.kill();
    await apply('api', service('api', 'api.localhost', 'acme'));
    await waitFor(async () => (await certOf('api.localhost'))?.status === 'failed', 30_000, `api.localhost failed\n${JSON.stringify(await certs().catch(() => []))}`);
    const failed = (await certOf('api.localhost'))!;
    expect(failed.reason).toMatch(/^the ACME directory https:\/\/127\.0\.0\.1:\d+\/dir cannot be reached: ECONNREFUSED/);
    // The next attempt is said, a backoff away (--acme-retry-secs 2 here; an hour against a real CA).
    expect(Date.parse((failed as CertRow & { next?: string }).next ?? '')).toBeGreaterThan(Date.now());
    for (let i = 0; i < 20; i++) expect((await plain.get('plain.localhost')).status).toBe(200);
    const ev = await run(['events', '-o', 'json', '--since', '10m']);
    expect(ev.stdout).toMatch(/"reconciler":"acme".*"action":"cert\.obtain".*"outcome":"failed"/);
    await sleep(systemClock, 3_000);
    await pebble.restart();
    await waitFor(async () => (await certOf('api.localhost'))?.status === 'valid', 60_000, `api.localhost valid after pebble came back\n${JSON.stringify(await certs().catch(() => []))}`);
    const attempts = (await run(['events', '-o', 'json', '--since', '10m'])).stdout.split('\n').filter((l) => l.includes('cert.obtain') && l.includes('api.localhost'));
    expect(attempts.filter((l) => l.includes('"outcome":"failed"')).length).toBeGreaterThanOrEqual(1);
    const r = await tlsGet(tlsPort, 'api.localhost', await pebble.roots());
    expect(r.status).toBe(200);
    expect(r.body.trim()).toBe('api');
    expect((await plain.get('plain.localhost')).status).toBe(200);
  });

  it('tls = "manual": a certificate for another host is refused (exit 2, saying why); the right one is served at once', async () => {
    await apply('shop', service('shop', 'shop.localhost', 'manual'));
    expect((await certOf('shop.localhost'))?.status).toBe('pending');
    const ca = await makeCa('Shop CA');
    const wrong = await issueCert(ca, ['other.localhost']);
    const right = await issueCert(ca, ['shop.localhost']);
    const dir = await mkdtemp(join(tmpdir(), 'orca-https-certs-'));
    try {
      await writeFile(join(dir, 'wrong.crt'), wrong.certPem);
      await writeFile(join(dir, 'wrong.key'), wrong.keyPem);
      await writeFile(join(dir, 'right.crt'), right.certPem);
      await writeFile(join(dir, 'right.key'), right.keyPem);
      const bad = await run(['cert', 'set', 'shop.localhost', '--cert', join(dir, 'wrong.crt'), '--key', join(dir, 'wrong.key')]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('the certificate is not valid for shop.localhost: it is for other.localhost');
      expect((await certOf('shop.localhost'))?.status).toBe('pending');
      const mismatched = await run(['cert', 'set', 'shop.localhost', '--cert', join(dir, 'right.crt'), '--key', join(dir, 'wrong.key')]);
      expect(mismatched.code).toBe(2);
      expect(mismatched.stderr).toContain('key: does not match the certificate');
      const good = await run(['cert', 'set', 'shop.localhost', '--cert', join(dir, 'right.crt'), '--key', join(dir, 'right.key')]);
      expect(good.code, good.stderr).toBe(0);
      expect((await certOf('shop.localhost'))?.status).toBe('valid');
      await waitFor(async () => (await tlsGet(tlsPort, 'shop.localhost', ca.certPem).catch(() => null))?.status === 200, 10_000, 'shop.localhost served over TLS');
      await waitFor(async () => (await tlsGet(agentTlsPort, 'shop.localhost', ca.certPem).catch(() => null))?.status === 200, 10_000, "shop.localhost served over TLS by the agent's proxy");
      const table = await run(['certs']);
      expect(table.stdout).toMatch(/^HOST\s+STATUS/m);
      expect(table.stdout).toMatch(/^shop\.localhost\s+valid\s+manual\s+Shop CA/m);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
