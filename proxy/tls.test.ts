import https from 'node:https';
import tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { issueCert, makeCa, type TestCa, type TestCert } from '../test/certs.js';
import type { Route } from './table.js';
import { rawRequest, testScope } from './test-support.js';
import { acmeChallengeToken, httpsLocation, pickCertificate } from './tls.js';

const { defer, backend, proxyWith } = testScope(afterEach);

describe('pickCertificate (SNI)', () => {
  const certs = new Map([
    ['web.example.com', 'exact'],
    ['*.example.com', 'wild'],
    ['example.org', 'org'],
  ]);
  it.each([
    ['web.example.com', 'exact'],
    ['WEB.Example.COM.', 'exact'],
    ['api.example.com', 'wild'],
    ['example.org', 'org'],
  ])('%s → %s', (name, want) => expect(pickCertificate(certs, name)).toBe(want));
  it.each([['a.b.example.com'], ['example.com'], ['other.net'], [''], [undefined], ['.'], ['x.']])('%s → none', (name) => {
    expect(pickCertificate(certs, name)).toBeUndefined();
  });
});

describe('acmeChallengeToken', () => {
  it.each([
    ['/.well-known/acme-challenge/abc_DEF-123', 'abc_DEF-123'],
    ['/.well-known/acme-challenge/tok?x=1', 'tok'],
  ])('%s → %s', (path, token) => expect(acmeChallengeToken(path)).toBe(token));
  it.each([['/'], ['/.well-known/acme-challenge/'], ['/.well-known/acme-challenge/a/b'], ['/.well-known/acme-challenge/a%2e'], ['/x/.well-known/acme-challenge/t'], [`/.well-known/acme-challenge/${'a'.repeat(129)}`]])(
    '%s → null',
    (path) => expect(acmeChallengeToken(path)).toBeNull(),
  );
});

describe('httpsLocation (308)', () => {
  it.each([
    ['web.example.com', '/a?b=1', 443, 'https://web.example.com/a?b=1'],
    ['web.example.com:8080', '/', 8443, 'https://web.example.com:8443/'],
    ['WEB.example.com', '/x', null, 'https://web.example.com/x'],
  ] as const)('%s %s (tls port %s) → %s', (host, path, port, want) => expect(httpsLocation(host, path, port)).toBe(want));
});

let ca: TestCa;
let webCert: TestCert;
let wildCert: TestCert;
beforeAll(async () => {
  ca = await makeCa();
  webCert = await issueCert(ca, ['web.test']);
  wildCert = await issueCert(ca, ['*.apps.test']);
});

const route = (host: string, address: string, tlsMode?: 'acme' | 'manual', service = 'web'): Route => ({
  service,
  host,
  path: '/',
  backends: [{ instance: `${service}-1`, address }],
  ...(tlsMode ? { tls: tlsMode } : {}),
});

interface Got {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  peerCn?: string;
}

/** GET over TLS to 127.0.0.1:port with SNI `servername` (trusting only the test CA). */
function tlsGet(port: number, servername: string, path = '/', agent: https.Agent | false = false): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path, servername, headers: { host: servername }, ca: ca.certPem, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const peer = (res.socket as tls.TLSSocket).getPeerCertificate?.();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), ...(peer?.subject ? { peerCn: String(peer.subject.CN) } : {}) });
      });
    });
    req.on('error', reject);
  });
}

async function tlsProxy(routes: Route[]) {
  const p = await proxyWith(routes);
  const bound = await p.proxy.listenTls('127.0.0.1', 0);
  return { ...p, tlsPort: bound.port };
}

