import { afterEach, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { ADMIN, uiApi } from '../../test/ui-api.js';
import { issueSession, sessionKey, SESSION_TTL_MS } from './session.js';

const open: Array<() => void> = [];
afterEach(() => {
  for (const close of open.splice(0)) close();
});

async function api(o: Parameters<typeof uiApi>[0] = {}) {
  const a = await uiApi(o);
  open.push(a.close);
  return a;
}

const JSON_TYPE = { 'content-type': 'application/json' };

describe('dashboard sign-in', () => {
  it('the right admin token gets an HttpOnly, SameSite=Strict session cookie (not Secure on plain HTTP)', async () => {
    const a = await api();
    const r = await a.call('POST', '/ui/login', { ...JSON_TYPE, origin: a.origin }, JSON.stringify({ token: ADMIN }));
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({ ok: true });
    const cookie = r.headers['set-cookie']?.[0] ?? '';
    expect(cookie).toMatch(/^orca_session=v1\.\d{13}\.[0-9a-f]{16}\.[0-9a-f]{64}; /);
    expect(cookie).toContain('; HttpOnly');
    expect(cookie).toContain('; SameSite=Strict');
    expect(cookie).toContain('; Path=/');
    expect(cookie).toContain(`; Max-Age=${SESSION_TTL_MS / 1000}`);
    expect(cookie).not.toContain('Secure');
  });

  it('is Secure under TLS', async () => {
    const a = await api({ tls: true });
    const r = await a.call('POST', '/ui/login', { ...JSON_TYPE, origin: a.origin }, JSON.stringify({ token: ADMIN }));
    expect(r.status).toBe(200);
    expect(r.headers['set-cookie']?.[0]).toMatch(/; Secure$/);
  });

  it('a wrong or missing token is 401, counted like a wrong bearer token, and sets nothing', async () => {
    const a = await api();
    for (const body of [{ token: 'nope' }, {}, { token: 42 }, { token: `${ADMIN}x` }]) {
      const r = await a.call('POST', '/ui/login', JSON_TYPE, JSON.stringify(body));
      expect(r.status).toBe(401);
      expect(r.json()).toEqual({ error: 'ORCA_UNAUTHORIZED', message: 'wrong token' });
      expect(r.headers['set-cookie']).toBeUndefined();
    }
    expect(a.unauthorized()).toBe(4);
    expect(a.logs()).toContain('unauthorized API request');
    expect(a.logs()).not.toContain('nope');
  });

  it('takes JSON only (415), from its own origin only when one is said (403), and at most 4 KiB (413)', async () => {
    const a = await api();
    const body = JSON.stringify({ token: ADMIN });
    expect((await a.call('POST', '/ui/login', { 'content-type': 'text/plain' }, body)).status).toBe(415);
    expect((await a.call('POST', '/ui/login', { 'content-type': 'application/x-www-form-urlencoded' }, `token=${ADMIN}`)).status).toBe(415);
    expect((await a.call('POST', '/ui/login', {}, body)).status).toBe(415);
    expect((await a.call('POST', '/ui/login', { ...JSON_TYPE, origin: 'http://evil.example' }, body)).status).toBe(403);
    expect((await a.call('POST', '/ui/login', { ...JSON_TYPE, origin: 'null' }, body)).status).toBe(403);
    const huge = await a.call('POST', '/ui/login', JSON_TYPE, JSON.stringify({ token: 'x'.repeat(5000) }));
    expect(huge.status).toBe(413);
    expect(huge.json().error).toBe('ORCA_USAGE');
    const notJson = await a.call('POST', '/ui/login', JSON_TYPE, '{"token": ');
    expect(notJson.status).toBe(400);
    expect(notJson.json().message).toMatch(/JSON object/);
    // A request that sends no Origin (curl, the CLI) signs in with the token.
    expect((await a.call('POST', '/ui/login', JSON_TYPE, body)).status).toBe(200);
  });

  it('logout clears the cookie, with the same rules', async () => {
    const a = await api();
    const r = await a.call('POST', '/ui/logout', { ...JSON_TYPE, origin: a.origin }, '{}');
    expect(r.status).toBe(200);
    expect(r.headers['set-cookie']?.[0]).toMatch(/^orca_session=; Path=\/; HttpOnly; SameSite=Strict; Max-Age=0$/);
    expect((await a.call('POST', '/ui/logout', { 'content-type': 'text/plain' }, '{}')).status).toBe(415);
    expect((await a.call('POST', '/ui/logout', { ...JSON_TYPE, origin: 'http://evil.example' }, '{}')).status).toBe(403);
  });
});

describe('dashboard pages need the session', () => {
  it('GET /ui redirects to the sign-in page without one, serves the page with one, with the security headers', async () => {
    const a = await api();
    const anon = await a.call('GET', '/ui');
    expect(anon.status).toBe(302);
    expect(anon.headers.location).toBe('/ui/login');
    const cookie = await a.login();
    const page = await a.call('GET', '/ui', { cookie });
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.text).toContain('<html');
    expect(page.headers['content-security-policy']).toBe("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    expect(page.headers['referrer-policy']).toBe('no-referrer');
  });

  it('the sign-in page and its files are public; the dashboard files and the stream are not', async () => {
    const a = await api();
    const login = await a.call('GET', '/ui/login');
    expect(login.status).toBe(200);
    expect(login.headers['content-type']).toBe('text/html; charset=utf-8');
    expect((await a.call('GET', '/ui/login.js')).headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect((await a.call('GET', '/ui/login.css')).status).toBe(200);
    for (const path of ['/ui/app.js', '/ui/app.css', '/ui/stream', '/ui/index.html']) {
      const r = await a.call('GET', path);
      expect(r.status === 401 || r.status === 302, path).toBe(true);
    }
    expect((await a.call('GET', '/ui/app.js')).json().error).toBe('ORCA_UNAUTHORIZED');
    const cookie = await a.login();
    expect((await a.call('GET', '/ui/app.js', { cookie })).status).toBe(200);
    expect((await a.call('GET', '/ui/nothing.js', { cookie })).status).toBe(404);
    // Dot segments are resolved before routing: /ui/../package.json is /package.json, no file of ours.
    const up = await a.call('GET', '/ui/../package.json', { cookie });
    expect(up.status).toBe(401);
    expect(up.text).not.toContain('"name"');
    expect((await a.call('GET', '/ui/%2e%2e%2fpackage.json', { cookie })).status).toBe(404);
    expect((await a.call('DELETE', '/ui', { cookie })).status).toBe(405);
  });

  it('refuses a tampered, expired, malformed or other token\'s cookie', async () => {
    const a = await api();
    const good = await a.login();
    const value = good.slice('orca_session='.length);
    const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === '0' ? '1' : '0') + s.slice(i + 1);
    const other = issueSession(sessionKey('another-admin-token'), a.clock.now()).value;
    const expired = issueSession(sessionKey(ADMIN), a.clock.now() - SESSION_TTL_MS - 1).value;
    const farFuture = `v1.${a.clock.now() + 10 * SESSION_TTL_MS}${value.slice(16)}`;
    const bad = [
      flip(value, value.length - 1),
      flip(value, 5),
      other,
      expired,
      farFuture,
      'v1.abc',
      '',
      'x'.repeat(5000),
      `${value}; orca_session=${value}`,
    ];
    for (const v of bad) {
      expect((await a.call('GET', '/ui', { cookie: `orca_session=${v}` })).status, v.slice(0, 40)).toBe(302);
      expect((await a.call('GET', '/v1/nodes', { cookie: `orca_session=${v}` })).status).toBe(401);
    }
    expect((await a.call('GET', '/ui', { cookie: ';;;==;orca_session' })).status).toBe(302);
    // A 10 KB cookie header: refused clearly, and the server still answers.
    expect((await a.call('GET', '/ui', { cookie: `a=${'b'.repeat(10_000)}; ${good}` })).status).toBe(302);
    // The session expires after 12 h.
    expect((await a.call('GET', '/ui', { cookie: good })).status).toBe(200);
    a.clock.advance(SESSION_TTL_MS);
    expect((await a.call('GET', '/ui', { cookie: good })).status).toBe(302);
  });

  it('a cookie header beyond the header limit is a clear 431, and the server stays up', async () => {
    const a = await api();
    const r = await a.call('GET', '/ui', { cookie: `orca_session=${'x'.repeat(20_000)}` });
    expect(r.status).toBe(431);
    const raw = await new Promise<string>((resolve) => {
      const s = connect(a.port, '127.0.0.1');
      let text = '';
      s.on('data', (d) => (text += d.toString()));
      s.on('close', () => resolve(text));
      s.on('error', () => resolve(text));
      s.end('POST /ui/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 3\r\nConnection: close\r\n\r\n\x00\xff{');
    });
    expect(raw).toMatch(/^HTTP\/1\.1 400/);
    expect((await a.call('GET', '/ui/login')).status).toBe(200);
  });
});

describe('the session cookie signs in the API', () => {
  it('reads /v1 with the cookie, and nothing outside /v1', async () => {
    const a = await api();
    const cookie = await a.login();
    const nodes = await a.call('GET', '/v1/nodes', { cookie });
    expect(nodes.status).toBe(200);
    expect(nodes.json().nodes).toEqual([{ name: 'n1', state: 'ready', address: '127.0.0.1', lastHeartbeat: '2026-01-01T00:00:00.000Z', protocol: 2, instances: 0 }]);
    expect((await a.call('GET', '/v1/nodes')).status).toBe(401);
    expect((await a.call('GET', '/metrics', { cookie })).status).toBe(401);
    // A wrong bearer token is not rescued by a good cookie.
    expect((await a.call('GET', '/v1/nodes', { cookie, authorization: 'Bearer wrong' })).status).toBe(401);
  });

  it('writes from the dashboard\'s own page go through', async () => {
    const a = await api();
    const cookie = await a.login();
    const h = { cookie, origin: a.origin, ...JSON_TYPE };
    expect((await a.call('POST', '/v1/services/web/rollback', h, '{}')).status).toBe(200);
    expect((await a.call('POST', '/v1/nodes/n1/drain', h, '{}')).status).toBe(200);
    expect((await a.call('POST', '/v1/nodes/n1/uncordon', h, '{}')).status).toBe(200);
    expect(a.calls).toEqual(['rollback web', 'drain n1', 'uncordon n1']);
  });

  it('refuses cross-site writes carried by the cookie, and nothing changes', async () => {
    const a = await api();
    const cookie = await a.login();
    const apply = JSON.stringify({ files: [{ file: 'x.toml', text: '[[service]]\nname = "web"\nimage = "x"\n' }] });
    const attempts: Array<[string, string, Record<string, string>, string, number]> = [
      ['POST', '/v1/services/web/rollback', { cookie, origin: 'http://evil.example', ...JSON_TYPE }, '{}', 403],
      ['POST', '/v1/services/web/rollback', { cookie, ...JSON_TYPE }, '{}', 403],
      ['POST', '/v1/services/web/rollback', { cookie, origin: a.origin, 'content-type': 'text/plain' }, '{}', 415],
      ['POST', '/v1/services/web/rollback', { cookie, origin: a.origin }, '', 415],
      ['POST', '/v1/nodes/n1/drain', { cookie, origin: 'http://evil.example', 'content-type': 'application/x-www-form-urlencoded' }, 'a=1', 403],
      ['POST', '/v1/nodes/n1/drain', { cookie, origin: a.origin, 'content-type': 'application/x-www-form-urlencoded' }, 'a=1', 415],
      ['POST', '/v1/nodes/n1/drain', { cookie, origin: a.origin, 'content-type': 'multipart/form-data; boundary=x' }, '--x--', 415],
      ['POST', '/v1/nodes/n1/drain', { cookie }, '', 403],
      ['POST', '/v1/apply', { cookie, origin: 'http://evil.example', 'content-type': 'text/plain' }, apply, 403],
      ['POST', '/v1/apply', { cookie, origin: a.origin, 'content-type': 'text/plain' }, apply, 415],
      ['POST', '/v1/apply', { cookie, origin: `${a.origin}.evil.example`, ...JSON_TYPE }, apply, 403],
      ['POST', '/v1/delete', { cookie, origin: 'null', ...JSON_TYPE }, JSON.stringify({ services: ['web'] }), 403],
    ];
    for (const [method, path, headers, body, status] of attempts) {
      const r = await a.call(method, path, headers, body);
      expect(r.status, `${path} ${JSON.stringify(headers)}`).toBe(status);
      expect(r.json().error).toBe(status === 403 ? 'ORCA_FORBIDDEN' : 'ORCA_USAGE');
    }
    expect(a.calls).toEqual([]);
  });

  it('with a bearer token too, an apply as text/plain, a form or without a type is 415 and nothing is applied', async () => {
    const a = await api();
    const bearer = { authorization: `Bearer ${ADMIN}` };
    const apply = JSON.stringify({ files: [{ file: 'x.toml', text: '' }] });
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonx', undefined]) {
      const r = await a.call('POST', '/v1/apply', { ...bearer, ...(type ? { 'content-type': type } : {}) }, apply);
      expect(r.status, String(type)).toBe(415);
      expect(r.json().message).toMatch(/application\/json/);
    }
    expect((await a.call('POST', '/v1/nodes/n1/drain', { ...bearer, 'content-type': 'text/plain' }, 'x')).status).toBe(415);
    expect(a.calls).toEqual([]);
    // The CLI's requests: JSON with a body, nothing without one.
    expect((await a.call('POST', '/v1/apply', { ...bearer, 'content-type': 'application/json; charset=utf-8' }, apply)).status).toBe(200);
    expect((await a.call('POST', '/v1/nodes/n1/drain', bearer)).status).toBe(200);
    expect(a.calls).toEqual(['apply', 'drain n1']);
  });
});
