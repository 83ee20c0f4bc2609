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
import { SecretStore } from './secrets.js';

const TOKEN = 't0k3n';
const open: Array<() => void> = [];
afterEach(() => {
  for (const close of open.splice(0)) close();
});

/** The API over a control plane with no node: nothing can move, so every rebalance is done at once. */
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
  const call = (body?: string, token: string | null = TOKEN, method = 'POST') =>
    new Promise<{ status: number; type: string | undefined; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method, path: '/v1/rebalance', agent: false, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body: text }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  return { call, control };
}

describe('API POST /v1/rebalance', () => {
  it('streams JSON Lines ending with done; nothing to do is done with 0 moves', async () => {
    const { call, control } = await api();
    await control.apply([{ file: 'web.toml', text: '[[service]]\nname = "web"\nimage = "img:1"\nreplicas = 2\n' }], false);
    for (const body of [undefined, '{}', JSON.stringify({ service: 'web' })]) {
      const r = await call(body);
      expect(r).toEqual({ status: 200, type: 'application/x-ndjson', body: JSON.stringify({ event: 'done', moves: 0, stay: [] }) + '\n' });
    }
  });

  it('an unknown service is 404 with its name, as orca status says it; bad bodies are 400; the token is needed', async () => {
    const { call } = await api();
    const r = await call(JSON.stringify({ service: 'nope' }));
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body)).toEqual({ error: 'ORCA_NOT_FOUND', message: 'service "nope" not found' });
    const long = await call(JSON.stringify({ service: 'x'.repeat(5000) }));
    expect(long.status).toBe(413);
    const longName = await call(JSON.stringify({ service: 'y'.repeat(300) }));
    expect(longName.status).toBe(404);
    expect(JSON.parse(longName.body).message.length).toBeLessThan(120);
    for (const bad of [JSON.stringify({ service: 7 }), JSON.stringify({ service: '' }), '[1]', 'not json']) {
      const b = await call(bad);
      expect(b.status, bad).toBe(400);
      expect(JSON.parse(b.body).error).toBe('ORCA_USAGE');
    }
    expect((await call('{}', null)).status).toBe(401);
    expect((await call(undefined, TOKEN, 'GET')).status).toBe(405);
  });
});
