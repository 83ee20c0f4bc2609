import { afterAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { apiServesTls, loadServerConfig, resolveProxyWorkers, type ServerFlags } from './config.js';
import { TempDirs } from '../test/tmp.js';

const temp = new TempDirs();
afterAll(() => temp.removeAll());

async function configFile(text: string): Promise<string> {
  const dir = await temp.make('orca-config-');
  const p = join(dir, 'cluster.toml');
  await writeFile(p, text);
  return p;
}

describe('loadServerConfig', () => {
  it('uses the SPEC defaults', async () => {
    const r = await loadServerConfig({ dataDir: '/tmp/x', nodeName: 'n1' });
    expect(r).toMatchObject({
      ok: true,
      value: {
        dataDir: '/tmp/x',
        apiListen: { host: '127.0.0.1', port: 6880 },
        proxyListen: { host: '127.0.0.1', port: 8080 },
        advertise: '127.0.0.1',
        clusterId: 'default',
        watchdogIntervalMs: 30_000,
        heartbeatIntervalMs: 5_000,
        heartbeatTimeoutMs: 15_000,
        nodeDownGraceMs: 60_000,
        localAgent: true,
      },
    });
  });

  it('reads every key from cluster.toml, and flags win over the file', async () => {
    const file = await configFile(
      [
        'data_dir = "/srv/orca"',
        'api_listen = "127.0.0.1:7000"',
        'proxy_listen = "127.0.0.1:7001"',
        'node_name = "alpha"',
        'advertise = "127.0.0.2"',
        'cluster_id = "prod"',
        'watchdog_interval_secs = 0.5',
        'heartbeat_interval_secs = 1',
        'heartbeat_timeout_secs = 3',
        'node_down_grace_secs = 9',
        'local_agent = false',
      ].join('\n'),
    );
    const fromFile = await loadServerConfig({ config: file });
    expect(fromFile).toMatchObject({
      ok: true,
      value: {
        dataDir: '/srv/orca',
        apiListen: { port: 7000 },
        proxyListen: { port: 7001 },
        nodeName: 'alpha',
        advertise: '127.0.0.2',
        clusterId: 'prod',
        watchdogIntervalMs: 500,
        heartbeatIntervalMs: 1000,
        heartbeatTimeoutMs: 3000,
        nodeDownGraceMs: 9000,
        localAgent: false,
      },
    });
    const flagsWin = await loadServerConfig({ config: file, nodeName: 'beta', watchdogInterval: '2', localAgent: true });
    expect(flagsWin).toMatchObject({ ok: true, value: { nodeName: 'beta', watchdogIntervalMs: 2000, localAgent: true, clusterId: 'prod' } });
  });

  it('takes the cluster key file from --cluster-key-file or cluster_key_file, as an absolute path; none by default', async () => {
    const plain = await loadServerConfig({ dataDir: '/tmp/x', nodeName: 'n1' });
    expect(plain.ok).toBe(true);
    expect(plain).not.toHaveProperty('value.clusterKeyFile');
    const file = await configFile('cluster_key_file = "/etc/orca/cluster.key"\n');
    expect(await loadServerConfig({ config: file, nodeName: 'n1' })).toMatchObject({ ok: true, value: { clusterKeyFile: '/etc/orca/cluster.key' } });
    expect(await loadServerConfig({ config: file, nodeName: 'n1', clusterKeyFile: '/srv/k' })).toMatchObject({ ok: true, value: { clusterKeyFile: '/srv/k' } });
    expect(await loadServerConfig({ nodeName: 'n1', clusterKeyFile: 'rel.key' })).toMatchObject({ ok: true, value: { clusterKeyFile: join(process.cwd(), 'rel.key') } });
  });

  it('reports every mistake, naming the flag or the key', async () => {
    const file = await configFile('watchdog_interval_secs = 0.01\nnode_nmae = "x"\n');
    const r = await loadServerConfig({ config: file, apiListen: 'nope', heartbeatTimeout: 'soon', nodeName: 'Bad_Name' });
    expect(r.ok).toBe(false);
    const text = r.ok ? '' : r.errors.join('\n');
    expect(text).toContain('watchdog_interval_secs');
    expect(text).toContain('node_nmae');
    expect(text).toContain('--api-listen');
    expect(text).toContain('--heartbeat-timeout');
    expect(text).toContain('--node-name');
  });

  it('reports TOML syntax errors with file:line:col', async () => {
    const file = await configFile('node_name = "a"\napi_listen = \n');
    const r = await loadServerConfig({ config: file });
    expect(r.ok ? '' : r.errors[0]).toMatch(/cluster\.toml:2:\d+: /);
  });
});

describe('when TLS is on (apiServesTls)', () => {
  const cfg = async (flags: ServerFlags) => {
    const r = await loadServerConfig({ dataDir: '/nonexistent', nodeName: 'n1', ...flags });
    if (!r.ok) throw new Error(r.errors.join());
    return r.value;
  };
  it('loopback: off unless --tls; beyond loopback: on unless --insecure-plaintext', async () => {
    expect(apiServesTls(await cfg({}))).toBe(false);
    expect(apiServesTls(await cfg({ apiListen: '127.0.0.5:6880' }))).toBe(false);
    expect(apiServesTls(await cfg({ apiListen: '[::1]:6880' }))).toBe(false);
    expect(apiServesTls(await cfg({ apiListen: 'localhost:6880' }))).toBe(false);
    expect(apiServesTls(await cfg({ tls: true }))).toBe(true);
    expect(apiServesTls(await cfg({ apiListen: '0.0.0.0:6880' }))).toBe(true);
    expect(apiServesTls(await cfg({ apiListen: '[::]:6880' }))).toBe(true);
    expect(apiServesTls(await cfg({ apiListen: '192.0.2.4:6880' }))).toBe(true);
    expect(apiServesTls(await cfg({ apiListen: '0.0.0.0:6880', insecurePlaintext: true }))).toBe(false);
  });

  it('reads tls, tls_san and insecure_plaintext from cluster.toml; flags win', async () => {
    const file = await configFile('api_listen = "0.0.0.0:6880"\ninsecure_plaintext = true\ntls_san = ["orca.example.com", "203.0.113.5"]\n');
    const r = await loadServerConfig({ config: file, dataDir: '/nonexistent', nodeName: 'n1' });
    expect(r).toMatchObject({ ok: true, value: { tls: false, insecurePlaintext: true, tlsSans: ['orca.example.com', '203.0.113.5'] } });
    expect(r.ok && apiServesTls(r.value)).toBe(false);
    const flags = await loadServerConfig({ config: file, dataDir: '/nonexistent', nodeName: 'n1', insecurePlaintext: false, tlsSan: ['other.example.com'] });
    expect(flags).toMatchObject({ ok: true, value: { insecurePlaintext: false, tlsSans: ['other.example.com'] } });
    expect(flags.ok && apiServesTls(flags.value)).toBe(true);
    const bad = await loadServerConfig({ config: await configFile('tls = "yes"\ntls_san = ["a b"]\n'), dataDir: '/nonexistent', nodeName: 'n1' });
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.errors.join('\n')).toMatch(/tls: .*boolean/i);
  });

  it('refuses --tls with --insecure-plaintext, and a --tls-san that is no name', async () => {
    const r = await loadServerConfig({ dataDir: '/nonexistent', nodeName: 'n1', tls: true, insecurePlaintext: true, tlsSan: ['ok.example.com', 'not a name'] });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.errors).toEqual(['--tls-san: "not a name" must be a DNS name or an IP address', '--tls and --insecure-plaintext: choose one']);
  });
});

