import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:net';
import { ManualClock } from '../../core/clock.js';
import { FakeRuntime } from '../../runtime/fake-runtime.js';
import { httpCheck, realProbeChecks } from './checks.js';

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

/** A server on 127.0.0.1 that answers each connection with `reply` (what it received goes to `got`). */
async function rawServer(reply: (c: import('node:net').Socket, got: string[]) => void): Promise<{ port: number; got: string[] }> {
  const got: string[] = [];
  const s = createServer((c) => {
    c.on('error', () => {});
    let req = '';
    c.on('data', (d) => {
      req += d;
      if (req.includes('\r\n\r\n')) {
        got.push(req);
        reply(c, got);
      }
    });
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return { port: (s.address() as { port: number }).port, got };
}

describe('realProbeChecks: HTTP', () => {
  it('sends a plain GET and passes on 200–399, fails on other statuses, with the status as detail', async () => {
    for (const [status, ok] of [[200, true], [302, true], [399, true], [404, false], [503, false]] as const) {
      const srv = await rawServer((c) => c.end(`HTTP/1.1 ${status} Whatever\r\nContent-Length: 2\r\n\r\nok`));
      expect(await httpCheck('127.0.0.1', srv.port, '/ready?x=1', 1000)).toEqual({ ok, detail: `HTTP ${status}` });
      expect(srv.got[0]).toBe(`GET /ready?x=1 HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nUser-Agent: orca-probe\r\nConnection: close\r\n\r\n`);
    }
  });

  it('reads a head that arrives in pieces and does not wait for the body', async () => {
    const srv = await rawServer((c) => {
      c.write('HTTP/1.0 20');
      setTimeout(() => c.write('4 No Content\r\nX-A: 1\r\n'), 20);
      setTimeout(() => c.write('\r\n'), 40); // the body never comes and the connection stays open
    });
    expect(await httpCheck('127.0.0.1', srv.port, '/', 1000)).toEqual({ ok: true, detail: 'HTTP 204' });
  });

  it('fails on what is not an HTTP/1.x response, a head that never ends, a close before the head ends, silence, a refusal', async () => {
    const garbage = await rawServer((c) => c.end('SSH-2.0-OpenSSH\r\n\r\n'));
    expect(await httpCheck('127.0.0.1', garbage.port, '/', 1000)).toEqual({ ok: false, detail: 'not an HTTP/1.x response' });
    const endless = await rawServer((c) => {
      c.write('HTTP/1.1 200 OK\r\n');
      const t = setInterval(() => (c.destroyed ? clearInterval(t) : c.write(`X-Pad: ${'a'.repeat(1000)}\r\n`)), 1);
    });
    expect(await httpCheck('127.0.0.1', endless.port, '/', 2000)).toEqual({ ok: false, detail: 'the response head is longer than 16384 bytes' });
    const cut = await rawServer((c) => c.end('HTTP/1.1 200 OK\r\n'));
    expect(await httpCheck('127.0.0.1', cut.port, '/', 1000)).toEqual({ ok: false, detail: 'the connection closed before the response head ended' });
    const silent = await rawServer(() => {});
    expect(await httpCheck('127.0.0.1', silent.port, '/', 100)).toEqual({ ok: false, detail: 'timed out after 100 ms' });
    const closed = await forwarder();
    expect((await httpCheck('127.0.0.1', closed, '/', 1000)).ok).toBe(false);
    servers.splice(0).forEach((s) => s.close());
    const r = await httpCheck('127.0.0.1', closed, '/', 1000);
    expect(r.ok).toBe(false);
    expect(r.detail).toMatch(/ECONNREFUSED/);
  });

  it('fails at its timeout in all, not per silence: a head dripped a byte at a time does not hold the probe open', async () => {
    const timers: NodeJS.Timeout[] = [];
    const drip = await rawServer((c) => {
      c.write('HTTP/1.1 200 OK\r\n');
      timers.push(setInterval(() => c.writable && c.write('X'), 40));
    });
    const t0 = Date.now();
    const r = await httpCheck('127.0.0.1', drip.port, '/', 300);
    for (const t of timers) clearInterval(t);
    expect(r).toEqual({ ok: false, detail: 'timed out after 300 ms' });
    expect(Date.now() - t0).toBeLessThan(1500);
  });

  it('does not put a path with spaces or control characters on the request line', async () => {
    const srv = await rawServer((c) => c.end('HTTP/1.1 200 OK\r\n\r\n'));
    for (const path of ['/a b', '/a\r\nX-Evil: 1', '/é']) {
      const r = await httpCheck('127.0.0.1', srv.port, path, 1000);
      expect(r.ok).toBe(false);
    }
    expect(srv.got).toEqual([]);
  });
});
