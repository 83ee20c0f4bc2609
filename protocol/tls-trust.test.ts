import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureClusterTls, serverNames, type ClusterTls } from '../server/cluster-tls.js';
import { caFingerprint, fetchPinnedCa, matchPinnedChain, TrustAnchor } from './tls-trust.js';

const der = (pem: string) => new X509Certificate(pem).raw;
const leafOf = (t: ClusterTls) => t.chainPem.slice(0, t.chainPem.indexOf('-----END CERTIFICATE-----') + 25);

/** Two clusters whose CAs have the same subject (same cluster id): only their keys differ. */
let one: ClusterTls;
let two: ClusterTls;
const dirs: string[] = [];
beforeAll(async () => {
  const names = serverNames({ advertise: '127.0.0.1', apiHost: '127.0.0.1', sans: [] });
  for (const i of [1, 2]) {
    const d = await mkdtemp(join(tmpdir(), `orca-pin-${i}-`));
    dirs.push(d);
    const t = await ensureClusterTls(d, { names, clusterId: 'same', commonName: 'n1', nowMs: Date.now() });
    if (i === 1) one = t;
    else two = t;
  }
  expect(new X509Certificate(one.caPem).subject).toBe(new X509Certificate(two.caPem).subject);
});
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('caFingerprint', () => {
  it('is the sha256 of the CA certificate DER, hex; the same whatever the PEM wrapping', () => {
    const fp = caFingerprint(one.caPem);
    expect(fp).toMatch(/^[0-9a-f]{64}$/);
    expect(caFingerprint(Buffer.from(`\n${one.caPem}\n`))).toBe(fp);
    expect(caFingerprint(two.caPem)).not.toBe(fp);
  });
});

describe('matchPinnedChain', () => {
  it('accepts the chain whose CA has the pinned fingerprint and signed the leaf, and returns that CA', () => {
    const r = matchPinnedChain([der(leafOf(one)), der(one.caPem)], caFingerprint(one.caPem).toUpperCase());
    expect(r).toEqual({ ok: true, value: new X509Certificate(one.caPem).toString() });
  });

  it('refuses another CA with the same subject', () => {
    const r = matchPinnedChain([der(leafOf(two)), der(two.caPem)], caFingerprint(one.caPem));
    expect(r.ok).toBe(false);
    expect(!r.ok && r.errors[0]).toMatch(/no CA with the fingerprint/);
  });

  it('refuses an impostor that presents the genuine (public) CA certificate beside a leaf another CA signed', () => {
    const r = matchPinnedChain([der(leafOf(two)), der(one.caPem)], caFingerprint(one.caPem));
    expect(r.ok).toBe(false);
    expect(!r.ok && r.errors[0]).toMatch(/not signed by the CA/);
  });

  it('refuses a chain without its CA, a leaf posing as the CA, and a malformed pin', () => {
    expect(matchPinnedChain([der(leafOf(one))], caFingerprint(one.caPem)).ok).toBe(false);
    expect(matchPinnedChain([der(leafOf(one)), der(leafOf(one))], caFingerprint(leafOf(one))).ok).toBe(false);
    expect(matchPinnedChain([], caFingerprint(one.caPem)).ok).toBe(false);
    expect(matchPinnedChain([der(leafOf(one)), der(one.caPem)], 'abc').ok).toBe(false);
  });
});

describe('fetchPinnedCa and TrustAnchor over a real TLS handshake', () => {
  const servers: Server[] = [];
  let requests = 0;
  const serve = async (cert: string, key: string): Promise<URL> => {
    const s = createServer({ cert, key }, (_req, res) => {
      requests++;
      res.end('ok');
    });
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    return new URL(`https://127.0.0.1:${(s.address() as AddressInfo).port}/`);
  };
  afterAll(async () => {
    for (const s of servers) await new Promise((r) => s.close(r));
  });
  const get = (url: URL, ca: string | undefined) =>
    new Promise<number>((resolve, reject) => {
      request(url, { ca }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on('error', reject)
        .end();
    });

  it('learns the right CA from the server and then verifies the server with it', async () => {
    const url = await serve(one.chainPem, one.keyPem);
    const anchor = new TrustAnchor({ caFingerprint: caFingerprint(one.caPem) });
    const ca = await anchor.ca(url);
    expect(ca && caFingerprint(ca)).toBe(caFingerprint(one.caPem));
    expect(await get(url, ca)).toBe(200);
  });

  it('refuses a server of another CA with the same subject, and one that shows the genuine CA beside its own leaf, before sending it a byte', async () => {
    requests = 0;
    const pin = caFingerprint(one.caPem);
    const other = await serve(two.chainPem, two.keyPem);
    await expect(fetchPinnedCa(other, pin)).rejects.toThrow(/no CA with the fingerprint/);
    const impostor = await serve(`${leafOf(two)}\n${one.caPem}`, two.keyPem);
    // Node links a chain by issuer and key identifiers, so the genuine CA may not even show up in it;
    // either way it is refused (matchPinnedChain's own signature check is tested above).
    await expect(new TrustAnchor({ caFingerprint: pin }).ca(impostor)).rejects.toThrow(/no CA with the fingerprint|not signed by the CA/);
    // And with the genuine CA given outright, Node's own verification refuses the impostor too.
    await expect(get(impostor, one.caPem)).rejects.toThrow();
    expect(requests).toBe(0);
  });

  it('gives the PEM as it is, and nothing for a plaintext URL', async () => {
    const anchor = new TrustAnchor({ caPem: one.caPem });
    expect(await anchor.ca(new URL('wss://127.0.0.1:1/v1/agent'))).toBe(one.caPem);
    expect(await anchor.ca(new URL('ws://127.0.0.1:1/v1/agent'))).toBeUndefined();
    expect(await new TrustAnchor(undefined).ca(new URL('https://127.0.0.1:1/'))).toBeUndefined();
  });
});
