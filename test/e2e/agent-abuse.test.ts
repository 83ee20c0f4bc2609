import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { TEST_IMAGE } from '../images.js';
import { PROTOCOL_VERSION } from '../../protocol/messages.js';
import { cleanup, cli, startServer, stopServer, testEnv, waitFor, type ServerProcess } from './harness.js';

/** A fake agent over a real WebSocket with the cluster token: sends what it is told, records how it ends. */
async function fakeAgent(api: string, token: string) {
  const ws = new WebSocket(`${api.replace(/^http/, 'ws')}/v1/agent`, { headers: { authorization: `Bearer ${token}` } });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const got: string[] = [];
  let closed: number | null = null;
  ws.on('message', (d) => got.push(d.toString()));
  ws.on('close', (code) => (closed = code));
  ws.on('error', () => undefined);
  return { ws, got, closed: () => closed, send: (m: unknown) => ws.send(typeof m === 'string' ? m : JSON.stringify(m)) };
}

describe('a fake agent sending wrong messages to a real server', () => {
  let env: { cluster: string; dataDir: string };
  let server: ServerProcess | undefined;
  let run: ReturnType<typeof cli>;
  let token: string;

  beforeAll(async () => {
    env = await testEnv('abuse');
    server = await startServer({ ...env, extra: ['--watchdog-interval', '60'] });
    run = cli(server, env.dataDir);
    token = (await readFile(join(env.dataDir, 'cluster.token'), 'utf8')).trim();
    const file = join(env.dataDir, 'web.toml');
    await writeFile(file, `[[service]]\nname = "web"\nimage = "${TEST_IMAGE}"\ncommand = ["sh", "-c", "mkdir -p /tmp/www && echo real > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www"]\nreplicas = 1\nport = 80\nstop_grace_secs = 0.5\n\n[service.route]\nhost = "web.localhost"\n`);
    expect((await run(['apply', '-f', file, '--wait', '--timeout', '60'])).code).toBe(0);
  });

  afterAll(async () => {
    await stopServer(server);
    await cleanup(env.cluster, env.dataDir);
  });

  it('routes nothing of it, keeps the server’s own events and times, bounds /metrics, and stays up', async () => {
    const apiPort = Number(new URL(server!.api).port);
    const evil = await fakeAgent(server!.api, token);
    evil.send({ type: 'hello', v: PROTOCOL_VERSION, node: 'evil', cluster: env.cluster, advertise: '127.0.0.1', labels: {}, capacity: {}, reports: [], endpoints: [] });
    await waitFor(() => evil.got.some((t) => t.includes('"welcome"')), 10_000, 'welcome');
    const status = JSON.parse((await run(['status', 'web', '-o', 'json'])).stdout) as { services: Array<{ instances: Array<{ id: string }> }> };
    const realId = status.services[0]!.instances[0]!.id;
    evil.send({
      type: 'endpoints',
      endpoints: [
        { service: 'web', instance: realId, address: `127.0.0.1:${apiPort}` }, // n1's instance, the server's own API port
        { service: 'web', instance: 'web-1-0-evil', address: `127.0.0.1:${apiPort}` },
        { service: 'web', instance: 'web-1-0-evi2', address: '203.0.113.9:80' },
      ],
    });
    const yearAhead = new Date(Date.now() + 365 * 24 * 3600_000).toISOString();
    for (let m = 0; m < 10; m++) {
      evil.send({
        type: 'event',
        records: Array.from({ length: 1000 }, (_, i) => ({
          time: yearAhead, reconciler: `r${m}-${i}`, service: null, instance: null, node: null, action: `junk.${m}-${i}`, reason: 'x', outcome: `o${i}`, durationMs: 1,
        })),
      });
    }
    evil.send({ type: 'event', records: [{ time: yearAhead, reconciler: 'health', service: null, instance: null, node: 'n1', action: 'instance.ready', reason: 'evil-was-here', outcome: 'ok', durationMs: 0 }] });
    evil.send('not json');
    evil.send({ type: 'heartbeat', seq: 'nope' });
    evil.send('x'.repeat(2 * 1024 * 1024)); // over maxPayload: this session is closed, the server goes on
    await waitFor(() => evil.closed() !== null, 10_000, 'oversized payload closes the session');

    expect((await fetch(`${server!.api}/healthz`)).status).toBe(200);
    // Through the proxy: still the real instance, never the API.
    const { httpClient } = await import('./http-client.js');
    const http = httpClient(server!.proxy!);
    try {
      for (let i = 0; i < 5; i++) {
        const r = await http.get('web.localhost');
        expect(r).toEqual({ status: 200, body: 'real\n' });
      }
    } finally {
      http.close();
    }
    const metrics = await (await fetch(`${server!.api}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
    expect(metrics).not.toContain('junk.');
    expect(metrics.split('\n').length).toBeLessThan(2000);
    const ev = await run(['events', '-o', 'json']);
    const lines = ev.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { time: string; action: string; node: string | null; reason: string; reconciler: string });
    expect(lines.some((e) => e.reconciler === 'container' && e.action === 'container.create' && e.node === 'n1')).toBe(true);
    expect(lines.some((e) => e.action.startsWith('junk.'))).toBe(false);
    const stamped = lines.find((e) => e.reason === 'evil-was-here');
    expect(stamped?.node).toBe('evil');
    expect(Date.parse(stamped!.time)).toBeLessThanOrEqual(Date.now());
    expect(lines.every((e) => Date.parse(e.time) <= Date.now())).toBe(true);
  });
});
