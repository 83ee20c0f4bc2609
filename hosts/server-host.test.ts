import { PROTOCOL_VERSION } from '../protocol/messages.js';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { ManualClock, flushMicrotasks, seededRng } from '../core/clock.js';
import { createLogger } from '../core/log.js';
import { FakeRuntime } from '../runtime/fake-runtime.js';
import { memoryStore } from '../store/index.js';
import { loadServerConfig } from '../server/config.js';
import { startServerHost, type RunningServerHost } from './server-host.js';
import { TempDirs } from '../test/tmp.js';

const temp = new TempDirs();
afterAll(() => temp.removeAll());

const WEB = '[[service]]\nname = "web"\nimage = "orca-test/busybox:1"\nreplicas = 2\n';

const running: RunningServerHost[] = [];

/** Lets queued I/O callbacks run (the embedded agent's channel delivers on setImmediate). */
const settle = () => flushMicrotasks(20);
/** Polls (on I/O turns, not timers) until fn holds; fails after many turns. */
async function until(fn: () => Promise<boolean>, turns = 500): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (await fn()) return;
    await settle();
  }
  throw new Error('condition not reached');
}
afterEach(async () => {
  for (const s of running.splice(0)) await s.stop();
});

async function boot() {
  const dataDir = await temp.make('orca-server-test-');
  const cfg = await loadServerConfig({ dataDir, nodeName: 'n1', apiListen: '127.0.0.1:0', clusterId: 'unit' });
  if (!cfg.ok) throw new Error(cfg.errors.join());
  const clock = new ManualClock();
  const rt = new FakeRuntime(clock);
  rt.addImage('orca-test/busybox:1', { cmd: ['sleep', '3600'] });
  let logText = '';
  const sink = new Writable({ write: (c, _e, cb) => ((logText += c), cb()) });
  const stores = new Map<string, ReturnType<typeof memoryStore>>();
  const server = await startServerHost(cfg.value, {
    log: createLogger({ destination: sink, pretty: false }),
    runtime: rt,
    clock,
    rng: seededRng(7),
    openStore: async (path) => {
      const s = stores.get(path) ?? memoryStore();
      stores.set(path, s);
      await s.open();
      return s;
    },
  });
  running.push(server);
  await server.ready();
  const call = async (method: string, path: string, body?: unknown, token: string | null = server.token) => {
    const res = await fetch(server.apiUrl + path, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json().catch(() => null)) as any };
  };
  return { server, rt, call, dataDir, logs: () => logText };
}

