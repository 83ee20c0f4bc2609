/**
 * The dashboard page (ui/) in real chromium, against a stand-in for its server half that this test
 * controls: the same files, headers (CSP) and stream messages as the contract says, so that what the
 * page does with hostile strings, 500 services, a storm of changes, a long log, a dropped stream
 * and its confirmations can be driven message by message. The real server is in dashboard.test.ts.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { ROOT, waitFor } from './harness.js';
import { launchChromium } from '../browser.js';

const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
const HOSTILE = `<img src=x onerror="window.__pwned=1">"'&<script>window.__pwned=2</script>`;

interface Post {
  path: string;
  contentType: string | undefined;
  origin: string | undefined;
  body: string;
}

/** A stand-in server half: serves ui/, a signed-in cookie, a stream the test writes to. */
class FakeHalf {
  server!: Server;
  base = '';
  streams = new Set<ServerResponse>();
  posts: Post[] = [];
  snapshot: Record<string, unknown> = {};
  answer: (p: Post) => { status: number; body: unknown } = () => ({ status: 200, body: {} });
  /** As a server whose session cookie lapsed: /ui redirects to the sign-in page, the stream is 401. */
  signedOut = false;

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  send(event: string, data: unknown): void {
    for (const s of this.streams) s.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  endStreams(): void {
    for (const s of this.streams) s.end();
    this.streams.clear();
  }

  async stop(): Promise<void> {
    this.endStreams();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const file = (name: string, type: string) => {
      res.writeHead(200, { 'Content-Type': type, 'Cache-Control': 'no-store', 'Content-Security-Policy': CSP, 'X-Content-Type-Options': 'nosniff' });
      res.end(readFileSync(join(ROOT, 'ui', name)));
    };
    const assets: Record<string, [string, string]> = {
      '/ui': ['index.html', 'text/html; charset=utf-8'],
      '/ui/login': ['login.html', 'text/html; charset=utf-8'],
      '/ui/app.js': ['app.js', 'text/javascript; charset=utf-8'],
      '/ui/login.js': ['login.js', 'text/javascript; charset=utf-8'],
      '/ui/app.css': ['app.css', 'text/css; charset=utf-8'],
      '/ui/login.css': ['login.css', 'text/css; charset=utf-8'],
    };
    if (this.signedOut && (path === '/ui' || path === '/ui/stream')) {
      res.writeHead(path === '/ui' ? 302 : 401, path === '/ui' ? { Location: '/ui/login' } : { 'Content-Type': 'application/json' });
      res.end(path === '/ui' ? '' : '{"error":"ORCA_UNAUTHORIZED","message":"no session"}');
      return;
    }
    if (req.method === 'GET' && assets[path]) return file(...assets[path]!);
    if (req.method === 'GET' && path === '/ui/stream') {
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store' });
      res.write(`retry: 300\nevent: snapshot\ndata: ${JSON.stringify(this.snapshot)}\n\n`);
      this.streams.add(res);
      req.on('close', () => this.streams.delete(res));
      return;
    }
    if (req.method === 'POST') {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        const post = { path, contentType: req.headers['content-type'], origin: req.headers.origin, body };
        this.posts.push(post);
        const a = this.answer(post);
        res.writeHead(a.status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(a.body));
      });
      return;
    }
    res.writeHead(404, { 'Content-Type': 'application/json' });
    res.end('{"error":"ORCA_NOT_FOUND","message":"no"}');
  }
}

function svc(name: string, o: { state?: string; restarts?: number; revision?: number; reason?: string; ready?: number } = {}) {
  const state = o.state ?? 'healthy';
  return {
    name,
    revision: o.revision ?? 1,
    state,
    replicas: { desired: 2, running: 2, ready: o.ready ?? 2 },
    instances: [0, 1].map((k) => ({
      id: `${name}-${k}-0a1b2c`,
      node: k === 0 ? 'n1' : 'n2',
      state: 'running',
      ready: true,
      restarts: k === 0 ? (o.restarts ?? 0) : 0,
      lastExit: o.restarts ? { code: 137, reason: 'Error', at: new Date().toISOString() } : null,
      containerId: 'c0ffee',
      address: null,
      nextRetryAt: null,
      error: null,
      probe: null,
    })),
    ...(o.reason ? { reason: o.reason } : {}),
  };
}
const node = (name: string, state = 'ready') => ({ name, state, address: '127.0.0.1', lastHeartbeat: new Date().toISOString(), protocol: 2, instances: 3 });
const event = (i: number, reason = 'replace-after-exited') => ({
  time: new Date().toISOString(),
  reconciler: 'container',
  service: 'web',
  instance: `web-0-${i}`,
  node: 'n1',
  action: 'container.create',
  reason,
  outcome: 'ok',
  durationMs: 42,
});

