import { afterEach, describe, expect, it } from 'vitest';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { silentLogger } from '../core/log.js';
import { leaderForwarder, type ForwardDeps } from './forward.js';

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});
async function listen(s: Server): Promise<string> {
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}
/** A standby whose forwarder is configured by `deps`; answers 418 itself when it leads. */
async function standby(deps: Partial<ForwardDeps>): Promise<string> {
  const forward = leaderForwarder({ isLeader: () => false, leader: () => null, log: silentLogger(), ...deps });
  return listen(
    createServer((req, res) => {
      void forward(req, res).then((done) => {
        if (!done) res.writeHead(418).end('local');
      });
    }),
  );
}
function call(url: string, o: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: o.method ?? 'GET', headers: o.headers ?? {} }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

describe('a standby forwards the API to the leader (SPEC §3.11)', () => {
  it('passes method, path, query, token and body as they came, and the answer back with its status', async () => {
    let seen: { method?: string; url?: string; auth?: string; body: string; via?: string; conn?: string } = { body: '' };
    const leader = await listen(
      createServer((req, res) => {
        let body = '';
        req.on('data', (d) => (body += d));
        req.on('end', () => {
          seen = { method: req.method, url: req.url, auth: req.headers.authorization, body, via: req.headers['x-orca-forwarded-by'] as string, conn: req.headers['proxy-authorization'] as string };
          res.writeHead(201, { 'content-type': 'application/json', 'x-leader': 'yes' }).end('{"ok":true}');
        });
      }),
    );
    const s = await standby({ leader: () => leader });
    const r = await call(`${s}/v1/apply?dry=1`, { method: 'POST', body: '{"files":[]}', headers: { authorization: 'Bearer t', 'proxy-authorization': 'nope' } });
    expect([r.status, r.body, r.headers['x-leader']]).toEqual([201, '{"ok":true}', 'yes']);
    expect(seen).toEqual({ method: 'POST', url: '/v1/apply?dry=1', auth: 'Bearer t', body: '{"files":[]}', via: 'standby', conn: undefined });
  });

  it('no leader yet, or the leader cannot be reached: 503 ORCA_NOT_LEADER (the CLI retries it)', async () => {
    const none = await call(`${await standby({ leader: () => null })}/v1/status`);
    expect(none.status).toBe(503);
    expect(JSON.parse(none.body)).toMatchObject({ error: 'ORCA_NOT_LEADER' });
    const gone = await listen(createServer());
    const url = gone;
    await new Promise((r) => servers.pop()!.close(r));
    const down = await call(`${await standby({ leader: () => url })}/v1/status`);
    expect(down.status).toBe(503);
    expect(JSON.parse(down.body).message).toContain('cannot be reached');
  });

  it('the store cannot be reached (etcd without quorum): 503 ORCA_STORE_UNAVAILABLE naming it, not retried', async () => {
    const r = await call(`${await standby({ leader: () => null, problem: () => 'no server can lead: etcd does not answer' })}/v1/apply`, { method: 'POST', body: '{}' });
    expect(r.status).toBe(503);
    expect(JSON.parse(r.body)).toEqual({ error: 'ORCA_STORE_UNAVAILABLE', message: 'no server can lead: etcd does not answer' });
  });

  it('the leader answers itself: nothing is forwarded', async () => {
    const s = await standby({ isLeader: () => true, leader: () => 'http://127.0.0.1:1' });
    expect((await call(`${s}/v1/status`)).status).toBe(418);
  });

  it('a leader that does not answer in time: 503, and the standby goes on serving', async () => {
    const silent = await listen(createServer(() => undefined));
    const s = await standby({ leader: () => silent, answerTimeoutMs: 150 });
    const r = await call(`${s}/v1/status`);
    expect(r.status).toBe(503);
    expect(JSON.parse(r.body).message).toContain('no answer from the leader within 150 ms');
    expect((await call(`${s}/v1/status`)).status).toBe(503);
  });
});
