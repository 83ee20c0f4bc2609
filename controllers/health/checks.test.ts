import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:net';
import { ManualClock } from '../../core/clock.js';
import { FakeRuntime } from '../../runtime/fake-runtime.js';
import { realProbeChecks } from './checks.js';

const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

/** A port on 127.0.0.1 that accepts, as Docker's forwarder does for every published port. */
async function forwarder(): Promise<number> {
  const s = createServer((c) => c.destroy());
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return (s.address() as { port: number }).port;
}

async function container(rt: FakeRuntime, command: string[]) {
  const id = await rt.create({ name: `c${Math.random().toString(36).slice(2, 8)}`, image: 'img:1', command, env: {}, labels: {}, hostIp: '127.0.0.1', init: true, stopGraceSecs: 1, port: 8081 });
  await rt.start(id);
  return id;
}

describe('realProbeChecks: TCP', () => {
  const rt = new FakeRuntime(new ManualClock());
  rt.addImage('img:1', { cmd: ['sleep', '3600'] });

  it('fails when nothing in the container listens on the port, even though the published port accepts', async () => {
    const id = await container(rt, ['/bin/httpd', '-f', '-p', '80']);
    const r = await realProbeChecks(rt).tcp('127.0.0.1', await forwarder(), 500, { containerId: id, containerPort: 8081 });
    expect(r).toEqual({ ok: false, detail: 'nothing listens on port 8081 inside the container (it listens on 80)' });
  });

  it('passes when the app listens inside and the published port connects', async () => {
    const id = await container(rt, ['/bin/httpd', '-f', '-p', '8081']);
    expect(await realProbeChecks(rt).tcp('127.0.0.1', await forwarder(), 500, { containerId: id, containerPort: 8081 })).toEqual({ ok: true, detail: 'connected' });
  });

  it('fails for a listener on the container’s loopback only', async () => {
    const id = await container(rt, ['/bin/httpd', '-f', '-p', '127.0.0.1:8081']);
    const r = await realProbeChecks(rt).tcp('127.0.0.1', await forwarder(), 500, { containerId: id, containerPort: 8081 });
    expect(r.ok).toBe(false);
    expect(r.detail).toMatch(/127\.0\.0\.1 port 8081 only/);
  });

  it('fails for a container that is gone', async () => {
    const r = await realProbeChecks(rt).tcp('127.0.0.1', await forwarder(), 500, { containerId: 'gone', containerPort: 8081 });
    expect(r.ok).toBe(false);
  });
});