describe('the dashboard page in chromium, against a scripted stream', () => {
  const half = new FakeHalf();
  let browser: Browser;
  let ctx: BrowserContext;
  let page: Page;
  let problems: string[] = [];

  const count = (testid: string) => page.getByTestId(testid).count();
  const ui = () => page.evaluate(() => (window as unknown as { __orcaUi: { rendered: number; snapshots: number } }).__orcaUi);

  beforeAll(async () => {
    await half.start();
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await half.stop();
  });

  beforeEach(async () => {
    half.snapshot = { now: Date.now(), services: [svc('web'), svc('api')], nodes: [node('n1'), node('n2')], servers: [{ name: 'n1', address: 'http://127.0.0.1:6880', role: 'leader', since: new Date().toISOString() }], events: [], recoveries: [] };
    half.posts = [];
    half.signedOut = false;
    half.answer = () => ({ status: 200, body: {} });
    await ctx?.close();
    ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await ctx.newPage();
    problems = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      // A refused request is reported by chromium as a failed resource: the answers are the test's own.
      if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) problems.push(`console: ${m.text()}`);
    });
    page.on('dialog', (d) => {
      problems.push(`a ${d.type()} opened: ${d.message()}`);
      void d.dismiss();
    });
  });

  const open = async () => {
    await page.goto(`${half.base}/ui`);
    await page.locator('[data-testid="connection-state"][data-state="live"]').waitFor();
    await page.getByTestId('service-row').first().waitFor();
  };

  it('shows hostile strings from the server as text, never as markup', async () => {
    const evil = `e${HOSTILE}`;
    half.snapshot = {
      ...half.snapshot,
      services: [svc(evil, { state: 'crashloop', reason: HOSTILE, ready: 1 })],
      nodes: [node(`n${HOSTILE}`, 'unreachable')],
      servers: [{ name: HOSTILE, address: HOSTILE, role: 'leader', since: HOSTILE }],
      events: [{ ...event(1, HOSTILE), service: evil, message: HOSTILE, outcome: HOSTILE }],
      recoveries: [{ time: HOSTILE, service: HOSTILE, instance: HOSTILE, node: HOSTILE, ms: 800, reason: HOSTILE }],
    };
    await open();
    const row = page.locator('tr[data-testid="service-row"]');
    await expect.poll(() => row.getAttribute('data-service')).toBe(evil);
    expect(await row.locator('td.name').textContent()).toBe(evil);
    expect(await row.getAttribute('data-state')).toBe('crashloop');
    expect(await page.getByTestId('problems').textContent()).toContain(HOSTILE);
    expect(await page.getByTestId('event-row').first().textContent()).toContain(HOSTILE);
    expect(await page.getByTestId('node-row').first().getAttribute('data-node')).toBe(`n${HOSTILE}`);
    await row.locator('button.exp').click();
    await page.locator(`tr[data-instance="${evil.replace(/["\\]/g, '\\$&')}-0-0a1b2c"]`).waitFor();
    // Nothing of it became an element or ran.
    expect(await page.locator('img, script:not([src])').count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(problems).toEqual([]);
  });

  it('renders 500 services and, in a storm, touches only the rows that changed', async () => {
    const names = Array.from({ length: 500 }, (_, i) => `svc-${String(i).padStart(3, '0')}`);
    half.snapshot = { ...half.snapshot, services: names.map((n) => svc(n)) };
    await open();
    await expect.poll(() => count('service-row')).toBe(500);
    // Which service rows the page touches from now on.
    await page.evaluate(() => {
      const touched = new Set<string>();
      (window as unknown as { __touched: Set<string> }).__touched = touched;
      new MutationObserver((records) => {
        for (const r of records) {
          const target = r.target instanceof Element ? r.target : r.target.parentElement;
          const tbody = target?.closest('tbody.svc');
          const name = tbody?.querySelector('tr.row')?.getAttribute('data-service');
          if (name) touched.add(name);
        }
      }).observe(document.getElementById('services')!, { subtree: true, childList: true, characterData: true, attributes: true });
    });
    const before = (await ui()).rendered;
    // 40 messages of 20 changed services each (a crash storm coalesced at 250 ms), as fast as they go.
    const changed = new Set<string>();
    const restarts = new Map<string, number>();
    for (let m = 0; m < 40; m++) {
      const batch = Array.from({ length: 20 }, (_, k) => names[(m * 7 + k * 13) % 150]!);
      for (const n of batch) {
        changed.add(n);
        restarts.set(n, (restarts.get(n) ?? 0) + 1);
      }
      half.send('services', { changed: batch.map((n) => svc(n, { restarts: restarts.get(n), state: 'crashloop', ready: 1 })), removed: [] });
    }
    const last = names[(39 * 7 + 19 * 13) % 150]!;
    await expect.poll(() => page.locator(`tr[data-service="${last}"] td:nth-child(6)`).textContent()).toBe(String(restarts.get(last)));
    const touched = await page.evaluate(() => [...(window as unknown as { __touched: Set<string> }).__touched]);
    expect(touched.length).toBeGreaterThan(0);
    expect(touched.filter((n) => !changed.has(n))).toEqual([]);
    // Each changed row rendered at most once per message; never all 500 per message.
    const rendered = (await ui()).rendered - before;
    expect(rendered).toBeLessThanOrEqual(40 * 20);
    expect(await page.locator('tr[data-testid="service-row"][data-state="crashloop"]').count()).toBe(changed.size);
    expect(await page.getByTestId('problems').getAttribute('data-count')).toBe(String(changed.size));
    // A removed service leaves; the others stay in name order.
    half.send('services', { changed: [], removed: ['svc-000', 'svc-499'] });
    await expect.poll(() => count('service-row')).toBe(498);
    half.send('services', { changed: [svc('svc-000a')], removed: [] });
    await expect.poll(() => page.locator('tbody.svc').nth(0).locator('tr.row').getAttribute('data-service')).toBe('svc-000a');
    expect(await page.locator('tbody.svc').nth(1).locator('tr.row').getAttribute('data-service')).toBe('svc-001');
    expect(problems).toEqual([]);
  });

  it('keeps at most 500 log rows, newest on top, and the last 500 recoveries', async () => {
    await open();
    for (let i = 0; i < 700; i++) half.send('event', event(i));
    half.send('events', { events: Array.from({ length: 500 }, (_, i) => event(700 + i)) });
    for (let i = 0; i < 700; i++) half.send('recovery', { time: new Date().toISOString(), service: 'web', instance: `web-0-${i}`, node: 'n1', ms: 300 + (i % 50) * 20, reason: 'exited' });
    await expect.poll(() => page.getByTestId('recovery-chart').getAttribute('data-count')).toBe('500');
    await expect.poll(() => page.getByTestId('event-row').first().textContent()).toContain('web-0-1199');
    expect(await count('event-row')).toBe(500);
    expect(await page.getByTestId('event-row').last().textContent()).toContain('web-0-700');
    expect(problems).toEqual([]);
  });

  it('says reconnecting when the stream drops and takes the new snapshot when it is back', async () => {
    await open();
    expect(await page.getByTestId('connection-state').textContent()).toBe('live');
    half.snapshot = { ...half.snapshot, services: [svc('web', { revision: 7 })], nodes: [node('n1'), node('n2', 'down')] };
    half.endStreams();
    // EventSource tries again by itself (retry: 300 ms here); in between the page says so.
    await page.locator('[data-testid="connection-state"][data-state="reconnecting"]').waitFor();
    await page.locator('[data-testid="connection-state"][data-state="live"]').waitFor();
    await expect.poll(() => count('service-row')).toBe(1);
    expect(await page.locator('tr[data-service="web"]').getByTestId('revision').textContent()).toBe('7');
    expect(await page.locator('tr[data-node="n2"]').getAttribute('data-state')).toBe('down');
    expect(await page.getByTestId('problems').locator('[data-node="n2"]').count()).toBe(1);
    expect((await ui()).snapshots).toBe(2);
  });

  it('goes to the sign-in page when the stream is refused because the session lapsed', async () => {
    await open();
    half.signedOut = true;
    half.endStreams();
    await page.waitForURL(`${half.base}/ui/login`);
    await page.getByTestId('login-token').waitFor();
  });

  it('posts rollback, drain and uncordon only once confirmed, as same-origin JSON, and shows the answer', async () => {
    await open();
    const web = page.locator('tr[data-service="web"]');
    await web.getByTestId('rollback-btn').click();
    await page.getByTestId('confirm-cancel').click();
    expect(half.posts).toEqual([]);
    half.answer = (p) => (p.path.endsWith('/rollback') ? { status: 200, body: { service: 'web', action: 'configured', revision: 2, from: 1 } } : { status: 200, body: { node: 'n2', state: p.path.endsWith('/drain') ? 'draining' : 'ready' } });
    await web.getByTestId('rollback-btn').click();
    await page.getByTestId('confirm-ok').click();
    await expect.poll(() => page.getByTestId('action-result').last().textContent()).toBe('service/web rolled back to revision 1 as revision 2');
    expect(half.posts).toEqual([{ path: '/v1/services/web/rollback', contentType: 'application/json', origin: half.base, body: '{}' }]);
    await page.locator('tr[data-node="n2"]').getByTestId('drain-btn').click();
    await page.getByTestId('confirm-ok').click();
    await expect.poll(() => half.posts.length).toBe(2);
    expect(half.posts[1]).toMatchObject({ path: '/v1/nodes/n2/drain', contentType: 'application/json', origin: half.base });
    half.send('nodes', { nodes: [node('n1'), node('n2', 'draining')] });
    await page.locator('tr[data-node="n2"][data-state="draining"]').getByTestId('uncordon-btn').click();
    await page.keyboard.press('Escape'); // a dismissed dialog is a no
    await page.locator('tr[data-node="n2"]').getByTestId('uncordon-btn').click();
    await page.getByTestId('confirm-ok').click();
    await expect.poll(() => half.posts.map((p) => p.path)).toEqual(['/v1/services/web/rollback', '/v1/nodes/n2/drain', '/v1/nodes/n2/uncordon']);
    // A refusal's message is shown, as text.
    half.answer = () => ({ status: 409, body: { error: 'ORCA_CONFLICT', message: `no earlier revision ${HOSTILE}` } });
    await web.getByTestId('rollback-btn').click();
    await page.getByTestId('confirm-ok').click();
    await expect.poll(() => page.getByTestId('action-error').last().textContent()).toBe(`rollback of web failed: no earlier revision ${HOSTILE}`);
    expect(await page.locator('img').count()).toBe(0);
    expect(problems).toEqual([]);
  });

  it('leader mark, instances per node on expand, and a sign-in error', async () => {
    await open();
    expect(await page.locator('tr[data-node="n1"]').getAttribute('data-leader')).toBe('true');
    expect(await page.locator('tr[data-node="n2"]').getAttribute('data-leader')).toBe('false');
    await page.locator('tr[data-service="api"] button.exp').click();
    const inst = page.locator('tbody.svc tr[data-instance]');
    await expect.poll(() => inst.count()).toBe(2);
    expect(await inst.evaluateAll((rows) => rows.map((r) => `${r.getAttribute('data-node')}:${r.getAttribute('data-instance')}`))).toEqual(['n1:api-0-0a1b2c', 'n2:api-1-0a1b2c']);
    // An update of an expanded service updates its instance rows in place.
    const handle = await inst.first().elementHandle();
    half.send('services', { changed: [svc('api', { restarts: 3 })], removed: [] });
    await expect.poll(() => inst.first().locator('td:nth-child(4)').textContent()).toBe('3');
    expect(await handle!.evaluate((e) => e.isConnected)).toBe(true);
    // The sign-in page shows the server's refusal.
    half.answer = () => ({ status: 401, body: { error: 'ORCA_UNAUTHORIZED', message: 'wrong token' } });
    await page.goto(`${half.base}/ui/login`);
    await page.getByTestId('login-token').fill('nope');
    await page.getByTestId('login-submit').click();
    await expect.poll(() => page.getByTestId('login-error').textContent()).toBe('Wrong token.');
    expect(half.posts.at(-1)).toMatchObject({ path: '/ui/login', contentType: 'application/json', origin: half.base, body: '{"token":"nope"}' });
    await waitFor(() => page.url().endsWith('/ui/login'), 1000, 'still on the sign-in page');
    expect(problems).toEqual([]);
  });
});
