/**
 * The dashboard (SPEC §6) on a real server, real Docker and real chromium: sign-in and its cookie,
 * a service crash-looping under kill -9 of its container and healing, a node going unreachable,
 * rollback and drain/uncordon through the confirmation dialog. Screenshots of each step go to
 * test-artifacts/dashboard/. Measured: event → pixel, from the kill (host clock) to the moment
 * the page changed the service's row (window.__orcaUi.lastRenderAt, same machine clock).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { TEST_IMAGE } from '../images.js';
import { launchChromium, lastRenderAt } from '../browser.js';
import {
  ROOT,
  cleanup,
  cli,
  containerMainPid,
  startAgentProcess,
  startServer,
  stopAgentProcess,
  stopServer,
  testEnv,
  waitFor,
  type AgentProcess,
  type ServerProcess,
} from './harness.js';

const ARTIFACTS = join(ROOT, 'test-artifacts/dashboard');
const SERVER_FLAGS = ['--heartbeat-interval', '0.2', '--heartbeat-timeout', '1', '--node-down-grace', '60', '--watchdog-interval', '60'];
const AGENT_FLAGS = ['--reconnect-initial', '0.2', '--reconnect-max', '0.5', '--watchdog-interval', '60'];
/** Each kill after the first within a minute waits 3 s in crashloop before the next try: long enough to see. */
const FLAKY = 'command = ["sleep", "3600"]\n[service.restart]\nbackoff_initial_secs = 3\nbackoff_max_secs = 3\nreset_after_secs = 60';

interface Instance {
  id: string;
  node: string;
  state: string;
  containerId: string | null;
}

