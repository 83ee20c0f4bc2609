import { afterEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { request, type Server } from 'node:http';
import { ManualClock } from '../core/clock.js';
import { silentLogger } from '../core/log.js';
import { memoryStore } from '../store/index.js';
import { createApi } from './api.js';
import { ControlPlane } from './control-plane.js';
import { EventLog } from './event-log.js';
import type { NodeRegistry } from './node-registry.js';
import { MAX_SECRET_BYTES, SecretStore } from './secrets.js';

const TOKEN = 't0k3n';
const open: Array<() => void> = [];
afterEach(() => {
  for (const close of open.splice(0)) close();
});

async function api() {
  const store = memoryStore();
  await store.open();
  const log = silentLogger();
  const clock = new ManualClock();
  const events = new EventLog(store, log);
  const secrets = await SecretStore.open(store, randomBytes(32), '/data/cluster.key');
  const control = new ControlPlane({ store, clock, log, events, nodes: () => [], reschedule: () => undefined, secrets });
  const server: Server = createApi({ token: TOKEN, log, control, store, events, nodes: {} as NodeRegistry, isReady: () => true, clock });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  open.push(() => server.closeAllConnections(), () => server.close());
  const port = (server.address() as { port: number }).port;
  const call = (method: string, path: string, body?: string, token: string | null = TOKEN) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method, path, agent: false, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  return { call, control };
}

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

describe('API /v1/secrets', () => {
  it('sets, lists and removes a secret; answers never hold the value', async () => {
    const { call } = await api();
    const set = await call('PUT', '/v1/secrets/db-password', JSON.stringify({ value: b64('pw-RECOGNISABLE\n') }));
    expect(set.status).toBe(200);
    expect(JSON.parse(set.body)).toEqual({ name: 'db-password', version: 1, updated: '2026-01-01T00:00:00.000Z', change: 'created', rolled: [] });
    const ls = await call('GET', '/v1/secrets');
    expect(JSON.parse(ls.body)).toEqual({ secrets: [{ name: 'db-password', version: 1, updated: '2026-01-01T00:00:00.000Z', usedBy: [] }] });
    expect(set.body + ls.body).not.toContain('RECOGNISABLE');
    expect(set.body + ls.body).not.toContain(b64('pw-RECOGNISABLE\n').slice(0, 12));
    expect(await call('DELETE', '/v1/secrets/db-password')).toEqual({ status: 200, body: JSON.stringify({ removed: 'db-password' }) });
    expect((await call('DELETE', '/v1/secrets/db-password')).status).toBe(404);
  });

  it('needs the admin token', async () => {
    const { call } = await api();
    expect((await call('GET', '/v1/secrets', undefined, null)).status).toBe(401);
    expect((await call('PUT', '/v1/secrets/x', JSON.stringify({ value: b64('v') }), 'wrong')).status).toBe(401);
  });

  it('refuses bad names, bad values and oversized bodies with 4xx, storing nothing, quoting no value', async () => {
    const { call, control } = await api();
    const bad = [
      await call('PUT', '/v1/secrets/Bad_Name', JSON.stringify({ value: b64('v') })),
      await call('PUT', '/v1/secrets/x', JSON.stringify({ value: 'not base64 RECOGNISABLE!' })),
      await call('PUT', '/v1/secrets/x', JSON.stringify({ value: '' })),
      await call('PUT', '/v1/secrets/x', JSON.stringify({ value: 12 })),
      await call('PUT', '/v1/secrets/x', JSON.stringify({ value: b64(Buffer.alloc(MAX_SECRET_BYTES + 1, 1)) })),
      await call('PUT', '/v1/secrets/x', '[1]'),
    ];
    expect(bad.map((r) => r.status)).toEqual([400, 400, 400, 400, 400, 400]);
    expect(JSON.parse(bad[0]!.body).message).toContain('secret name: must be a DNS label');
    expect(JSON.parse(bad[4]!.body).message).toBe('value: larger than 64 KiB (65536 bytes)');
    expect(bad.map((r) => r.body).join('')).not.toContain('RECOGNISABLE');
    expect(await control.listSecrets()).toEqual([]);
    const max = await call('PUT', '/v1/secrets/x', JSON.stringify({ value: b64(Buffer.alloc(MAX_SECRET_BYTES, 1)) }));
    expect(max.status).toBe(200);
  });

  it('refuses a body larger than the largest value in base64: 413, or the connection cut while the client still sends', async () => {
    const { call, control } = await api();
    const r = await call('PUT', '/v1/secrets/x', 'x'.repeat(200_000)).catch((err: NodeJS.ErrnoException) => ({ status: err.code, body: '' }));
    expect([413, 'ECONNRESET', 'EPIPE']).toContain(r.status);
    expect(await control.listSecrets()).toEqual([]);
    expect((await call('GET', '/v1/secrets')).status).toBe(200);
  });

  it('answers 409 naming the services when the secret is in use, and 405 for another method', async () => {
    const { call, control } = await api();
    await call('PUT', '/v1/secrets/db', JSON.stringify({ value: b64('v') }));
    await control.apply([{ file: 'web.toml', text: '[[service]]\nname = "web"\nimage = "i"\nsecrets = ["db"]\n' }], false);
    const rm = await call('DELETE', '/v1/secrets/db');
    expect(rm.status).toBe(409);
    expect(JSON.parse(rm.body).message).toContain('secret "db" is used by service "web"');
    expect((await call('POST', '/v1/secrets/db', '{}')).status).toBe(405);
    expect((await call('DELETE', '/v1/secrets')).status).toBe(405);
  });
});
