import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadServerConfig } from './config.js';
import { parseStoreConfig, type StoreInputs } from './store-config.js';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

describe('orca server --store etcd:// (parseStoreConfig)', () => {
  let dir: string;
  let ca: string;
  let cert: string;
  let key: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'orca-store-config-'));
    ca = join(dir, 'ca.pem');
    cert = join(dir, 'client.pem');
    key = join(dir, 'client.key');
    await writeFile(ca, PEM);
    await writeFile(cert, PEM);
    await writeFile(key, '-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const FLAGS = { store: '--store', storePrefix: '--store-prefix', etcdCa: '--etcd-ca', etcdCert: '--etcd-cert', etcdKey: '--etcd-key' };
  type Flags = StoreInputs & { clusterId?: string };
  const load = async ({ clusterId, ...inp }: Flags) => {
    const errors: string[] = [];
    const store = await parseStoreConfig(inp, FLAGS, clusterId ?? 'default', errors);
    return errors.length ? ({ ok: false, errors } as const) : ({ ok: true, value: { store } } as const);
  };
  const errorsOf = async (flags: Flags) => {
    const r = await load(flags);
    return r.ok ? [] : r.errors;
  };

  it('without --store: the embedded store, no etcd settings', async () => {
    const r = await load({});
    expect(r.ok && r.value.store).toBeUndefined();
  });

  it('parses endpoints into http:// URLs with the default prefix /orca/<cluster-id>', async () => {
    const r = await load({ store: 'etcd://127.0.0.1:2379, etcd-2.example:2379,[::1]:2381', clusterId: 'prod' });
    expect(r).toMatchObject({ ok: true, value: { store: { kind: 'etcd', endpoints: ['http://127.0.0.1:2379', 'http://etcd-2.example:2379', 'http://[::1]:2381'], prefix: '/orca/prod' } } });
  });

  it('TLS files make the endpoints https:// and are read at start', async () => {
    const r = await load({ store: 'etcd://203.0.113.1:2379', storePrefix: '/teams/a/orca', etcdCa: ca, etcdCert: cert, etcdKey: key });
    expect(r.ok).toBe(true);
    const store = r.ok ? r.value.store : undefined;
    expect(store?.endpoints).toEqual(['https://203.0.113.1:2379']);
    expect(store?.prefix).toBe('/teams/a/orca');
    expect(store?.tls?.ca?.toString()).toBe(PEM);
    expect(store?.tls?.key?.toString()).toMatch(/PRIVATE KEY/);
  });

  it('orca server takes them from flags and cluster.toml (flags win), --token-file too; none: the embedded store', async () => {
    const file = join(dir, 'cluster.toml');
    await writeFile(file, `store = "etcd://127.0.0.1:2379"\nstore_prefix = "/x/y"\netcd_ca = "${ca}"\ntoken_file = "${join(dir, 'tok')}"\n`);
    const fromFile = await loadServerConfig({ config: file, nodeName: 'n1' });
    expect(fromFile).toMatchObject({ ok: true, value: { store: { endpoints: ['https://127.0.0.1:2379'], prefix: '/x/y' }, tokenFile: join(dir, 'tok') } });
    const flagged = await loadServerConfig({ config: file, nodeName: 'n1', store: 'etcd://127.0.0.1:3000', storePrefix: '/z' });
    expect(flagged).toMatchObject({ ok: true, value: { store: { endpoints: ['https://127.0.0.1:3000'], prefix: '/z' } } });
    const bad = await loadServerConfig({ nodeName: 'n1', store: 'etcd://h:1', storePrefix: 'nope' });
    expect(bad).toEqual({ ok: false, errors: [`--store-prefix: "nope" must start with '/'`] });
    const none = await loadServerConfig({ nodeName: 'n1', clusterId: 'prod' });
    expect(none.ok && none.value.store).toBeUndefined();
    const byDefault = await loadServerConfig({ nodeName: 'n1', clusterId: 'prod', store: 'etcd://h:1' });
    expect(byDefault.ok && byDefault.value.store?.prefix).toBe('/orca/prod');
  });

  it('names the cluster.toml key when the value came from there', async () => {
    const errors: string[] = [];
    await parseStoreConfig({ store: 'etcd://h:1', storePrefix: 'x' }, { ...FLAGS, storePrefix: 'store_prefix' }, 'default', errors);
    expect(errors).toEqual([`store_prefix: "x" must start with '/'`]);
  });

  it.each([
    [{ store: 'http://127.0.0.1:2379' }, /--store: "http:\/\/127.0.0.1:2379" must be etcd:\/\/HOST:PORT/],
    [{ store: 'etcd://127.0.0.1' }, /--store: "127.0.0.1" is not HOST:PORT/],
    [{ store: 'etcd://127.0.0.1:0' }, /--store: "127.0.0.1:0": the port must be 1-65535/],
    [{ store: 'etcd://127.0.0.1:2379,127.0.0.1:2379' }, /--store: 127.0.0.1:2379 is listed twice/],
    [{ store: 'etcd://bad_host!:2379' }, /is not a host name or IP address/],
    [{ store: `etcd://${Array.from({ length: 17 }, (_, i) => `h${i}:1`).join(',')}` }, /--store: at most 16 endpoints/],
    [{ store: '' }, /--store: empty/],
    [{ store: 'etcd://h:1', storePrefix: 'orca' }, /--store-prefix: "orca" must start with '\/'/],
    [{ store: 'etcd://h:1', storePrefix: '/orca/' }, /--store-prefix: "\/orca\/" must not end with '\/'/],
    [{ store: 'etcd://h:1', storePrefix: '/a b' }, /printable ASCII without spaces/],
    [{ storePrefix: '/orca/x' }, /--store-prefix: only with --store etcd:\/\/HOST:PORT/],
    [{ etcdCa: '/nope' }, /--etcd-ca: only with --store/],
    [{ store: 'etcd://h:1', etcdCert: '/c' }, /--etcd-cert: needs --etcd-key/],
    [{ store: 'etcd://h:1', etcdCa: '/does/not/exist.pem' }, /--etcd-ca: cannot read \/does\/not\/exist.pem: no such file/],
  ] as Array<[Flags, RegExp]>)('refuses %j', async (flags, message) => {
    const errors = await errorsOf(flags);
    expect(errors.join('\n')).toMatch(message);
  });

  it('refuses a TLS file that holds no PEM, and a directory', async () => {
    const junk = join(dir, 'junk');
    await writeFile(junk, 'not a certificate');
    expect((await errorsOf({ store: 'etcd://h:1', etcdCa: junk })).join('\n')).toMatch(/--etcd-ca: .*junk holds no PEM block/);
    expect((await errorsOf({ store: 'etcd://h:1', etcdCa: dir })).join('\n')).toMatch(/--etcd-ca: .* is not a regular file/);
  });
});