describe('--proxy-workers', () => {
  it('defaults to auto: half the cores, at most 4, at least 1 (1 = the in-process proxy)', () => {
    const auto = (cores: number) => resolveProxyWorkers('auto', '--proxy-workers', cores, []);
    expect([1, 2, 3, 4, 6, 8, 16, 64].map(auto)).toEqual([1, 1, 1, 2, 3, 4, 4, 4]);
  });

  it('takes a whole number from 1 to 16 from the flag or proxy_workers, the flag winning', async () => {
    const file = await configFile('proxy_workers = 3\n');
    expect(await loadServerConfig({ dataDir: '/tmp/x', nodeName: 'n1', config: file })).toMatchObject({ ok: true, value: { proxyWorkers: 3 } });
    expect(await loadServerConfig({ dataDir: '/tmp/x', nodeName: 'n1', config: file, proxyWorkers: '2' })).toMatchObject({ ok: true, value: { proxyWorkers: 2 } });
    const autoFile = await configFile('proxy_workers = "auto"\n');
    expect(await loadServerConfig({ dataDir: '/tmp/x', nodeName: 'n1', config: autoFile })).toMatchObject({ ok: true });
  });

  it('refuses anything else, naming the flag or the key', async () => {
    for (const bad of ['0', '17', '1.5', 'two', '', '-1']) {
      const r = await loadServerConfig({ dataDir: '/tmp/x', nodeName: 'n1', proxyWorkers: bad });
      expect(r.ok, bad).toBe(false);
      if (!r.ok) expect(r.errors.join('\n')).toMatch(/^--proxy-workers: .* must be "auto" or a whole number from 1 to 16/);
    }
    const r = await loadServerConfig({ dataDir: '/tmp/x', nodeName: 'n1', config: await configFile('proxy_workers = 0\n') });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.join('\n')).toMatch(/proxy_workers: "0" must be/);
  });
});