describe('server API (FakeRuntime, memory store)', () => {
  it('answers /healthz without a token once ready', async () => {
    const { call } = await boot();
    expect(await call('GET', '/healthz', undefined, null)).toMatchObject({ status: 200 });
  });

  it('refuses every other call without the right token, and never logs the token', async () => {
    const { call, logs } = await boot();
    expect((await call('GET', '/v1/status', undefined, null)).status).toBe(401);
    expect((await call('GET', '/v1/status', undefined, 'wrong-token-xyz')).status).toBe(401);
    expect(logs()).toContain('unauthorized API request');
    expect(logs()).not.toContain('wrong-token-xyz');
  });

  it('creates the token file with mode 0600', async () => {
    const { dataDir, server } = await boot();
    const st = await stat(join(dataDir, 'cluster.token'));
    expect(st.mode & 0o777).toBe(0o600);
    expect(server.token).toMatch(/^[0-9a-f]{64}$/);
  });

  it('dry-run reports and stores nothing; apply stores and converges', async () => {
    const { call, server } = await boot();
    const dry = await call('POST', '/v1/apply', { files: [{ file: 'web.toml', text: WEB }], dryRun: true });
    expect(dry).toMatchObject({ status: 200, body: { results: [{ service: 'web', action: 'created' }] } });
    expect((await call('GET', '/v1/status')).body.services).toEqual([]);
    const real = await call('POST', '/v1/apply', { files: [{ file: 'web.toml', text: WEB }] });
    expect(real.body.results).toEqual([{ service: 'web', action: 'created', revision: 1 }]);
    await until(async () => (await call('GET', '/v1/status?service=web')).body.services[0]?.state === 'healthy');
    const st = await call('GET', '/v1/status?service=web');
    expect(st.body.services[0]).toMatchObject({ name: 'web', state: 'healthy', replicas: { desired: 2, running: 2, ready: 2 } });
    const again = await call('POST', '/v1/apply', { files: [{ file: 'web.toml', text: WEB }] });
    expect(again.body.results).toEqual([{ service: 'web', action: 'unchanged', revision: 1 }]);
  });

  it('a bad manifest is a 400 listing every error, and nothing is stored', async () => {
    const { call } = await boot();
    const bad = await call('POST', '/v1/apply', {
      files: [
        { file: 'ok.toml', text: WEB },
        { file: 'bad.toml', text: '[[service]]\nname = "x"\nimage = "i"\nreplicas = "two"\nport = 0\n' },
      ],
    });
    expect(bad.status).toBe(400);
    expect(bad.body.errors).toHaveLength(2);
    expect(bad.body.errors.join('\n')).toMatch(/bad\.toml: service "x": replicas/);
    expect((await call('GET', '/v1/status')).body.services).toEqual([]);
  });

  it('records every action in the reconciliation log', async () => {
    const { call, server } = await boot();
    await call('POST', '/v1/apply', { files: [{ file: 'web.toml', text: WEB }] });
    await until(async () => (await call('GET', '/v1/status?service=web')).body.services[0]?.state === 'healthy');
    await settle();
    const res = await fetch(`${server.apiUrl}/v1/events?service=web`, { headers: { authorization: `Bearer ${server.token}` } });
    const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.filter((e) => e.action === 'container.create')).toHaveLength(2);
    expect(Object.keys(lines[0]).sort()).toEqual(['action', 'durationMs', 'instance', 'node', 'outcome', 'reason', 'reconciler', 'service', 'time']);
  });

  it('deletes a service, keeps its history, and continues its revisions when it returns', async () => {
    const { call, server, rt } = await boot();
    await call('POST', '/v1/apply', { files: [{ file: 'web.toml', text: WEB }] });
    await until(async () => (await call('GET', '/v1/status?service=web')).body.services[0]?.state === 'healthy');
    expect((await call('POST', '/v1/delete', { services: ['web'] })).status).toBe(200);
    await until(async () => (await rt.list({ 'orca.cluster': 'unit' })).length === 0);
    expect((await call('POST', '/v1/delete', { services: ['web'] })).status).toBe(404);
    const h = await call('GET', '/v1/services/web/history');
    expect(h.body).toMatchObject({ current: null, revisions: [{ revision: 1 }] });
    const back = await call('POST', '/v1/apply', { files: [{ file: 'web.toml', text: WEB }] });
    expect(back.body.results).toEqual([{ service: 'web', action: 'created', revision: 2 }]);
  });

  it('lists its node', async () => {
    const { call, server } = await boot();
    await call('POST', '/v1/apply', { files: [{ file: 'web.toml', text: WEB }] });
    await until(async () => (await call('GET', '/v1/status?service=web')).body.services[0]?.state === 'healthy');
    const n = await call('GET', '/v1/nodes');
    expect(n.body.nodes).toEqual([{ name: 'n1', state: 'ready', address: '127.0.0.1', lastHeartbeat: expect.any(String), protocol: PROTOCOL_VERSION, instances: 2 }]);
  });

  it('an OrcaError reaching the API is answered by its code (HTTP_STATUS_OF), not 500: Docker unreachable is 503', async () => {
    const { call, rt, logs } = await boot();
    await call('POST', '/v1/apply', { files: [{ file: 'web.toml', text: WEB }] });
    await until(async () => (await call('GET', '/v1/status?service=web')).body.services[0]?.state === 'healthy');
    rt.setEngineDown(true);
    const r = await call('GET', '/v1/status');
    expect(r.status).toBe(503);
    expect(r.body).toMatchObject({ error: 'ORCA_RUNTIME_UNAVAILABLE', message: expect.stringContaining('unreachable') });
    rt.setEngineDown(false);
    expect((await call('GET', '/v1/status')).status).toBe(200);
    // An expected failure is an answer, not an API error in the log.
    expect(logs()).not.toContain('API request failed');
  });
});
