/**
 * Abuse of a real `orca server`'s proxy port over raw sockets (SPEC §3.7): malformed targets, bad
 * encodings, duplicate Host, 10,000 headers, slow heads and bodies, idle connections, upgrades the
 * backend refuses. Each gets its 4xx or its connection closed; afterwards the server is alive,
 * still proxies, `orca status` works and the server answers its status request within a second.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { rawBody, rawRequest, type RawReply } from '../../proxy/test-support.js';
import { WS_ECHO_IMAGE } from '../images.js';
import { cleanup, cli, startServer, stopServer, testEnv, type ServerProcess } from './harness.js';

const HOST = 'echo.localhost';
const get = (target: string, headers = `Host: ${HOST}\r\n`) => `GET ${target} HTTP/1.1\r\n${headers}\r\n`;
const upgrade = (extra: string) => `GET / HTTP/1.1\r\nHost: ${HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n${extra}\r\n`;
const KEY = 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
const json = (r: RawReply): unknown => JSON.parse(rawBody(r));

describe('proxy abuse on a real server', () => {
  let env: { cluster: string; dataDir: string };
  let server: ServerProcess | undefined;
  let run: ReturnType<typeof cli>;
  let port: number;

  beforeAll(async () => {
    env = await testEnv('proxy-abuse');
    server = await startServer({ ...env, extra: ['--watchdog-interval', '60'] });
    run = cli(server, env.dataDir);
    port = Number(server.proxy!.split(':')[1]);
    const file = join(env.dataDir, 'echo.toml');
    await writeFile(file, `[[service]]\nname = "echo"\nimage = "${WS_ECHO_IMAGE}"\nport = 80\nstop_grace_secs = 0.5\n[service.route]\nhost = "${HOST}"\n`);
    const r = await run(['apply', '-f', file, '--wait', '--timeout', '60']);
    expect(r.code, r.stderr).toBe(0);
  }, 90_000);

  afterAll(async () => {
    await stopServer(server);
    await cleanup(env.cluster, env.dataDir);
  });

  it('answers malformed targets, bad encodings and duplicate or bad Host with 400', async () => {
    const cases: Array<[string, string]> = [
      [get('http://a:99999/'), 'bad host or port in request target'],
      [get(`http://${HOST}:123456/`), 'bad host or port in request target'],
      [get('/%zz'), 'bad percent-encoding in request target'],
      [get('/?q=%E'), 'bad percent-encoding in request target'],
      [get('/', `Host: ${HOST}\r\nHost: other.localhost\r\n`), 'more than one Host header'],
      [get('/', 'Host: a:99999\r\n'), 'bad Host header'],
      [get('*'), 'bad request target'],
    ];
    for (const [req, error] of cases) {
      const r = await rawRequest(port, req);
      expect([r.status, json(r)], req).toEqual([400, { error }]);
    }
    // Refused by the HTTP parser itself.
    expect((await rawRequest(port, '\x00\x01 garbage\r\n\r\n')).status).toBe(400);
    expect((await rawRequest(port, 'GET /a b HTTP/1.1\r\n\r\n')).status).toBe(400);
    expect((await rawRequest(port, 'GET / HTTP/1.1\r\n\r\n')).status).toBe(400); // no Host
    // An absolute-form target with a good authority is routed by it.
    const abs = await rawRequest(port, get(`http://${HOST}/`, 'Host: elsewhere\r\nConnection: close\r\n'));
    expect([abs.status, rawBody(abs).startsWith('ws-echo ')]).toEqual([200, true]);
  });

  it('answers 431 to 10,000 headers and to a 1 MB header value', async () => {
    expect((await rawRequest(port, get('/', `Host: ${HOST}\r\n${'a: b\r\n'.repeat(10_000)}`))).status).toBe(431);
    expect((await rawRequest(port, get('/', `Host: ${HOST}\r\nX-Big: ${'v'.repeat(1024 * 1024)}\r\n`))).status).toBe(431);
    expect((await rawRequest(port, get('/', `Host: ${HOST}\r\n${'a: b\r\n'.repeat(150)}`))).status).toBe(431);
  });

  it('relays the backend\'s refusal of an upgrade as a plain response and tunnels nothing', async () => {
    const noKey = await rawRequest(port, upgrade('Sec-WebSocket-Version: 13\r\n'));
    expect([noKey.status, rawBody(noKey), noKey.closed]).toEqual([400, 'bad websocket upgrade\n', true]);
    const version = await rawRequest(port, upgrade(`${KEY}Sec-WebSocket-Version: 99\r\n`));
    expect([version.status, rawBody(version), version.closed]).toEqual([426, 'unsupported websocket version\n', true]);
    const h2c = await rawRequest(port, `GET / HTTP/1.1\r\nHost: ${HOST}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n`);
    expect(h2c.status).toBe(400);
    // A good upgrade still goes through.
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { headers: { host: HOST } });
    const echoed = await new Promise<string>((resolve, reject) => {
      ws.once('open', () => ws.send('still here'));
      ws.once('message', (m) => resolve(m.toString()));
      ws.once('error', reject);
    });
    ws.close();
    expect(echoed).toBe('still here');
  });

  it('closes slow heads and idle connections, survives slow bodies, and serves others meanwhile', async () => {
    // Slowloris: a header line every 500 ms, for longer than the 10 s headers timeout.
    const slowHeads = Array.from({ length: 20 }, () =>
      rawRequest(port, ['GET / HTTP/1.1\r\n', ...Array.from({ length: 40 }, (_, i) => `x-${i}: v\r\n`)], { gapMs: 500, waitMs: 25_000 }),
    );
    // Connections that never send a byte.
    const idle = Array.from({ length: 20 }, () => rawRequest(port, [], { waitMs: 25_000 }));
    // Bodies trickling a byte every 200 ms.
    const slowBodies = Array.from({ length: 10 }, () =>
      rawRequest(port, [`POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 1000\r\n\r\n`, ...Array.from({ length: 60 }, () => 'x')], { gapMs: 200, waitMs: 25_000 }),
    );
    // Meanwhile everyone else is served, promptly.
    const slowest = await (async () => {
      let worst = 0;
      for (let i = 0; i < 20; i++) {
        const t0 = performance.now();
        const r = await rawRequest(port, get('/', `Host: ${HOST}\r\nConnection: close\r\n`), { waitMs: 5_000 });
        worst = Math.max(worst, performance.now() - t0);
        expect(r.status).toBe(200);
      }
      return worst;
    })();
    expect(slowest).toBeLessThan(2_000);
    const t0 = performance.now();
    const heads = await Promise.all(slowHeads);
    expect(heads.map((r) => [r.status, r.closed])).toEqual(heads.map(() => [408, true]));
    const idles = await Promise.all(idle);
    expect(idles.every((r) => r.closed)).toBe(true);
    expect(performance.now() - t0).toBeLessThan(20_000);
    // ws-echo answers without reading a body: the proxy relays that and closes the connection.
    const bodies = await Promise.all(slowBodies);
    for (const r of bodies) expect([r.closed, [200, 408].includes(r.status)]).toEqual([true, true]);
  }, 60_000);

  it('is alive afterwards: the process runs, it proxies, and orca status answers within 1 s', async () => {
    expect(server!.child.exitCode).toBeNull();
    const r = await rawRequest(port, get('/', `Host: ${HOST}\r\nConnection: close\r\n`));
    expect(r.status).toBe(200);
    const status = await run(['status', '-o', 'json']);
    expect(status.code, status.stderr).toBe(0);
    // The server's own answer time: the CLI's Node start-up alone can pass 1 s on a loaded machine.
    const token = (await readFile(join(env.dataDir, 'cluster.token'), 'utf8')).trim();
    const t0 = performance.now();
    const api = await fetch(`${server!.api}/v1/status`, { headers: { authorization: `Bearer ${token}` } });
    await api.text();
    expect(api.status).toBe(200);
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(server!.logs()).not.toMatch(/uncaught|TypeError|RangeError/i);
  });
});
