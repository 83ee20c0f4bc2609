import { afterEach, describe, expect, it } from 'vitest';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../core/clock.js';
import { DEFAULTS } from '../core/defaults.js';
import { ensureClusterTls, keepServerCertFresh, sanProblem, serverNames, type ClusterTls } from './cluster-tls.js';
import { createLogger } from '../core/log.js';
import { Writable } from 'node:stream';
import { caFingerprint } from '../protocol/tls-trust.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
async function dataDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'orca-tls-test-'));
  dirs.push(d);
  return d;
}
const DAY = 86_400_000;
const names = (sans: string[] = [], advertise = '192.0.2.10') => serverNames({ advertise, apiHost: '0.0.0.0', sans });
const ensure = (dir: string, n: string[], clock: ManualClock) => ensureClusterTls(dir, { names: n, clusterId: 'unit', commonName: 'n1', nowMs: clock.now() });
const sanOf = (pem: string) => new X509Certificate(pem).subjectAltName;

describe('cluster CA and server certificate', () => {
  it('first start: a CA and a server certificate for localhost, 127.0.0.1, ::1, the advertise address and every --tls-san, signed by the CA', async () => {
    const dir = await dataDir();
    const clock = new ManualClock(Date.now());
    const tls = await ensure(dir, names(['orca.example.com', '203.0.113.7']), clock);
    expect(tls.created).toEqual({ ca: true, serverCert: true });
    const ca = new X509Certificate(await readFile(join(dir, 'tls/ca.crt')));
    const leaf = new X509Certificate(await readFile(join(dir, 'tls/server.crt')));
    expect(ca.ca).toBe(true);
    expect(leaf.ca).toBe(false);
    expect(leaf.checkIssued(ca) && leaf.verify(ca.publicKey)).toBe(true);
    expect(ca.checkPrivateKey(createPrivateKey(await readFile(join(dir, 'tls/ca.key'))))).toBe(true);
    expect(leaf.checkPrivateKey(createPrivateKey(await readFile(join(dir, 'tls/server.key'))))).toBe(true);
    const san = leaf.subjectAltName ?? '';
    for (const want of ['DNS:localhost', 'DNS:orca.example.com', 'IP Address:127.0.0.1', 'IP Address:192.0.2.10', 'IP Address:203.0.113.7']) expect(san).toContain(want);
    expect(san).toMatch(/IP Address:(::1|0:0:0:0:0:0:0:1)\b/);
    expect(leaf.checkHost('orca.example.com')).toBe('orca.example.com');
    expect(leaf.checkIP('192.0.2.10')).toBe('192.0.2.10');
    expect(leaf.checkHost('elsewhere.example.com')).toBeUndefined();
    expect(Date.parse(leaf.validTo) - clock.now()).toBeGreaterThan((DEFAULTS.tls.serverCertValidityDays - 1) * DAY);
    // The chain the server presents: leaf, then CA.
    expect(tls.chainPem.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    expect(tls.caPem).toBe(ca.toString());
  });

  it('keeps the directory 0700 and every file 0600', async () => {
    const dir = await dataDir();
    await ensure(dir, names(), new ManualClock(Date.now()));
    expect((await stat(join(dir, 'tls'))).mode & 0o777).toBe(0o700);
    for (const f of ['ca.crt', 'ca.key', 'server.crt', 'server.key']) {
      expect({ f, mode: (await stat(join(dir, 'tls', f))).mode & 0o777 }).toEqual({ f, mode: 0o600 });
    }
  });

  it('a second start with the same names changes nothing', async () => {
    const dir = await dataDir();
    const clock = new ManualClock(Date.now());
    const first = await ensure(dir, names(['a.example.com']), clock);
    clock.advance(DAY);
    const again = await ensure(dir, names(['a.example.com']), clock);
    expect(again.created).toEqual({ ca: false, serverCert: false });
    expect(again.chainPem).toBe(first.chainPem);
    expect(again.keyPem).toBe(first.keyPem);
  });

  it('re-issues the server certificate when the names change, with the same CA', async () => {
    const dir = await dataDir();
    const clock = new ManualClock(Date.now());
    const first = await ensure(dir, names(['a.example.com']), clock);
    const second = await ensure(dir, names(['b.example.com']), clock);
    expect(second.created).toEqual({ ca: false, serverCert: true });
    expect(second.caPem).toBe(first.caPem);
    expect(sanOf(second.chainPem)).toContain('DNS:b.example.com');
    expect(sanOf(second.chainPem)).not.toContain('DNS:a.example.com');
    // A new advertise address is a change of names too.
    const third = await ensure(dir, names(['b.example.com'], '198.51.100.4'), clock);
    expect(third.created.serverCert).toBe(true);
    expect(sanOf(third.chainPem)).toContain('IP Address:198.51.100.4');
    expect(caFingerprint(third.caPem)).toBe(caFingerprint(first.caPem));
  });

  it('re-issues the server certificate near expiry, never the CA', async () => {
    const dir = await dataDir();
    const clock = new ManualClock(Date.now());
    const first = await ensure(dir, names(), clock);
    clock.advance((DEFAULTS.tls.serverCertValidityDays - DEFAULTS.tls.renewBeforeDays - 1) * DAY);
    expect((await ensure(dir, names(), clock)).created.serverCert).toBe(false);
    clock.advance(2 * DAY);
    const renewed = await ensure(dir, names(), clock);
    expect(renewed.created).toEqual({ ca: false, serverCert: true });
    expect(renewed.caPem).toBe(first.caPem);
    expect(renewed.notAfterMs).toBeGreaterThan(first.notAfterMs);
  });

  it('re-issues a server certificate that another CA signed, or whose key is not its own', async () => {
    const dir = await dataDir();
    const other = await dataDir();
    const clock = new ManualClock(Date.now());
    await ensure(dir, names(), clock);
    await ensure(other, names(), clock);
    await writeFile(join(dir, 'tls/server.crt'), await readFile(join(other, 'tls/server.crt')));
    const fixed = await ensure(dir, names(), clock);
    expect(fixed.created.serverCert).toBe(true);
    const ca = new X509Certificate(fixed.caPem);
    expect(new X509Certificate(fixed.chainPem).verify(ca.publicKey)).toBe(true);
    await writeFile(join(dir, 'tls/server.key'), await readFile(join(other, 'tls/server.key')));
    expect((await ensure(dir, names(), clock)).created.serverCert).toBe(true);
  });

  it('never re-creates the CA: a missing or mismatched key, or a missing certificate, refuses to start', async () => {
    const clock = new ManualClock(Date.now());
    const dir = await dataDir();
    const other = await dataDir();
    await ensure(dir, names(), clock);
    await ensure(other, names(), clock);
    const caBefore = await readFile(join(dir, 'tls/ca.crt'), 'utf8');

    await writeFile(join(dir, 'tls/ca.key'), await readFile(join(other, 'tls/ca.key')), { mode: 0o600 });
    await expect(ensure(dir, names(), clock)).rejects.toThrow(/ca\.key does not match the certificate/);

    await rm(join(dir, 'tls/ca.key'));
    await expect(ensure(dir, names(), clock)).rejects.toThrow(/ca\.key is missing while .*ca\.crt exists/);
    expect(await readFile(join(dir, 'tls/ca.crt'), 'utf8')).toBe(caBefore);

    await writeFile(join(dir, 'tls/ca.key'), 'not a key\n', { mode: 0o600 });
    await expect(ensure(dir, names(), clock)).rejects.toThrow(/is not a PEM private key/);

    await rm(join(dir, 'tls/ca.crt'));
    await expect(ensure(dir, names(), clock)).rejects.toThrow(/ca\.crt is missing while .*ca\.key exists/);
  });

  it('refuses a CA key that others can read, and one it cannot read', async () => {
    const clock = new ManualClock(Date.now());
    const dir = await dataDir();
    await ensure(dir, names(), clock);
    await chmod(join(dir, 'tls/ca.key'), 0o644);
    await expect(ensure(dir, names(), clock)).rejects.toThrow(/mode 0644.*chmod 600/);
    if (process.getuid?.() !== 0) {
      await chmod(join(dir, 'tls/ca.key'), 0o000);
      await expect(ensure(dir, names(), clock)).rejects.toThrow(/cannot read the cluster CA key .*EACCES/);
    }
  });
});

describe('keepServerCertFresh', () => {
  it('a running server gets a new certificate once the one it serves is near expiry, and no check after it stops', async () => {
    const dir = await dataDir();
    const clock = new ManualClock(Date.now());
    const n = names();
    const first = await ensure(dir, n, clock);
    const issued: ClusterTls[] = [];
    const abort = new AbortController();
    const log = createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }), pretty: false });
    keepServerCertFresh({ dataDir: dir, issue: { names: n, clusterId: 'unit', commonName: 'n1' }, clock, signal: abort.signal, log, onIssued: (t) => issued.push(t), intervalMs: DAY });
    const settle = async () => {
      // I/O turns (no timer) until the check has run and scheduled the next one.
      for (let i = 0; i < 200_000 && clock.pending() === 0; i++) await new Promise((r) => setImmediate(r));
    };
    clock.advance(DAY);
    await settle();
    expect(issued).toEqual([]);
    // The check due on day 2 runs, time moves on to day 335 meanwhile (31 days left: nothing to do)…
    clock.advance((DEFAULTS.tls.serverCertValidityDays - DEFAULTS.tls.renewBeforeDays - 1) * DAY);
    await settle();
    expect(issued).toEqual([]);
    // …and the one on day 336 (29 days left) re-issues.
    clock.advance(DAY);
    await settle();
    expect(issued).toHaveLength(1);
    expect(issued[0]!.notAfterMs).toBeGreaterThan(first.notAfterMs);
    expect(issued[0]!.caPem).toBe(first.caPem);
    abort.abort();
    expect(clock.pending()).toBe(0);
  });
});

describe('serverNames and --tls-san', () => {
  it('always carries the loopback names, then the advertise and API addresses and the SANs, canonical and deduplicated', () => {
    expect(serverNames({ advertise: '127.0.0.1', apiHost: '127.0.0.1', sans: [] })).toEqual(['127.0.0.1', '::1', 'localhost']);
    expect(serverNames({ advertise: 'Node1.Example.com', apiHost: '203.0.113.9', sans: ['0:0:0:0:0:0:0:1', '[2001:db8::1]', 'node1.example.com'] })).toEqual(
      ['127.0.0.1', '2001:db8::1', '203.0.113.9', '::1', 'localhost', 'node1.example.com'],
    );
  });

  it('accepts DNS names, wildcards and IPs, and says what is wrong with anything else', () => {
    for (const ok of ['orca', 'orca.example.com', '*.example.com', '192.0.2.1', '2001:db8::2']) expect(sanProblem(ok)).toBeNull();
    for (const bad of ['', 'a b', 'under_score.example', '*.com', 'x.*.example.com', '-lead.example.com', 'http://x']) expect(sanProblem(bad)).not.toBeNull();
  });
});
