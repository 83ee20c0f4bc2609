import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client, resolveApis, resolveCaCert, tlsFailure } from './client.js';
import { CliError, EXIT } from './exit.js';

const PEM = (tag: string) => `-----BEGIN CERTIFICATE-----\n${tag}\n-----END CERTIFICATE-----\n`;
let dir: string;
const savedEnv = process.env.ORCA_CA_CERT;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'orca-client-ca-'));
  delete process.env.ORCA_CA_CERT;
});
afterEach(async () => {
  if (savedEnv === undefined) delete process.env.ORCA_CA_CERT;
  else process.env.ORCA_CA_CERT = savedEnv;
  await rm(dir, { recursive: true, force: true });
});

describe('resolveCaCert', () => {
  it('takes --ca-cert, else $ORCA_CA_CERT, else <data-dir>/tls/ca.crt, else nothing', async () => {
    const dataDir = join(dir, 'data');
    expect(resolveCaCert({ dataDir })).toBeUndefined();
    await mkdir(join(dataDir, 'tls'), { recursive: true });
    await writeFile(join(dataDir, 'tls/ca.crt'), PEM('datadir'));
    await writeFile(join(dir, 'env.crt'), PEM('env'));
    await writeFile(join(dir, 'flag.crt'), PEM('flag'));
    expect(resolveCaCert({ dataDir })?.pem).toContain('datadir');
    process.env.ORCA_CA_CERT = join(dir, 'env.crt');
    expect(resolveCaCert({ dataDir })?.pem).toContain('env');
    expect(resolveCaCert({ dataDir, caCert: join(dir, 'flag.crt') })).toEqual({ pem: PEM('flag'), path: join(dir, 'flag.crt') });
  });

  it('a named file that is missing or holds no certificate is a usage error (exit 2)', async () => {
    await writeFile(join(dir, 'junk.crt'), 'hello');
    for (const caCert of [join(dir, 'missing.crt'), join(dir, 'junk.crt')]) {
      let err: unknown;
      try {
        resolveCaCert({ dataDir: dir, caCert });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CliError);
      expect((err as CliError).exitCode).toBe(EXIT.invalid);
      expect((err as CliError).message).toMatch(/^--ca-cert: /);
    }
  });
});

describe('tlsFailure', () => {
  const err = (code: string, message = 'x') => Object.assign(new Error(message), { code });
  it('a certificate that cannot be verified is exit 1 with what to do', () => {
    for (const code of ['SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_HAS_EXPIRED', 'DEPTH_ZERO_SELF_SIGNED_CERT']) {
      const e = tlsFailure(err(code), 'https://192.0.2.1:6880', undefined);
      expect(e?.exitCode).toBe(EXIT.failed);
      expect(e?.message).toMatch(/cannot verify the TLS certificate of the Orca server at https:\/\/192\.0\.2\.1:6880.*--ca-cert/);
    }
    expect(tlsFailure(err('SELF_SIGNED_CERT_IN_CHAIN'), 'https://h:1', { path: '/etc/orca/ca.crt' })?.message).toContain('checked against /etc/orca/ca.crt');
  });

  it('a server that speaks no TLS is exit 1 with a hint; a refused connection is not about TLS', () => {
    expect(tlsFailure(err('EPROTO', 'wrong version number'), 'https://h:1', undefined)?.message).toMatch(/use http:\/\//);
    expect(tlsFailure(err('ECONNREFUSED'), 'https://h:1', undefined)).toBeNull();
  });
});

describe('Client with several servers (SPEC §3.11)', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  });
  const serve = async (answer: (n: number) => { status: number; body: unknown }) => {
    let n = 0;
    const s = createServer((req, res) => {
      req.resume();
      const a = answer(n++);
      res.writeHead(a.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(a.body));
    });
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, count: () => n };
  };
  /** A port nothing listens on. */
  const closedPort = async () => {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as AddressInfo).port;
    await new Promise((r) => s.close(r));
    return `http://127.0.0.1:${port}`;
  };
  const exitOf = async (p: Promise<unknown>) => p.then(() => 0, (e: unknown) => (e instanceof CliError ? e.exitCode : -1));

  it('takes a comma-separated list from --api or ORCA_API; a bad entry is exit 2 naming it', () => {
    expect(resolveApis({ api: 'http://a:1, https://b:2/ ,http://a:1' })).toEqual(['http://a:1', 'https://b:2']);
    expect(() => resolveApis({ api: 'http://a:1,ftp://b' })).toThrow(/--api: "ftp:\/\/b" is not an http/);
    expect(() => resolveApis({ api: 'http://a:1,nope' })).toThrow(/"nope" is not a URL/);
    expect(() => resolveApis({ api: ',' })).toThrow(/no server URL/);
  });

  it('passes over a server that cannot be reached and stays with the one that answered', async () => {
    const down = await closedPort();
    const up = await serve(() => ({ status: 200, body: { ok: true } }));
    const c = new Client({ api: `${down},${up.url}`, token: 't' });
    expect(await c.json('GET', '/v1/services')).toEqual({ ok: true });
    expect(c.api).toBe(up.url);
    await c.json('GET', '/v1/services');
    expect(up.count()).toBe(2);
  });

  it('one server that cannot be reached: exit 3 at once, as before', async () => {
    const t0 = Date.now();
    expect(await exitOf(new Client({ api: await closedPort(), token: 't' }).json('GET', '/x'))).toBe(EXIT.unreachable);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('retries a 503 ORCA_NOT_LEADER (a leader is being elected) until one answers; another 503 is not retried', async () => {
    const electing = await serve((n) => (n < 2 ? { status: 503, body: { error: 'ORCA_NOT_LEADER', message: 'no leader' } } : { status: 200, body: { done: n } }));
    expect(await new Client({ api: electing.url, token: 't' }).json('POST', '/v1/apply', {})).toEqual({ done: 2 });
    const quorumLost = await serve(() => ({ status: 503, body: { error: 'ORCA_STORE_UNAVAILABLE', message: 'etcd has no quorum' } }));
    expect(await exitOf(new Client({ api: quorumLost.url, token: 't' }).json('POST', '/v1/apply', {}))).toBe(EXIT.failed);
    expect(quorumLost.count()).toBe(1);
  });

  it('several servers, none reachable: keeps trying for retryMs, then exit 3', async () => {
    const t0 = Date.now();
    const c = new Client({ api: `${await closedPort()},${await closedPort()}`, token: 't', retryMs: 400 });
    expect(await exitOf(c.json('GET', '/x'))).toBe(EXIT.unreachable);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(200);
    expect(Date.now() - t0).toBeLessThan(2000);
  });
});
