import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { ManualClock } from '../core/clock.js';
import { createLogger } from '../core/log.js';
import { memoryStore } from '../store/index.js';
import { loadServerConfig, type ServerFlags } from './config.js';
import { startServer, type RunningServer } from './server.js';

const running: RunningServer[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of running.splice(0)) await s.stop();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** A server without a local agent on a memory store: only the API and its listener matter here. */
async function boot(flags: ServerFlags = {}) {
  const dataDir = await mkdtemp(join(tmpdir(), 'orca-api-tls-'));
  dirs.push(dataDir);
  const cfg = await loadServerConfig({ dataDir, nodeName: 'n1', apiListen: '127.0.0.1:0', proxyListen: '127.0.0.1:0', clusterId: 'unit', localAgent: false, ...flags });
  if (!cfg.ok) throw new Error(cfg.errors.join());
  let logText = '';
  const sink = new Writable({ write: (c, _e, cb) => ((logText += c), cb()) });
  const server = await startServer(cfg.value, { log: createLogger({ destination: sink, pretty: false }), clock: new ManualClock(Date.now()), openStore: async () => {
    const s = memoryStore();
    await s.open();
    return s;
  } });
  running.push(server);
  await server.ready();
  return { server, dataDir, logs: () => logText };
}

function get(url: string, opts: { ca?: string } = {}): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, { ...opts });
  return new Promise((resolve, reject) => {
    req.on('response', (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the API over TLS', () => {
  it('stays plaintext on loopback by default, and still makes the cluster CA', async () => {
    const { server, dataDir } = await boot();
    expect(server.apiUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await get(`${server.apiUrl}/healthz`)).status).toBe(200);
    expect(await readFile(join(dataDir, 'tls/ca.crt'), 'utf8')).toContain('BEGIN CERTIFICATE');
  });

  it('with --tls serves https (apiUrl says so) that verifies against the data directory CA, for 127.0.0.1 and localhost', async () => {
    const { server, dataDir } = await boot({ tls: true });
    expect(server.apiUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const ca = await readFile(join(dataDir, 'tls/ca.crt'), 'utf8');
    expect(await get(`${server.apiUrl}/healthz`, { ca })).toMatchObject({ status: 200 });
    expect(await get(server.apiUrl.replace('127.0.0.1', 'localhost') + '/healthz', { ca })).toMatchObject({ status: 200 });
    // Without the CA, Node's default roots do not know it.
    await expect(get(`${server.apiUrl}/healthz`)).rejects.toMatchObject({ code: 'SELF_SIGNED_CERT_IN_CHAIN' });
  });

  it('answers a plaintext HTTP request on the TLS port with a 400 that says to use https, and keeps serving', async () => {
    const { server, dataDir } = await boot({ tls: true });
    const ca = await readFile(join(dataDir, 'tls/ca.crt'), 'utf8');
    const plain = await get(server.apiUrl.replace('https:', 'http:') + '/v1/status');
    expect(plain.status).toBe(400);
    expect(JSON.parse(plain.body).message).toMatch(/this port speaks TLS: use https:\/\//);
    // Bytes that are neither TLS nor HTTP: the connection is closed, nothing else happens.
    const port = Number(new URL(server.apiUrl).port);
    await new Promise<void>((resolve) => {
      const s = connect(port, '127.0.0.1', () => s.write(Buffer.from('\x00\x01garbage\xff'.repeat(50), 'latin1')));
      s.on('error', () => undefined);
      s.on('close', () => resolve());
      s.resume();
    });
    expect(await get(`${server.apiUrl}/healthz`, { ca })).toMatchObject({ status: 200 });
  });

  it('the agent endpoint is on the TLS port too: a WebSocket upgrade without a token is refused 401 over TLS', async () => {
    const { server, dataDir } = await boot({ tls: true });
    const ca = await readFile(join(dataDir, 'tls/ca.crt'), 'utf8');
    const { WebSocket } = await import('ws');
    const status = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(server.apiUrl.replace('https:', 'wss:') + '/v1/agent', { ca });
      ws.on('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.on('error', reject);
    });
    expect(status).toBe(401);
  });
});