describe('the proxy over TLS', () => {
  it('serves a TLS route with the certificate SNI names, tells the backend https, and swaps certificates without a restart', async () => {
    const b = await backend('b', (req, res) => res.end(JSON.stringify({ proto: req.headers['x-forwarded-proto'], host: req.headers.host })));
    const { proxy, tlsPort } = await tlsProxy([route('web.test', b.address, 'manual'), route('a.apps.test', b.address, 'manual', 'apps')]);
    proxy.setEdge({ certs: [{ host: 'web.test', cert: webCert.certPem, key: webCert.keyPem }, { host: '*.apps.test', cert: wildCert.certPem, key: wildCert.keyPem }], challenges: [] });
    const r = await tlsGet(tlsPort, 'web.test');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ proto: 'https', host: 'web.test' });
    expect(r.peerCn).toBe('web.test');
    const w = await tlsGet(tlsPort, 'a.apps.test');
    expect(w.status).toBe(200);
    expect(w.peerCn).toBe('*.apps.test');

    // A new certificate for the host is served from the next handshake on.
    const renewed = await issueCert(ca, ['web.test', 'www.web.test']);
    proxy.setEdge({ certs: [{ host: 'web.test', cert: renewed.certPem, key: renewed.keyPem }], challenges: [] });
    const again = await new Promise<tls.PeerCertificate>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: tlsPort, servername: 'web.test', ca: ca.certPem }, () => {
        resolve(s.getPeerCertificate());
        s.end();
      });
      s.on('error', reject);
    });
    expect(again.subjectaltname).toContain('www.web.test');
    expect(proxy.certificateHosts()).toEqual(['web.test']);
    // The wildcard left with the last edge state: its handshake is refused now.
    await expect(tlsGet(tlsPort, 'a.apps.test')).rejects.toThrow();
  });

  it('refuses the handshake for an unknown SNI name or none, and keeps serving the others', async () => {
    const b = await backend('b');
    const { proxy, tlsPort } = await tlsProxy([route('web.test', b.address, 'acme')]);
    proxy.setEdge({ certs: [{ host: 'web.test', cert: webCert.certPem, key: webCert.keyPem }], challenges: [] });
    await expect(tlsGet(tlsPort, 'other.test')).rejects.toThrow();
    // No SNI at all (a client dialling the IP).
    await expect(
      new Promise((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port: tlsPort, rejectUnauthorized: false }, () => resolve(s));
        s.on('error', reject);
      }),
    ).rejects.toThrow();
    // Garbage instead of a ClientHello.
    const raw = await rawRequest(tlsPort, 'GET / HTTP/1.1\r\nHost: web.test\r\n\r\n', { waitMs: 2_000 });
    expect(raw.closed).toBe(true);
    expect((await tlsGet(tlsPort, 'web.test')).status).toBe(200);
  });

  it('a certificate that does not load is left out, the others served', async () => {
    const b = await backend('b');
    const { proxy, tlsPort } = await tlsProxy([route('web.test', b.address, 'acme')]);
    proxy.setEdge({ certs: [{ host: 'bad.test', cert: 'not a pem', key: 'nope' }, { host: 'web.test', cert: webCert.certPem, key: webCert.keyPem }], challenges: [] });
    expect(proxy.certificateHosts()).toEqual(['web.test']);
    expect((await tlsGet(tlsPort, 'web.test')).status).toBe(200);
  });

  it('plain HTTP to a TLS route gets 308 to https at the TLS port; a plain route and ACME challenges are served', async () => {
    const b = await backend('b', (req, res) => res.end(`backend ${req.url} ${req.headers['x-forwarded-proto']}`));
    const { proxy, port, tlsPort } = await tlsProxy([route('web.test', b.address, 'acme'), route('plain.test', b.address, undefined, 'plain')]);
    proxy.setEdge({ certs: [], challenges: [{ token: 'tok-1', keyAuthorization: 'tok-1.thumb' }] });
    const redirect = await rawRequest(port, 'GET /a/b?c=1 HTTP/1.1\r\nHost: web.test:80\r\n\r\n', { waitMs: 500 });
    expect(redirect.status).toBe(308);
    expect(redirect.text).toMatch(new RegExp(`\\r\\nlocation: https://web.test:${tlsPort}/a/b\\?c=1\\r\\n`, 'i'));
    expect(b.hits).toBe(0);
    const post = await rawRequest(port, 'POST /form HTTP/1.1\r\nHost: web.test\r\nContent-Length: 3\r\n\r\nabc', { waitMs: 500 });
    expect(post.status).toBe(308);

    const plain = await rawRequest(port, 'GET /x HTTP/1.1\r\nHost: plain.test\r\nConnection: close\r\n\r\n');
    expect(plain.status).toBe(200);
    expect(plain.text).toContain('backend /x http');

    // The challenge being answered, for any host (the CA asks with the host it validates and a port).
    const challenge = await rawRequest(port, 'GET /.well-known/acme-challenge/tok-1 HTTP/1.1\r\nHost: web.test:5002\r\nConnection: close\r\n\r\n');
    expect(challenge.status).toBe(200);
    expect(challenge.text.endsWith('\r\n\r\ntok-1.thumb')).toBe(true);
    // An unknown token on a TLS route is not redirected: it reaches the backend (its own ACME client, if any).
    const other = await rawRequest(port, 'GET /.well-known/acme-challenge/zzz HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n');
    expect(other.status).toBe(200);
    expect(other.text).toContain('backend /.well-known/acme-challenge/zzz');
  });

  it('passes a WebSocket over TLS with X-Forwarded-Proto https; a plain upgrade to a TLS route gets 308', async () => {
    const b = await backend('ws');
    const wss = new WebSocketServer({ server: b.server });
    const protos: unknown[] = [];
    wss.on('connection', (ws, req) => {
      protos.push(req.headers['x-forwarded-proto']);
      ws.on('message', (d) => ws.send(d));
    });
    defer(() => new Promise<void>((r) => wss.close(() => r())));
    const { proxy, port, tlsPort } = await tlsProxy([route('web.test', b.address, 'manual')]);
    proxy.setEdge({ certs: [{ host: 'web.test', cert: webCert.certPem, key: webCert.keyPem }], challenges: [] });
    const wsOptions: WebSocket.ClientOptions & tls.ConnectionOptions = { servername: 'web.test', headers: { host: 'web.test' }, ca: ca.certPem };
    const ws = new WebSocket(`wss://127.0.0.1:${tlsPort}/ws`, wsOptions);
    defer(() => ws.terminate());
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const echoed = new Promise<string>((resolve) => ws.once('message', (d) => resolve(String(d))));
    ws.send('over tls');
    expect(await echoed).toBe('over tls');
    expect(protos).toEqual(['https']);

    const plain = await rawRequest(port, 'GET /ws HTTP/1.1\r\nHost: web.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n', { waitMs: 1_000 });
    expect(plain.status).toBe(308);
    expect(plain.text).toMatch(new RegExp(`location: https://web.test:${tlsPort}/ws`, 'i'));
  });

  it('keeps a TLS connection alive across requests', async () => {
    const b = await backend('b');
    const { proxy, tlsPort } = await tlsProxy([route('web.test', b.address, 'manual')]);
    proxy.setEdge({ certs: [{ host: 'web.test', cert: webCert.certPem, key: webCert.keyPem }], challenges: [] });
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    defer(() => agent.destroy());
    const sockets = new Set<unknown>();
    for (let i = 0; i < 5; i++) {
      const r = await new Promise<number>((resolve, reject) => {
        const req = https.get({ host: '127.0.0.1', port: tlsPort, servername: 'web.test', headers: { host: 'web.test' }, ca: ca.certPem, agent }, (res) => {
          sockets.add(res.socket);
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
      });
      expect(r).toBe(200);
    }
    expect(sockets.size).toBe(1);
  });
});
