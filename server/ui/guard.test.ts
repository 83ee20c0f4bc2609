import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { silentLogger } from '../../core/log.js';
import { leaderForwarder } from '../forward.js';
import { uiApi } from '../../test/ui-api.js';
import { cookieWriteProblem, ownOrigin, sameOrigin } from './guard.js';

const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

const req = (headers: Record<string, string>, method = 'POST') => ({ headers, method });

describe('the origin a request was addressed to', () => {
  it('is the scheme and Host; a standby says the browser\'s', () => {
    expect(ownOrigin(req({ host: '127.0.0.1:6880' }), false)).toBe('http://127.0.0.1:6880');
    expect(ownOrigin(req({ host: 'Orca.Example:443' }), true)).toBe('https://orca.example:443');
    expect(ownOrigin(req({ host: '[::1]:6880' }), false)).toBe('http://[::1]:6880');
    expect(ownOrigin(req({}), false)).toBeNull();
    expect(ownOrigin(req({ host: 'a b' }), false)).toBeNull();
    expect(ownOrigin(req({ host: '203.0.113.2:6880', 'x-orca-forwarded-by': 'standby', 'x-orca-forwarded-host': '203.0.113.1:6880', 'x-orca-forwarded-proto': 'https' }), false)).toBe('https://203.0.113.1:6880');
    expect(ownOrigin(req({ host: '203.0.113.2:6880', 'x-orca-forwarded-by': 'standby', 'x-orca-forwarded-proto': 'gopher' }), false)).toBeNull();
  });

  it('a cookie write needs its own Origin (403) and JSON (415); reads need neither', () => {
    const own = { host: 'h:1', origin: 'http://h:1', 'content-type': 'application/json' };
    expect(cookieWriteProblem(req(own), false)).toBeNull();
    expect(cookieWriteProblem(req({ host: 'h:1' }, 'GET'), false)).toBeNull();
    expect(cookieWriteProblem(req({ ...own, origin: 'http://h:2' }), false)?.status).toBe(403);
    expect(cookieWriteProblem(req({ ...own, origin: 'https://h:1' }), false)?.status).toBe(403);
    expect(cookieWriteProblem(req({ host: 'h:1', 'content-type': 'application/json' }, 'DELETE'), false)?.status).toBe(403);
    expect(cookieWriteProblem(req({ ...own, 'content-type': 'text/plain' }, 'PUT'), false)?.status).toBe(415);
    expect(sameOrigin(req({ host: 'H:1', origin: 'http://h:1' }), false)).toBe(true);
  });
});

describe('a dashboard write through a standby', () => {
  it('is checked against the origin the browser used, and a foreign one is still refused', async () => {
    const leader = await uiApi();
    closers.push(leader.close);
    const forward = leaderForwarder({ isLeader: () => false, leader: () => leader.origin, log: silentLogger() });
    const standby: Server = createServer((q, s) => void forward(q, s));
    await new Promise<void>((r) => standby.listen(0, '127.0.0.1', r));
    closers.push(() => {
      standby.closeAllConnections();
      standby.close();
    });
    const standbyOrigin = `http://127.0.0.1:${(standby.address() as AddressInfo).port}`;
    const cookie = await leader.login();
    const post = (origin: string) =>
      fetch(`${standbyOrigin}/v1/nodes/n1/drain`, { method: 'POST', headers: { cookie, origin, 'content-type': 'application/json' }, body: '{}' });
    expect((await post('http://evil.example')).status).toBe(403);
    expect((await post(leader.origin)).status).toBe(403);
    expect(leader.calls).toEqual([]);
    expect((await post(standbyOrigin)).status).toBe(200);
    expect(leader.calls).toEqual(['drain n1']);
  });
});