describe('the dashboard on a real server, Docker and chromium', () => {
  let env: { cluster: string; dataDir: string };
  let agentDir: string;
  let server: ServerProcess | undefined;
  let agent: AgentProcess | undefined;
  let run: ReturnType<typeof cli>;
  let token: string;
  let browser: Browser;
  let ctx: BrowserContext;
  let page: Page;
  let shot = 0;
  const eventToPixel: number[] = [];

  const screenshot = async (name: string) => {
    await page.screenshot({ path: join(ARTIFACTS, `${String(++shot).padStart(2, '0')}-${name}.png`) });
  };
  const apply = async (name: string, body: string) => {
    const file = join(env.dataDir, `${name}.toml`);
    await writeFile(file, `[[service]]\nname = "${name}"\nimage = "${TEST_IMAGE}"\nstop_grace_secs = 0.5\n${body}\n`);
    const r = await run(['apply', '-f', file]);
    expect(r.code, r.stderr).toBe(0);
  };
  const instances = async (name: string): Promise<Instance[]> => {
    const r = await run(['status', name, '-o', 'json']);
    if (r.code !== 0) throw new Error(r.stderr);
    return (JSON.parse(r.stdout) as { services: Array<{ instances: Instance[] }> }).services[0]!.instances;
  };
  const row = (service: string) => page.locator(`tr[data-testid="service-row"][data-service="${service}"]`);
  const nodeRow = (name: string) => page.locator(`tr[data-testid="node-row"][data-node="${name}"]`);
  const rowIn = (service: string, state: string, timeout = 30_000) =>
    page.locator(`tr[data-testid="service-row"][data-service="${service}"][data-state="${state}"]`).waitFor({ timeout });
  const nodeIn = (name: string, state: string, timeout = 30_000) =>
    page.locator(`tr[data-testid="node-row"][data-node="${name}"][data-state="${state}"]`).waitFor({ timeout });
  /** Until the service's row has not changed for `ms`. */
  const rowQuiet = async (service: string, ms = 800) => {
    let last = -1;
    let since = Date.now();
    await waitFor(async () => {
      const at = await lastRenderAt(page, service);
      if (at !== last) {
        last = at;
        since = Date.now();
      }
      return Date.now() - since >= ms;
    }, 30_000, `${service}'s row quiet`);
  };
  /** kill -9 of the service's running container; resolves with kill → row changed on the page (ms). */
  const killAndMeasure = async (service: string): Promise<number> => {
    let victim: Instance | undefined;
    await waitFor(async () => {
      victim = (await instances(service)).find((i) => i.state === 'running' && i.containerId);
      return victim !== undefined;
    }, 20_000, `${service} running`);
    const pid = containerMainPid(victim!.containerId!);
    const t0 = Date.now();
    process.kill(pid, 'SIGKILL');
    let at = 0;
    await waitFor(async () => (at = await lastRenderAt(page, service)) > t0, 15_000, `${service}'s row changed after the kill`, 20);
    return at - t0;
  };

  beforeAll(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    env = await testEnv('dash');
    agentDir = await mkdtemp(join(tmpdir(), `${env.cluster}-n2-`));
    server = await startServer({ ...env, extra: SERVER_FLAGS });
    run = cli(server, env.dataDir);
    token = (await readFile(join(env.dataDir, 'cluster.token'), 'utf8')).trim();
    browser = await launchChromium();
    ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await ctx.newPage();
  });

  afterAll(async () => {
    if (eventToPixel.length > 0) {
      const s = [...eventToPixel].sort((a, b) => a - b);
      console.log(`event → pixel over ${s.length} kills: p50 ${s[Math.ceil(s.length / 2) - 1]!.toFixed(0)} ms, max ${s.at(-1)!.toFixed(0)} ms (${eventToPixel.map((v) => v.toFixed(0)).join(', ')} ms)`);
    }
    await browser?.close();
    await stopAgentProcess(agent);
    await stopServer(server);
    await cleanup(env.cluster, env.dataDir);
    await rm(agentDir, { recursive: true, force: true });
  });

  it('without a session: /ui goes to the sign-in page, the stream and the page script are 401', async () => {
    const res = await fetch(`${server!.api}/ui`, { redirect: 'manual' });
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/ui/login');
    expect((await fetch(`${server!.api}/ui/stream`)).status).toBe(401);
    expect((await fetch(`${server!.api}/ui/stream`, { headers: { cookie: 'orca_session=v1.9999999999999.00112233445566778899aabbccddeeff.00' } })).status).toBe(401);
    expect((await fetch(`${server!.api}/ui/app.js`)).status).toBe(401);
    const login = await fetch(`${server!.api}/ui/login`);
    expect(login.status).toBe(200);
    expect(login.headers.get('content-security-policy')).toContain("script-src 'self'");
    const anon = await browser.newContext();
    try {
      const p = await anon.newPage();
      await p.goto(`${server!.api}/ui`);
      expect(new URL(p.url()).pathname).toBe('/ui/login');
      await p.getByTestId('login-token').waitFor();
    } finally {
      await anon.close();
    }
  });

  it('signs in: a wrong token is refused and sets no cookie; the right one sets an HttpOnly, SameSite=Strict session', async () => {
    await page.goto(`${server!.api}/ui`);
    await page.getByTestId('login-token').fill(`${token}x`);
    await page.getByTestId('login-submit').click();
    await page.getByTestId('login-error').waitFor({ state: 'visible' });
    expect(await page.getByTestId('login-error').textContent()).toBe('Wrong token.');
    expect(await ctx.cookies()).toEqual([]);
    await screenshot('login-refused');
    await page.getByTestId('login-token').fill(token);
    await page.getByTestId('login-submit').click();
    await page.waitForURL(`${server!.api}/ui`);
    const cookies = await ctx.cookies();
    expect(cookies).toHaveLength(1);
    expect(cookies[0]).toMatchObject({ name: 'orca_session', httpOnly: true, sameSite: 'Strict', path: '/', secure: false });
    expect(cookies[0]!.value).toMatch(/^v1\.\d+\.[0-9a-f]{16}\.[0-9a-f]{64}$/);
    await page.locator('[data-testid="connection-state"][data-state="live"]').waitFor({ timeout: 15_000 });
    await nodeIn('n1', 'ready');
    expect(await nodeRow('n1').getAttribute('data-leader')).toBe('true');
    await screenshot('signed-in');
  });

  it('shows a service crash-looping while its container is killed, and healthy again when the kills stop', async () => {
    await apply('flaky', FLAKY);
    await rowIn('flaky', 'healthy');
    // The first kill is replaced at once; the next ones within a minute wait 3 s in crashloop.
    for (let k = 0; k < 6; k++) {
      await rowIn('flaky', 'healthy');
      await rowQuiet('flaky');
      eventToPixel.push(await killAndMeasure('flaky'));
      if (k === 1) {
        await rowIn('flaky', 'crashloop', 10_000);
        expect(await page.getByTestId('problems').locator('[data-service="flaky"]').count()).toBe(1);
        await row('flaky').locator('button.exp').click();
        await screenshot('crashloop');
        await row('flaky').locator('button.exp').click();
      }
    }
    await rowIn('flaky', 'healthy');
    await waitFor(async () => (await page.getByTestId('problems').locator('[data-service="flaky"]').count()) === 0, 5_000, 'flaky off the problems');
    expect(Number(await row('flaky').locator('td:nth-child(6)').textContent())).toBeGreaterThanOrEqual(6);
    // The log shows the replacements; the chart counts the recoveries.
    expect(await page.locator('[data-testid="event-row"][data-service="flaky"]').count()).toBeGreaterThan(0);
    await waitFor(async () => Number(await page.getByTestId('recovery-chart').getAttribute('data-count')) >= 6, 15_000, 'six recoveries on the chart');
    await screenshot('healed');
    const s = [...eventToPixel].sort((a, b) => a - b);
    expect(s.at(-1)).toBeLessThan(5_000);
  });

  it('rolls a service back only once confirmed, and shows the new revision in its row', async () => {
    await apply('flaky', `${FLAKY}\n[service.env]\nLEVEL = "2"`);
    await waitFor(async () => (await row('flaky').getByTestId('revision').textContent()) === '2', 15_000, 'revision 2 shown');
    await row('flaky').getByTestId('rollback-btn').click();
    expect(await page.locator('dialog[open]').textContent()).toContain('flaky');
    await page.getByTestId('confirm-cancel').click();
    const history = async () => (JSON.parse((await run(['history', 'flaky', '-o', 'json'])).stdout) as { revisions: unknown[] }).revisions.length;
    expect(await history()).toBe(2);
    await row('flaky').getByTestId('rollback-btn').click();
    await screenshot('rollback-confirm');
    await page.getByTestId('confirm-ok').click();
    await waitFor(async () => (await row('flaky').getByTestId('revision').textContent()) === '3', 15_000, 'revision 3 shown');
    expect(await page.getByTestId('action-result').last().textContent()).toBe('service/flaky rolled back to revision 1 as revision 3');
    expect(await history()).toBe(3);
    await rowIn('flaky', 'healthy');
    await screenshot('rolled-back');
  });

  it('drains and uncordons a node through the dialog, and shows it unreachable when its agent freezes', async () => {
    // A service that keeps failing, so that the picture has problems in it (placed before n2 joins:
    // on n1, which stays awake).
    await apply('broken', 'command = ["sh", "-c", "sleep 1; exit 3"]\n[service.restart]\nbackoff_initial_secs = 2\nbackoff_max_secs = 4');
    agent = startAgentProcess({ api: server!.api, node: 'n2', dataDir: agentDir, token, cluster: env.cluster, extra: AGENT_FLAGS });
    await nodeIn('n2', 'ready');
    expect(await nodeRow('n2').getAttribute('data-leader')).toBe('false');
    await nodeRow('n2').getByTestId('drain-btn').click();
    await page.getByTestId('confirm-ok').click();
    await nodeIn('n2', 'draining', 10_000);
    expect(JSON.parse((await run(['nodes', '-o', 'json'])).stdout).nodes.find((n: { name: string }) => n.name === 'n2').state).toBe('draining');
    await nodeRow('n2').getByTestId('uncordon-btn').click();
    await page.getByTestId('confirm-ok').click();
    await nodeIn('n2', 'ready', 10_000);
    process.kill(agent.pid, 'SIGSTOP');
    const t0 = Date.now();
    try {
      await nodeIn('n2', 'unreachable', 15_000);
      console.log(`agent frozen → its row unreachable on the page: ${Date.now() - t0} ms (heartbeat timeout 1 s)`);
      expect(await page.getByTestId('problems').locator('[data-node="n2"]').count()).toBe(1);
      await rowIn('broken', 'crashloop', 30_000);
      await row('flaky').locator('button.exp').click();
      // The picture for docs/dashboard.png: without the earlier actions' notes over the log.
      await page.evaluate(() => document.getElementById('toasts')?.replaceChildren());
      await page.waitForTimeout(300); // let the next frame draw before the picture
      await screenshot('node-unreachable');
    } finally {
      process.kill(agent.pid, 'SIGCONT');
    }
    await stopAgentProcess(agent);
    agent = undefined;
    expect((await run(['delete', 'broken'])).code).toBe(0);
    await waitFor(async () => (await row('broken').count()) === 0, 15_000, 'broken gone from the page');
  });
});
