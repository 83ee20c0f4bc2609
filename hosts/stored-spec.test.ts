import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { ManualClock, flushMicrotasks, seededRng } from '../core/clock.js';
import { createLogger } from '../core/log.js';
import { FakeRuntime } from '../runtime/fake-runtime.js';
import { memoryStore } from '../store/index.js';
import type { ServiceSpec } from '../manifest/types.js';
import type { Store } from '../store/types.js';
import { aSpec } from '../test/builders.js';
import { loadServerConfig } from '../server/config.js';
import { startServerHost, type RunningServerHost } from './server-host.js';

/**
 * A server that finds a stored spec it cannot schedule — stored by an older version with looser
 * bounds, or damaged — starts anyway, schedules everything else, and says why in status and in
 * the reconciliation log (issue 9, SPEC §2).
 */

const IMAGE = 'orca-test/busybox:1';
const running: RunningServerHost[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of running.splice(0)) await s.stop();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const settle = () => flushMicrotasks(20);
async function until(fn: () => Promise<boolean>, turns = 500): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (await fn()) return;
    await settle();
  }
  throw new Error('condition not reached');
}

/** Starts a server whose cluster store already holds what `seed` wrote into it. */
async function bootWith(seed: (store: Store) => Promise<void>) {
  const dataDir = await mkdtemp(join(tmpdir(), 'orca-stored-spec-'));
  dirs.push(dataDir);
  const cfg = await loadServerConfig({ dataDir, nodeName: 'n1', apiListen: '127.0.0.1:0', clusterId: 'unit' });
  if (!cfg.ok) throw new Error(cfg.errors.join());
  const clock = new ManualClock();
  const rt = new FakeRuntime(clock);
  rt.addImage(IMAGE, { cmd: ['sleep', '3600'] });
  const cluster = memoryStore();
  await cluster.open();
  await seed(cluster);
  let logText = '';
  const sink = new Writable({ write: (c, _e, cb) => ((logText += c), cb()) });
  const server = await startServerHost(cfg.value, {
    log: createLogger({ destination: sink, pretty: false }),
    runtime: rt,
    clock,
    rng: seededRng(7),
    openStore: async (path) => {
      const s = path.endsWith('cluster.db') ? cluster : memoryStore();
      await s.open();
      return s;
    },
  });
  running.push(server);
  await server.ready();
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(server.apiUrl + path, {
      method,
      headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, text, body: (() => { try { return JSON.parse(text); } catch { return null; } })() as any };
  };
  const events = async () => (await call('GET', '/v1/events')).text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
  return { server, rt, call, events, logs: () => logText };
}

async function store(s: Store, spec: ServiceSpec): Promise<void> {
  await s.commitRevisions([{ spec, specHash: `stored-${spec.name}-${String(spec.replicas)}`, source: 'apply', at: '2025-01-01T00:00:00.000Z' }]);
}

describe('a stored spec this version cannot schedule', () => {
  it('starts anyway, schedules the others, and reports it in status and events', async () => {
    const { call, events, rt } = await bootWith(async (s) => {
      await store(s, aSpec({ name: 'huge', image: IMAGE, replicas: 100_000 }));
      await store(s, aSpec({ name: 'web', image: IMAGE, replicas: 1 }));
    });
    expect((await call('GET', '/healthz')).status).toBe(200);

    await until(async () => (await call('GET', '/v1/status?service=web')).body.services[0]?.state === 'healthy');
    const huge = (await call('GET', '/v1/status?service=huge')).body.services[0];
    expect(huge).toMatchObject({ name: 'huge', state: 'degraded', replicas: { desired: 100_000, running: 0, ready: 0 } });
    expect(huge.reason).toBe(
      'stored spec of revision 1 is not valid in this version (replicas: must be at most 1000); apply a corrected manifest',
    );
    // No container was ever created for it.
    expect(await rt.list({ 'orca.service': 'huge' })).toEqual([]);
    expect(await rt.list({ 'orca.service': 'web' })).toHaveLength(1);

    const recorded = (await events()).filter((e) => e.service === 'huge' && e.action === 'service.unschedulable');
    expect(recorded).toHaveLength(1);
    expect(recorded[0]).toMatchObject({ reconciler: 'control-plane', outcome: 'skipped', reason: huge.reason });
  });

  it('reports a damaged record (wrong shape) without crashing', async () => {
    const { call, events } = await bootWith(async (s) => {
      const damaged = { name: 'broken', image: IMAGE, replicas: 'many' } as unknown as ServiceSpec;
      await store(s, damaged);
    });
    const st = await call('GET', '/v1/status');
    expect(st.status).toBe(200);
    expect(st.body.services).toEqual([
      expect.objectContaining({ name: 'broken', state: 'degraded', reason: expect.stringMatching(/^stored spec of revision 1 is not valid in this version \(is malformed/) }),
    ]);
    expect((await events()).some((e) => e.service === 'broken' && e.action === 'service.unschedulable')).toBe(true);
  });

  it('is fixed by applying a corrected manifest, which supersedes it', async () => {
    const { call } = await bootWith(async (s) => {
      await store(s, aSpec({ name: 'huge', image: IMAGE, replicas: 100_000, route: { host: 'huge.localhost', path: '/' }, port: 80 }));
    });
    const text = `[[service]]\nname = "huge"\nimage = "${IMAGE}"\nreplicas = 2\nport = 80\nroute = { host = "huge.localhost" }\n`;
    const applied = await call('POST', '/v1/apply', { files: [{ file: 'huge.toml', text }] });
    expect(applied).toMatchObject({ status: 200, body: { results: [{ service: 'huge', action: 'configured', revision: 2 }] } });
    await until(async () => (await call('GET', '/v1/status?service=huge')).body.services[0]?.replicas.running === 2);
    expect((await call('GET', '/v1/status?service=huge')).body.services[0].reason ?? '').not.toContain('stored spec');
  });

  it('refuses a rollback to a revision that is not valid in this version', async () => {
    const { call } = await bootWith(async (s) => {
      await store(s, aSpec({ name: 'web', image: IMAGE, replicas: 5000 }));
      await store(s, aSpec({ name: 'web', image: IMAGE, replicas: 1 }));
    });
    const r = await call('POST', '/v1/services/web/rollback', { toRevision: 1 });
    // The service and the revision exist: the revision itself is the problem (409, not 404).
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({ error: 'ORCA_CONFLICT' });
    expect(r.text).toContain('revision 1 is not valid in this version: replicas: must be at most 1000');
    const missing = await call('POST', '/v1/services/web/rollback', { toRevision: 9 });
    expect([missing.status, missing.body.error]).toEqual([404, 'ORCA_NOT_FOUND']);
    const noService = await call('POST', '/v1/services/nope/rollback', {});
    expect([noService.status, noService.body.error]).toEqual([404, 'ORCA_NOT_FOUND']);
  });
});
