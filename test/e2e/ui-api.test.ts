import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TEST_IMAGE } from '../images.js';
import { cleanup, cli, containerMainPid, startServer, stopServer, testEnv, waitFor, type ServerProcess } from './harness.js';

interface Message {
  event: string;
  data: any;
  at: number;
}

/** Reads the dashboard's stream as a browser would (the cookie, no token), message by message. */
async function openStream(api: string, cookie: string) {
  const abort = new AbortController();
  const res = await fetch(`${api}/ui/stream`, { headers: { cookie }, signal: abort.signal });
  const messages: Message[] = [];
  const done = (async () => {
    if (!res.body) return;
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of res.body) {
        buf += decoder.decode(chunk as Uint8Array, { stream: true });
        for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (block.startsWith(':')) continue;
          const event = /^event: (.*)$/m.exec(block)?.[1] ?? '';
          messages.push({ event, data: JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? 'null'), at: Date.now() });
        }
      }
    } catch {
      /* aborted */
    }
  })();
  return { res, messages, close: async () => (abort.abort(), await done) };
}

describe('the dashboard API on a real server and real Docker', () => {
  let env: { cluster: string; dataDir: string };
  let server: ServerProcess | undefined;
  let token: string;

  beforeAll(async () => {
    env = await testEnv('ui-api');
    server = await startServer({ ...env });
    token = readFileSync(join(env.dataDir, 'cluster.token'), 'utf8').trim();
  });
  afterAll(async () => {
    await stopServer(server);
    if (env) await cleanup(env.cluster, env.dataDir);
  });

  const login = (body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
    fetch(`${server!.api}/ui/login`, { method: 'POST', headers, body: JSON.stringify(body) });

  it('signs in with the token, streams a service, its crash and its recovery', async () => {
    const api = server!.api;
    // Wrong token, form post: refused, no cookie.
    const wrong = await login({ token: 'not-the-token' });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('set-cookie')).toBeNull();
    expect((await login({ token }, { 'content-type': 'application/x-www-form-urlencoded' })).status).toBe(415);
    expect((await fetch(`${api}/ui`, { redirect: 'manual' })).status).toBe(302);

    const ok = await login({ token }, { 'content-type': 'application/json', origin: api });
    expect(ok.status).toBe(200);
    const setCookie = ok.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(/HttpOnly; SameSite=Strict/);
    const cookie = setCookie.split(';')[0]!;
    expect((await fetch(`${api}/ui`, { headers: { cookie } })).status).toBe(200);

    const stream = await openStream(api, cookie);
    try {
      expect(stream.res.status).toBe(200);
      await waitFor(() => stream.messages.length >= 1, 10_000, 'the snapshot');
      expect(stream.messages[0]!.event).toBe('snapshot');
      expect(stream.messages[0]!.data.nodes.map((n: { name: string }) => n.name)).toEqual(['n1']);
      expect(stream.messages[0]!.data.servers[0]).toMatchObject({ name: 'n1', role: 'leader' });

      // Applied with the CLI (the bearer token, as JSON).
      const file = join(env.dataDir, 'web.toml');
      await writeFile(file, `[[service]]\nname = "web"\nimage = "${TEST_IMAGE}"\ncommand = ["sleep", "3600"]\nstop_grace_secs = 0.5\n`);
      const applied = await cli(server!, env.dataDir)(['apply', '-f', file]);
      expect(applied.code, applied.stderr).toBe(0);
      const webRows = () => stream.messages.filter((m) => m.event === 'services').flatMap((m) => (m.data.changed as any[]).filter((s) => s.name === 'web').map((s) => ({ s, at: m.at })));
      await waitFor(() => webRows().some(({ s }) => s.state === 'healthy' && s.replicas.ready === 1 && s.instances[0]?.containerId), 30_000, 'web healthy in a services message');
      const healthy = webRows().find(({ s }) => s.state === 'healthy' && s.replicas.ready === 1)!.s;
      const victim = healthy.instances[0];
      // Each services message holds only changed rows: never the same row twice in a row.
      const texts = webRows().map(({ s }) => JSON.stringify(s));
      for (let i = 1; i < texts.length; i++) expect(texts[i]).not.toBe(texts[i - 1]);

      const before = stream.messages.length;
      const killedAt = Date.now();
      process.kill(containerMainPid(victim.containerId), 'SIGKILL');
      // The row changes (the instance is gone or not ready, then a replacement), and a recovery comes.
      await waitFor(() => webRows().some(({ s, at }) => at >= killedAt && (s.replicas.ready === 0 || s.instances.some((i: { id: string }) => i.id !== victim.id))), 15_000, 'web changed after the kill');
      await waitFor(() => stream.messages.slice(before).some((m) => m.event === 'recovery' && m.data.service === 'web'), 20_000, 'a recovery message');
      const recovery = stream.messages.slice(before).find((m) => m.event === 'recovery')!.data;
      expect(recovery).toMatchObject({ service: 'web', node: 'n1' });
      expect(recovery.instance).not.toBe(victim.id);
      expect(recovery.ms).toBeGreaterThan(0);
      expect(recovery.ms).toBeLessThan(20_000);
      expect(typeof recovery.reason).toBe('string');
      expect(Number.isNaN(Date.parse(recovery.time))).toBe(false);
      // The replacement, ready, in a later row; the reconciliation log said why.
      await waitFor(() => webRows().some(({ s }) => s.state === 'healthy' && s.replicas.ready === 1 && s.instances.some((i: { id: string; ready: boolean }) => i.id === recovery.instance && i.ready)), 15_000, 'the replacement ready in a services message');
      const logged = stream.messages.slice(before).flatMap((m) => (m.event === 'event' ? [m.data] : m.event === 'events' ? m.data.events : []));
      expect(logged.some((e: { action: string; service: string; reason: string }) => e.service === 'web' && e.action === 'container.create' && e.reason.startsWith('replace-after-'))).toBe(true);
      console.log(`recovery ${recovery.ms} ms (${recovery.reason}); first changed row ${webRows().find(({ at }) => at >= killedAt)!.at - killedAt} ms after the kill`);
    } finally {
      await stream.close();
    }

    // Cross-site writes with the cookie are refused on the real server too; the dashboard's own goes through.
    const drain = (headers: Record<string, string>) => fetch(`${api}/v1/nodes/n1/uncordon`, { method: 'POST', headers: { cookie, ...headers }, body: '{}' });
    expect((await drain({ 'content-type': 'application/json', origin: 'http://evil.example' })).status).toBe(403);
    expect((await drain({ 'content-type': 'text/plain', origin: api })).status).toBe(415);
    expect((await drain({ 'content-type': 'application/json', origin: api })).status).toBe(200);
    // A bearer-token apply as text/plain: 415, nothing applied.
    const plain = await fetch(`${api}/v1/apply`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' }, body: JSON.stringify({ files: [{ file: 'x.toml', text: `[[service]]\nname = "sneaky"\nimage = "${TEST_IMAGE}"\n` }] }) });
    expect(plain.status).toBe(415);
    const status = (await (await fetch(`${api}/v1/status`, { headers: { cookie } })).json()) as { services: Array<{ name: string }> };
    expect(status.services.map((s) => s.name)).toEqual(['web']);
  });
});
