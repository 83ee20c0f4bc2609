import { afterEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { request, type Server } from 'node:http';
import { Writable } from 'node:stream';
import { ManualClock } from '../core/clock.js';
import { createLogger } from '../core/log.js';
import { memoryStore } from '../store/index.js';
import { Access } from './access.js';
import { createApi } from './api.js';
import { ControlPlane } from './control-plane.js';
import { EventLog } from './event-log.js';
import type { NodeRegistry } from './node-registry.js';
import { SecretStore } from './secrets.js';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentAuth, CREDENTIAL_FILE, pinnedCa, readCredential } from '../agent/join.js';
import { NO_CA_HASH } from './join-tokens.js';

const ADMIN = 'admin-t0k3n';
const CA = 'ef'.repeat(32);
const open: Array<() => void> = [];
afterEach(() => {
  for (const close of open.splice(0)) close();
});

/** An API with join tokens on a loopback port, and what it logged. */
async function accessApi() {
  const store = memoryStore();
  await store.open();
  let logText = '';
  const log = createLogger({ destination: new Writable({ write: (c, _e, cb) => ((logText += c), cb()) }), pretty: false });
  const clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z'));
  const events = new EventLog(store, log);
  const secrets = await SecretStore.open(store, randomBytes(32), '/data/cluster.key');
  const control = new ControlPlane({ store, clock, log, events, nodes: () => [], reschedule: () => undefined, secrets });
  const access = await Access.open(store, clock, ADMIN);
  const removed: string[] = [];
  const server: Server = createApi({
    token: ADMIN,
    log,
    control,
    store,
    events,
    nodes: {} as NodeRegistry,
    isReady: () => true,
    clock,
    access: {
      access,
      log,
      clock,
      caHash: async () => CA,
      live: (n) => n === 'busy',
      removeNode: async (node) => {
        if (node === 'ghost') return null;
        removed.push(node);
        return { node, credentialRevoked: await access.revoke(node), sessionsClosed: 0 };
      },
    },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  open.push(() => server.closeAllConnections(), () => server.close());
  const port = (server.address() as { port: number }).port;
  const call = (method: string, path: string, body?: unknown, token: string | null = ADMIN) =>
    new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method, path, agent: false, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body));
    });
  return { call, clock, access, removed, url: `http://127.0.0.1:${port}`, logs: () => logText };
}

describe('API: join tokens, node credentials, roles', () => {
  it('token create / ls / rm: the token is printed once, the list never holds a secret', async () => {
    const { call, clock } = await accessApi();
    const made = await call('POST', '/v1/tokens', { ttlMs: 3_600_000, uses: 2 });
    expect(made.status).toBe(200);
    const token = made.body.token as string;
    expect(token.startsWith(`orca1.${CA}.${made.body.id}.`)).toBe(true);
    clock.advance(1000);
    const ls = await call('GET', '/v1/tokens');
    expect(ls.body).toEqual({ tokens: [{ id: made.body.id, created: '2026-01-01T00:00:00.000Z', expires: '2026-01-01T01:00:00.000Z', uses: 2, used: 0, left: 2, state: 'valid' }] });
    expect(JSON.stringify(ls.body)).not.toContain(token.slice(-43));
    expect((await call('POST', '/v1/tokens', { ttlMs: 'soon' })).status).toBe(400);
    expect((await call('POST', '/v1/tokens', { uses: 0 })).status).toBe(400);
    expect(await call('DELETE', `/v1/tokens/${made.body.id}`)).toEqual({ status: 200, body: { removed: made.body.id } });
    expect((await call('DELETE', `/v1/tokens/${made.body.id}`)).status).toBe(404);
  });

  it('POST /v1/join needs no bearer; a credential may hold its agent session but gets 403 from every API call', async () => {
    const { call, logs } = await accessApi();
    const token = (await call('POST', '/v1/tokens', {})).body.token as string;
    const joined = await call('POST', '/v1/join', { token, node: 'n2' }, null);
    expect(joined.status).toBe(200);
    const credential = joined.body.credential as string;
    expect(joined.body.node).toBe('n2');
    expect(credential).toMatch(/^orcan1\.n2\./);
    for (const [method, path] of [['GET', '/v1/services'], ['GET', '/v1/status'], ['GET', '/v1/tokens'], ['POST', '/v1/tokens'], ['DELETE', '/v1/nodes/n1'], ['GET', '/metrics']] as const) {
      const r = await call(method, path, method === 'POST' ? {} : undefined, credential);
      expect(r.status, `${method} ${path}`).toBe(403);
      expect(r.body.error).toBe('ORCA_FORBIDDEN');
    }
    // The join token is no bearer of the API at all.
    expect((await call('GET', '/v1/status', undefined, token)).status).toBe(401);
    expect(logs()).not.toContain(token.slice(-43));
    expect(logs()).not.toContain(credential.slice(-43));
  });

  it('a refused join says why, with the status of its reason, and the log never holds the token', async () => {
    const { call, clock, logs } = await accessApi();
    const once = (await call('POST', '/v1/tokens', { uses: 1 })).body.token as string;
    expect((await call('POST', '/v1/join', { token: once, node: 'n1' }, null)).status).toBe(200);
    const usedUp = await call('POST', '/v1/join', { token: once, node: 'n2' }, null);
    expect(usedUp.status).toBe(401);
    expect(usedUp.body.message).toMatch(/used up \(1 of 1 uses\)/);
    const taken = await call('POST', '/v1/join', { token: (await call('POST', '/v1/tokens', {})).body.token, node: 'n1' }, null);
    expect(taken.status).toBe(409);
    expect(taken.body.message).toMatch(/node name n1 is already joined/);
    const busy = await call('POST', '/v1/join', { token: (await call('POST', '/v1/tokens', {})).body.token, node: 'busy' }, null);
    expect(busy.status).toBe(409);
    const short = (await call('POST', '/v1/tokens', { ttlMs: 60_000 })).body as { token: string; id: string };
    clock.advance(60_000);
    const expired = await call('POST', '/v1/join', { token: short.token, node: 'n3' }, null);
    expect(expired.status).toBe(401);
    expect(expired.body.message).toContain(`join token ${short.id} expired`);
    const removedTok = (await call('POST', '/v1/tokens', {})).body as { token: string; id: string };
    await call('DELETE', `/v1/tokens/${removedTok.id}`);
    expect((await call('POST', '/v1/join', { token: removedTok.token, node: 'n3' }, null)).body.message).toContain('was removed');
    for (const body of [{ token: 'orca1.nope', node: 'n3' }, { token: removedTok.token, node: 'N3!' }, { token: 42, node: 'n3' }, '[]', 'x'.repeat(5000)]) {
      const r = await call('POST', '/v1/join', body, null);
      expect([400, 413], JSON.stringify(body).slice(0, 40)).toContain(r.status);
    }
    for (const t of [once, short.token, removedTok.token]) expect(logs()).not.toContain(t.slice(-43));
    expect(logs()).toContain('join refused');
  });

  it('DELETE /v1/nodes/NODE revokes the credential (401 from then on); an unknown node is 404', async () => {
    const { call, removed } = await accessApi();
    const token = (await call('POST', '/v1/tokens', {})).body.token as string;
    const credential = (await call('POST', '/v1/join', { token, node: 'n2' }, null)).body.credential as string;
    expect((await call('DELETE', '/v1/nodes/n2', undefined, credential)).status).toBe(403);
    expect(await call('DELETE', '/v1/nodes/n2')).toEqual({ status: 200, body: { node: 'n2', credentialRevoked: true, sessionsClosed: 0 } });
    expect(removed).toEqual(['n2']);
    expect((await call('GET', '/v1/status', undefined, credential)).status).toBe(401);
    expect((await call('DELETE', '/v1/nodes/ghost')).status).toBe(404);
    expect((await call('DELETE', '/v1/nodes/Bad%20Name')).status).toBe(400);
  });
});

