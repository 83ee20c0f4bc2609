import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { memoryStore } from '../store/index.js';
import { isOrcaError } from '../core/errors.js';
import { issueCert, makeCa, type TestCa } from '../test/certs.js';
import { checkCertificate } from './cert-check.js';
import { CertStore } from './certs.js';
import { ACME_RETRY, decideOrder, renewAtMs, retryDelayMs } from './acme-policy.js';

const DAY = 86_400_000;
let ca: TestCa;
beforeAll(async () => {
  ca = await makeCa();
});

describe('checkCertificate (orca cert set)', () => {
  it('accepts a certificate for the exact host, a wildcard certificate for a sub-domain, and a wildcard host with its wildcard', async () => {
    const exact = await issueCert(ca, ['web.example.com']);
    const ok = checkCertificate('web.example.com', exact.certPem + ca.certPem, exact.keyPem, Date.now());
    expect(ok.ok).toBe(true);
    if (ok.ok) {
      expect(ok.facts.issuer).toBe('Orca test CA');
      expect(ok.facts.names).toEqual(['web.example.com']);
      expect(ok.chain.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    }
    const wild = await issueCert(ca, ['*.example.com']);
    expect(checkCertificate('api.example.com', wild.certPem, wild.keyPem, Date.now()).ok).toBe(true);
    expect(checkCertificate('*.example.com', wild.certPem, wild.keyPem, Date.now()).ok).toBe(true);
  });

  it('refuses, saying why: another host, a key of another certificate, expired, not yet valid, no PEM, a CA first, a bad host', async () => {
    const web = await issueCert(ca, ['web.example.com']);
    const other = await issueCert(ca, ['other.example.com']);
    const wild = await issueCert(ca, ['*.example.com']);
    const old = await issueCert(ca, ['web.example.com'], { notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY) });
    const future = await issueCert(ca, ['web.example.com'], { notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 10 * DAY) });
    const err = (host: string, cert: string, key: string) => {
      const r = checkCertificate(host, cert, key, Date.now());
      return r.ok ? 'accepted' : r.error;
    };
    expect(err('shop.example.com', web.certPem, web.keyPem)).toBe('the certificate is not valid for shop.example.com: it is for web.example.com');
    expect(err('web.example.com', web.certPem, other.keyPem)).toBe('key: does not match the certificate (the key belongs to another certificate)');
    expect(err('a.b.example.com', wild.certPem, wild.keyPem)).toMatch(/not valid for a\.b\.example\.com: it is for \*\.example\.com/);
    expect(err('example.com', wild.certPem, wild.keyPem)).toMatch(/not valid for example\.com/);
    expect(err('*.example.com', web.certPem, web.keyPem)).toMatch(/not valid for \*\.example\.com: it is for web\.example\.com \(a wildcard host needs that wildcard certificate\)/);
    expect(err('web.example.com', old.certPem, old.keyPem)).toMatch(/^the certificate expired on /);
    expect(err('web.example.com', future.certPem, future.keyPem)).toMatch(/^the certificate is not valid before /);
    expect(err('web.example.com', 'hello', web.keyPem)).toMatch(/no PEM certificate/);
    expect(err('web.example.com', web.certPem, 'nope')).toBe('key: not a PEM private key');
    expect(err('web.example.com', ca.certPem + web.certPem, web.keyPem)).toMatch(/first certificate is a CA certificate/);
    expect(err('Web_Bad', web.certPem, web.keyPem)).toMatch(/^host: must be a host name/);
    expect(err('web.example.com', web.certPem + 'x'.repeat(70_000), web.keyPem)).toMatch(/larger than 64 KiB/);
  });
});

async function setup() {
  const store = memoryStore();
  await store.open();
  return { store, certs: new CertStore(store, randomBytes(32)) };
}

describe('CertStore', () => {
  it('keeps the key sealed in the store, gives it to the proxies, and says when it changed', async () => {
    const { store, certs } = await setup();
    const c = await issueCert(ca, ['web.example.com']);
    let changes = 0;
    certs.onChange(() => changes++);
    const rec = await certs.put('web.example.com', c.certPem, c.keyPem, 'manual', new Date());
    expect(rec).toMatchObject({ host: 'web.example.com', source: 'manual', version: 1, issuer: 'Orca test CA' });
    expect(changes).toBe(1);
    const raw = JSON.stringify(await store.listKv(''));
    expect(raw).not.toContain('PRIVATE KEY');
    const edge = await certs.edgeCerts(Date.now());
    expect(edge).toHaveLength(1);
    expect(edge[0]?.key).toContain('PRIVATE KEY');
    expect(edge[0]?.cert).toContain('BEGIN CERTIFICATE');
    // Another cluster key cannot open it: left out, reported.
    const bad: string[] = [];
    expect(await new CertStore(store, randomBytes(32)).edgeCerts(Date.now(), (h) => bad.push(h))).toEqual([]);
    expect(bad).toEqual(['web.example.com']);
    // Not served once expired.
    expect(await certs.edgeCerts(Date.parse(rec.notAfter) + 1)).toEqual([]);
  });

  it('refuses a certificate for another host with ORCA_USAGE and stores nothing', async () => {
    const { certs } = await setup();
    const c = await issueCert(ca, ['web.example.com']);
    const err = await certs.put('shop.example.com', c.certPem, c.keyPem, 'manual', new Date()).catch((e: unknown) => e);
    expect(isOrcaError(err) && err.code).toBe('ORCA_USAGE');
    expect((err as Error).message).toBe('certificate for shop.example.com: the certificate is not valid for shop.example.com: it is for web.example.com');
    expect(await certs.all()).toEqual([]);
  });

  it('orca certs: valid, pending (ACME ordering, manual without one), failed with the reason, renewal failures on a valid one', async () => {
    const { certs } = await setup();
    const now = Date.now();
    const c = await issueCert(ca, ['a.example.com']);
    await certs.put('a.example.com', c.certPem, c.keyPem, 'acme', new Date(now));
    await certs.putOrder({ host: 'a.example.com', status: 'failed', failures: 2, reason: 'connection refused', nextAttemptAt: new Date(now + 3600_000).toISOString() });
    await certs.putOrder({ host: 'b.example.com', status: 'pending', failures: 0 });
    await certs.putOrder({ host: 'c.example.com', status: 'failed', failures: 1, reason: 'the CA said: unauthorized', nextAttemptAt: new Date(now + 3600_000).toISOString() });
    const rows = await certs.view(
      [
        { host: 'a.example.com', tls: 'acme' },
        { host: 'b.example.com', tls: 'acme' },
        { host: 'c.example.com', tls: 'acme' },
        { host: 'd.example.com', tls: 'manual' },
      ],
      now,
    );
    expect(rows.map((r) => [r.host, r.status, r.reason])).toEqual([
      ['a.example.com', 'valid', 'renewal failed (2×): connection refused'],
      ['b.example.com', 'pending', 'ordering from the ACME CA'],
      ['c.example.com', 'failed', 'the CA said: unauthorized'],
      ['d.example.com', 'pending', 'no certificate: orca cert set d.example.com --cert FILE --key FILE'],
    ]);
    expect(rows[0]).toMatchObject({ issuer: 'Orca test CA', source: 'acme' });
    expect(rows[2]?.next).toBe(new Date(now + 3600_000).toISOString());
  });
});

describe('decideOrder (renewal and backoff)', () => {
  const t0 = Date.parse('2026-01-01T00:00:00Z');
  const cert = { notBefore: '2026-01-01T00:00:00Z', notAfter: '2026-03-31T00:00:00Z' }; // 89 days
  const due = renewAtMs(cert.notBefore, cert.notAfter);
  it('renews when a third of the lifetime is left', () => {
    expect(due).toBe(Date.parse(cert.notAfter) - (89 * DAY) / 3);
  });
  it.each([
    ['no certificate, no order', {}, t0, { kind: 'order', why: 'missing' }],
    ['valid, not due', { cert }, t0, { kind: 'wait', untilMs: due, why: 'valid' }],
    ['valid, a ms before due', { cert }, due - 1, { kind: 'wait', untilMs: due, why: 'valid' }],
    ['due', { cert }, due, { kind: 'order', why: 'renewal' }],
    ['expired', { cert }, Date.parse(cert.notAfter), { kind: 'order', why: 'expired' }],
    ['failed, backing off, no certificate', { order: { status: 'failed', nextAttemptAt: '2026-01-01T01:00:00Z' } }, t0, { kind: 'wait', untilMs: t0 + 3600_000, why: 'backoff' }],
    ['failed, backoff over', { order: { status: 'failed', nextAttemptAt: '2026-01-01T01:00:00Z' } }, t0 + 3600_000, { kind: 'order', why: 'retry' }],
    ['renewal failed, backing off', { cert, order: { status: 'failed', nextAttemptAt: new Date(due + 3600_000).toISOString() } }, due + 1, { kind: 'wait', untilMs: due + 3600_000, why: 'backoff' }],
    ['a pending order left by a crash, certificate valid: not ordered again', { cert, order: { status: 'pending' } }, t0, { kind: 'wait', untilMs: due, why: 'valid' }],
    ['a pending order left by a crash, no certificate: ordered', { order: { status: 'pending' } }, t0, { kind: 'order', why: 'missing' }],
  ] as const)('%s', (_name, input, nowMs, want) => {
    expect(decideOrder({ ...input, nowMs } as Parameters<typeof decideOrder>[0])).toEqual(want);
  });
  it('backs off for hours against a real CA, doubling up to a day', () => {
    expect([1, 2, 3, 4, 5, 6, 10].map((n) => retryDelayMs(ACME_RETRY, n) / 3600_000)).toEqual([1, 2, 4, 8, 16, 24, 24]);
  });
});