describe('the agent’s side of the join (agent/join.ts) against this API', () => {
  const quiet = createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }), pretty: false });

  it('exchanges the token once, keeps the credential (0600) and presents it from then on; a refused join is fatal with the reason', async () => {
    const { call, url } = await accessApi();
    const dir = await mkdtemp(join(tmpdir(), 'orca-join-'));
    open.push(() => void rm(dir, { recursive: true, force: true }));
    const token = (await call('POST', '/v1/tokens', { uses: 1 })).body.token as string;
    const auth = agentAuth({ join: new URL(url), dataDir: dir, node: 'n2', joinToken: token, log: quiet });
    const first = await auth.next();
    expect(first.bearer).toMatch(/^orcan1\.n2\./);
    expect((await stat(join(dir, CREDENTIAL_FILE))).mode & 0o777).toBe(0o600);
    expect(await readCredential(dir)).toEqual({ node: 'n2', credential: first.bearer, caHash: CA });
    expect((await auth.next()).bearer).toBe(first.bearer);
    // A later start needs no token: the stored credential is used.
    expect((await agentAuth({ join: new URL(url), dataDir: dir, node: 'n2', log: quiet }).next()).bearer).toBe(first.bearer);
    // The token had one use: another node is told so, and it is not worth retrying.
    const dir2 = await mkdtemp(join(tmpdir(), 'orca-join-'));
    open.push(() => void rm(dir2, { recursive: true, force: true }));
    const refused = agentAuth({ join: new URL(url), dataDir: dir2, node: 'n3', joinToken: token, log: quiet }).next();
    await expect(refused).rejects.toMatchObject({ code: 'ORCA_UNAUTHORIZED', message: expect.stringMatching(/refused the join token: .*used up/) });
    await expect(readCredential(dir2)).resolves.toBeNull();
  });

  it('a revoked credential: with no token the agent needs a new one; with a new token it joins again', async () => {
    const { call, url } = await accessApi();
    const dir = await mkdtemp(join(tmpdir(), 'orca-join-'));
    open.push(() => void rm(dir, { recursive: true, force: true }));
    const token = (await call('POST', '/v1/tokens', {})).body.token as string;
    const first = await agentAuth({ join: new URL(url), dataDir: dir, node: 'n2', joinToken: token, log: quiet }).next();
    await call('DELETE', '/v1/nodes/n2');
    const without = agentAuth({ join: new URL(url), dataDir: dir, node: 'n2', log: quiet });
    const b = await without.next();
    expect(await without.refused(b.bearer)).toMatchObject({ code: 'ORCA_UNAUTHORIZED', message: expect.stringContaining('needs a new join token') });
    const fresh = (await call('POST', '/v1/tokens', {})).body.token as string;
    const withNew = agentAuth({ join: new URL(url), dataDir: dir, node: 'n2', joinToken: fresh, log: quiet });
    expect(await withNew.refused((await withNew.next()).bearer)).toBe(true);
    const second = await withNew.next();
    expect(second.bearer).not.toBe(first.bearer);
    expect((await readCredential(dir))?.credential).toBe(second.bearer);
  });

  it('a token without a CA hash cannot verify an https server: refused before connecting', async () => {
    await expect(pinnedCa(new URL('https://127.0.0.1:1'), NO_CA_HASH)).rejects.toMatchObject({ code: 'ORCA_UNAUTHORIZED', message: expect.stringContaining('carries no CA hash') });
  });
});
