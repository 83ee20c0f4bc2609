import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { sleep, systemClock } from '../core/clock.js';
import { ChunkedScanner, parseLeanHead, parseResponseHead, RESPONSE_HEAD_MAX_BYTES, responseLines } from './fast-path.js';
import type { Route } from './table.js';
import { rawBody, rawRequest, recordMetrics, send, testScope, until, type TestBackend } from './test-support.js';

/**
 * The lean path (fast-path.ts): what it takes and what it leaves to the full path, the framing of
 * backend responses it relays, and hostile backends and clients over raw sockets.
 */

const { defer, backend, proxyWith } = testScope(afterEach);

const head = (text: string) => {
  const buf = Buffer.from(`${text}\r\n\r\n`, 'latin1');
  return { buf, end: buf.indexOf('\r\n\r\n') };
};
const lean = (text: string) => {
  const h = head(text);
  return parseLeanHead(h.buf, h.end);
};
const response = (text: string) => {
  const h = head(text);
  const r = parseResponseHead(h.buf, h.end);
  if (r === null) return null;
  const { lines: _, ...rest } = r;
  return { ...rest, headers: responseLines(h.buf, r) };
};

describe('parseLeanHead', () => {
  it('takes a plain GET or HEAD on HTTP/1.1 and gives the target and headers as Node would', () => {
    expect(lean('GET /a?b=1 HTTP/1.1\r\nHost: app.test\r\nX-Y:  v  ')).toEqual({ method: 'GET', close: false, target: '/a?b=1', raw: ['Host', 'app.test', 'X-Y', 'v'] });
    expect(lean('HEAD / HTTP/1.1\r\nHost: app.test\r\nConnection: close')).toMatchObject({ method: 'HEAD', close: true });
    expect(lean('GET / HTTP/1.1\r\nHost: app.test\r\nConnection: Keep-Alive')).toMatchObject({ close: false });
  });

  it('leaves everything else to the full path', () => {
    const others = [
      'POST / HTTP/1.1\r\nHost: a',
      'get / HTTP/1.1\r\nHost: a',
      'GET / HTTP/1.0\r\nHost: a',
      'GET / HTTP/1.1 \r\nHost: a',
      'GET  / HTTP/1.1\r\nHost: a',
      'GET http://a/ HTTP/1.1\r\nHost: a',
      'GET * HTTP/1.1\r\nHost: a',
      'GET /a#frag HTTP/1.1\r\nHost: a',
      'GET /a"b HTTP/1.1\r\nHost: a',
      'GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0',
      'GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked',
      'GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade',
      'GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue',
      'GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Secret',
      'GET / HTTP/1.1\r\nHost: a\r\n folded',
      'GET / HTTP/1.1\r\nHost : a',
      'GET / HTTP/1.1\r\nHost: a\r\nNoColon',
      'GET / HTTP/1.1\r\nHost: a\nX: bare-lf',
      'GET / HTTP/1.1\r\nHost: a\rX: bare-cr',
      'GET / HTTP/1.1\r\nHost: a\r\nX: nul\0',
      'GET / HTTP/1.1\r\nHost: a\r\nX: caf\xe9',
      'GET / HTTP/1.1\r\nHost: a\r\nX\x7f: del',
      'GET /\ta HTTP/1.1\r\nHost: a',
      'GET HTTP/1.1\r\nHost: a',
      'HEAD / HTTP/1.1\r\n: empty-name',
      'GET / HTTP/1.1\r\nHost: a\r\nX: tab-then-cr\t\r',
    ];
    for (const text of others) expect(lean(text), JSON.stringify(text)).toBeNull();
  });
});

describe('parseResponseHead', () => {
  it('reads framing and keep-alive and drops hop-by-hop headers', () => {
    const r = response('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\nX-End: 2');
    expect(r).toEqual({ status: 200, reason: 'OK', headers: ['Content-Length: 5', 'X-End: 2'], length: 5, chunked: false, reusable: true, keepAliveMs: 5000 });
    expect(response('HTTP/1.1 204')).toMatchObject({ status: 204, reason: '', length: -1 });
    expect(response('HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked')).toMatchObject({ chunked: true, length: -1 });
    expect(response('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5')).toMatchObject({ length: 5 });
    expect(response('HTTP/1.1 200 OK\r\nConnection: close')).toMatchObject({ reusable: false });
    expect(response('HTTP/1.0 200 OK\r\nContent-Length: 1')).toMatchObject({ reusable: false });
    expect(response('HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive')).toMatchObject({ reusable: true });
    expect(response('HTTP/1.1 200 OK\r\nX: caf\xe9')).toMatchObject({ headers: ['X: caf\xe9'] });
    // Framing and keep-alive read from the bytes in any case, the uncommon forms too.
    expect(response('HTTP/1.1 200 OK\r\ncontent-LENGTH:  0012 \r\nCONNECTION: Keep-Alive\r\nkeep-alive: timeout=7')).toMatchObject({ length: 12, reusable: true, keepAliveMs: 7000, headers: ['content-LENGTH:  0012 '] });
    expect(response('HTTP/1.0 200 OK\r\nConnection: KEEP-ALIVE\r\nKeep-Alive: max=5, timeout=3')).toMatchObject({ reusable: true, keepAliveMs: 3000, headers: [] });
    expect(response('HTTP/1.1 200 OK\r\nConnection: Close')).toMatchObject({ reusable: false });
    expect(response('HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nConnection: close')).toMatchObject({ reusable: false });
    expect(response('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=x')).toMatchObject({ keepAliveMs: undefined });
    // Lines are passed on as they came, their spacing too.
    expect(response('HTTP/1.1 200 OK\r\nX-A:1\r\nx-b: \t two  \r\nCONNECTION: X-A')).toMatchObject({ headers: ['x-b: \t two  '] });
  });

  it('refuses heads a response could be smuggled with', () => {
    const bad = [
      'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked',
      'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6',
      'HTTP/1.1 200 OK\r\nContent-Length: -1',
      'HTTP/1.1 200 OK\r\nContent-Length: 1e3',
      'HTTP/1.1 200 OK\r\nContent-Length:',
      'HTTP/1.1 200 OK\r\nContent-Length: 1 2',
      'HTTP/1.1 200 OK\r\nContent-Length: +1',
      'HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked',
      'HTTP/1.1 200 OK\r\nX: a\nContent-Length: 0',
      'HTTP/1.1 200 OK\r\nX: a\rb',
      'HTTP/1.1 200 OK\r\n folded: x',
      'HTTP/1.1 200 OK\r\nBad Name: x',
      'HTTP/2 200 OK',
      'HTTP/1.1 20 OK',
      'HTTP/1.1 600 OK',
      'HTTP/1.1 200OK',
      'SSH-2.0-OpenSSH',
    ];
    for (const text of bad) expect(response(text), JSON.stringify(text)).toBeNull();
  });
});

describe('ChunkedScanner', () => {
  const body = Buffer.from('5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nTrailer: x\r\n\r\n');

  it('finds the end of a chunked body however it is split, and only there', () => {
    for (const size of [1, 2, 3, 7, body.length]) {
      const s = new ChunkedScanner();
      let at = -1;
      let offset = 0;
      for (let i = 0; i < body.length; i += size) {
        const piece = body.subarray(i, i + size);
        const r = s.scan(piece, 0);
        if (r >= 0) {
          at = offset + r;
          break;
        }
        expect(r).toBe(-1);
        offset += piece.length;
      }
      expect(at, `pieces of ${size}`).toBe(body.length);
    }
    // What follows the body is not part of it.
    expect(new ChunkedScanner().scan(Buffer.concat([body, Buffer.from('HTTP/1.1 200 OK\r\n')]), 0)).toBe(body.length);
  });

  it('refuses malformed framing', () => {
    for (const bad of ['x\r\n', '\r\n', '5\nhello\r\n', '5\r\nhelloX\r\n', '1234567890abc\r\n', '0\r\nBad\nTrailer\r\n\r\n', `1;${'e'.repeat(5000)}\r\n`, `0\r\n${'T: x\r\n'.repeat(3000)}\r\n`]) {
      expect(new ChunkedScanner().scan(Buffer.from(bad), 0), JSON.stringify(bad.slice(0, 30))).toBe(-2);
    }
  });
});

/** A backend speaking raw bytes: `answer` is called with each request's head text and the socket. */
async function rawBackend(answer: (headText: string, socket: net.Socket, n: number) => void): Promise<{ address: string; requests: string[]; connections: number }> {
  const state = { address: '', requests: [] as string[], connections: 0 };
  const server = net.createServer((socket) => {
    state.connections++;
    socket.on('error', () => undefined);
    let buf = '';
    socket.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const text = buf.slice(0, end);
        buf = buf.slice(end + 4);
        state.requests.push(text);
        answer(text, socket, state.requests.length);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  defer(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        for (const s of sockets) s.destroy();
      }),
  );
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  state.address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

const route = (address: string, name = 'b'): Route => ({ service: 'web', host: 'app.test', path: '/', backends: [{ instance: name, address }] });
const GET = (target = '/', extra = '') => `GET ${target} HTTP/1.1\r\nHost: app.test\r\n${extra}\r\n`;

/** Reads responses on one keep-alive connection: write, then wait until `count` responses' bodies are in. */
function connection(port: number) {
  const socket = net.connect(port, '127.0.0.1');
  let text = '';
  let closed = false;
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
  socket.on('close', () => (closed = true));
  socket.on('error', () => undefined);
  defer(() => void socket.destroy());
  return {
    write: (s: string) => socket.write(s),
    text: () => text,
    closed: () => closed,
    statuses: () => [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1])),
  };
}

describe('the lean path with real sockets', () => {
  it('answers pipelined requests in order, then hands a POST over to the full path on the same connection', async () => {
    const b = await backend('b');
    const metrics = recordMetrics();
    const { port } = await proxyWith([route(b.address)], { metrics });
    const c = connection(port);
    c.write(GET('/one') + GET('/two') + 'POST /three HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\n\r\nabc' + GET('/four'));
    await until(() => c.statuses().length === 4);
    expect(c.statuses()).toEqual([200, 200, 200, 200]);
    const bodies = c.text().split(/HTTP\/1\.1 200 OK\r\n/).slice(1).map((r) => r.slice(r.indexOf('\r\n\r\n') + 4));
    expect(bodies).toEqual(['b GET /one', 'b GET /two', 'b POST /three', 'b GET /four']);
    expect(metrics.requests.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(c.closed()).toBe(false);
  });

  it('hands a head split over two reads to the full path, which still answers it', async () => {
    const b = await backend('b');
    const { port } = await proxyWith([route(b.address)]);
    const r = await rawRequest(port, ['GET /split HTTP/1.1\r\nHo', 'st: app.test\r\nConnection: close\r\n\r\n'], { gapMs: 50 });
    expect([r.status, rawBody(r)]).toEqual([200, 'b GET /split']);
  });

  it('relays a chunked response and keeps both connections for the next request', async () => {
    const b = await backend('b', (_req, res) => {
      res.write('hello ');
      setImmediate(() => res.end('world'));
    });
    const { port } = await proxyWith([route(b.address)]);
    const c = connection(port);
    c.write(GET('/a'));
    await until(() => c.text().endsWith('0\r\n\r\n'));
    c.write(GET('/b'));
    await until(() => c.text().split('0\r\n\r\n').length === 3);
    expect(c.text()).toContain('Transfer-Encoding: chunked');
    expect(c.text().replace(/\r\n/g, '|')).toContain('|6|hello |5|world|0||');
    expect(b.connections).toBe(1);
    expect(c.closed()).toBe(false);
  });

  it('relays a body that ends when the backend closes, and closes the client connection after it', async () => {
    const be = await rawBackend((_t, s) => s.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close'));
    const { port } = await proxyWith([route(be.address)]);
    const r = await rawRequest(port, GET());
    expect([r.status, rawBody(r), r.closed]).toEqual([200, 'until close', true]);
    expect(r.text).toContain('Connection: close');
  });

  it('answers 502 for a response with both framings and never reuses that backend connection', async () => {
    const be = await rawBackend((t, s) =>
      s.write(t.startsWith('GET /smuggle') ? 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged' : 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal'),
    );
    const { port } = await proxyWith([route(be.address)]);
    const c = connection(port);
    c.write(GET('/smuggle'));
    await until(() => c.statuses().length === 1);
    c.write(GET('/next'));
    await until(() => c.text().endsWith('real'));
    expect(c.statuses()).toEqual([502, 200]);
    expect(c.text()).not.toContain('forged');
    expect(be.connections).toBe(2);
  });

  it('does not reuse a backend connection that sent bytes past its response', async () => {
    const be = await rawBackend((_t, s, n) => s.write(`HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nr${n}HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged`));
    const { port } = await proxyWith([route(be.address)]);
    expect((await send(port, '/')).body).toBe('r1');
    expect((await send(port, '/')).body).toBe('r2');
    expect(be.connections).toBe(2);
  });

  it('sends a request again on a fresh connection when a kept-alive one was closed by the backend before answering', async () => {
    // The backend answers the first request on each connection and drops the connection at the second.
    const perConn = new WeakMap<net.Socket, number>();
    const be = await rawBackend((_t, s) => {
      const n = (perConn.get(s) ?? 0) + 1;
      perConn.set(s, n);
      if (n === 1) s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      else s.destroy();
    });
    const metrics = recordMetrics();
    const { port } = await proxyWith([route(be.address)], { metrics });
    expect((await send(port, '/')).status).toBe(200);
    expect((await send(port, '/')).status).toBe(200);
    expect(be.connections).toBe(2);
    expect(metrics.requests.map((r) => r.status)).toEqual([200, 200]);
  });

  it('answers HEAD without waiting for a body, skips 1xx, and keeps the connection', async () => {
    const be = await rawBackend((t, s) =>
      s.write(t.startsWith('HEAD') ? 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n' : 'HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'),
    );
    const { port } = await proxyWith([route(be.address)]);
    const c = connection(port);
    c.write(`HEAD / HTTP/1.1\r\nHost: app.test\r\n\r\n`);
    await until(() => c.statuses().length === 1);
    c.write(GET());
    await until(() => c.text().endsWith('ok'));
    expect(c.statuses()).toEqual([200, 200]);
    expect(c.text()).not.toContain('103');
    expect(be.connections).toBe(1);
  });

  it('answers 502 for a response head over the limit, or that is not HTTP', async () => {
    const be = await rawBackend((t, s) => {
      if (t.startsWith('GET /big')) s.write(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(RESPONSE_HEAD_MAX_BYTES)}`);
      else s.write('SSH-2.0-OpenSSH_9.2\r\n\r\n');
    });
    const { port } = await proxyWith([route(be.address)]);
    expect((await send(port, '/big')).status).toBe(502);
    expect((await send(port, '/ssh')).status).toBe(502);
  });

  it('cuts the client connection when a chunked body turns malformed mid-way', async () => {
    const be = await rawBackend((_t, s) => s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n'));
    const { port } = await proxyWith([route(be.address)]);
    await expect(send(port, '/')).rejects.toThrow();
    // The proxy goes on.
    const b = await backend('b');
    const second = await proxyWith([route(b.address)]);
    expect((await send(second.port, '/')).status).toBe(200);
  });

  it('gives the client a 499 and frees the backend when the client leaves mid-response', async () => {
    const be = await rawBackend((_t, s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial'));
    const metrics = recordMetrics();
    const { port, proxy } = await proxyWith([route(be.address)], { metrics });
    const c = net.connect(port, '127.0.0.1');
    c.on('error', () => undefined);
    c.write(GET());
    await new Promise((r) => c.once('data', r));
    expect(proxy.inflight(be.address)).toBe(1);
    c.destroy();
    await until(() => proxy.inflight(be.address) === 0 && metrics.requests.length === 1);
    expect(metrics.requests).toEqual([{ route: 'web', status: 499 }]);
  });

  it('relays large bodies byte for byte to concurrent clients, a slow one included, and heads split over many reads', async () => {
    // Backend reads share one buffer in the proxy: what one response leaves in flight must not
    // be overwritten by another's next read.
    const bodies = [0, 1, 2, 3].map((i) => {
      const body = Buffer.allocUnsafe(8 * 1024 * 1024);
      for (let j = 0; j < body.length; j++) body[j] = (j * (i + 7) + i) & 0xff;
      return body;
    });
    const be = await rawBackend((text, s) => {
      const i = Number(/GET \/(\d)/.exec(text)?.[1] ?? 0);
      const body = bodies[i]!;
      const headText = `HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n\r\n`;
      // The head in pieces of 5 bytes, a tick apart, then the body in pieces of odd sizes.
      let at = 0;
      const pieces: Buffer[] = [];
      for (let k = 0; k < headText.length; k += 5) pieces.push(Buffer.from(headText.slice(k, k + 5), 'latin1'));
      for (let k = 0; k < body.length; k += 100_003) pieces.push(body.subarray(k, k + 100_003));
      const next = (): void => {
        if (at >= pieces.length || s.destroyed) return;
        if (s.write(pieces[at++]!)) setImmediate(next);
        else s.once('drain', next);
      };
      next();
    });
    const { port } = await proxyWith([route(be.address)]);
    const fetchOne = (i: number, slow: boolean) =>
      new Promise<Buffer>((resolve, reject) => {
        const c = net.connect(port, '127.0.0.1');
        defer(() => void c.destroy());
        const parts: Buffer[] = [];
        c.on('error', reject);
        c.on('data', (d: Buffer) => {
          parts.push(d);
          if (slow && parts.length === 1) {
            // Reads nothing for a while: the kernel's buffers fill and the proxy's writes to
            // this client stay queued while the other backends' reads go on.
            c.pause();
            setTimeout(() => c.resume(), 300);
          }
          const all = Buffer.concat(parts);
          const end = all.indexOf('\r\n\r\n');
          if (end >= 0 && all.length - end - 4 >= bodies[i]!.length) resolve(all.subarray(end + 4));
        });
        c.write(GET(`/${i}`));
      });
    const got = await Promise.all([fetchOne(0, true), fetchOne(1, false), fetchOne(2, false), fetchOne(3, true)]);
    for (let i = 0; i < 4; i++) expect(got[i]!.equals(bodies[i]!), `body ${i}`).toBe(true);
  });

  it('reads a response head that comes a byte at a time, a 1xx before it, and relays it whole', async () => {
    const fields = Array.from({ length: 40 }, (_, i) => `X-Field-${i}: ${'v'.repeat(i)}\r\n`).join('');
    const bytes = Buffer.from(`HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n${fields}Content-Length: 4\r\n\r\nbody`, 'latin1');
    const be = await rawBackend((_t, s) => {
      s.setNoDelay(true);
      let at = 0;
      const next = (): void => {
        if (at >= bytes.length || s.destroyed) return;
        s.write(bytes.subarray(at, ++at));
        setImmediate(next);
      };
      next();
    });
    const { port } = await proxyWith([route(be.address)]);
    const c = connection(port);
    c.write(GET());
    await until(() => c.text().endsWith('body'));
    expect(c.statuses()).toEqual([200]);
    expect(c.text()).toContain(fields);
    c.write(GET());
    await until(() => c.text().split('body').length === 3);
  });

  it("keeps an idle backend connection for the backend's keep-alive time less a second, then closes it", async () => {
    const closedAt: number[] = [];
    const seen = new WeakSet<net.Socket>();
    const be = await rawBackend((text, s) => {
      if (!seen.has(s)) {
        seen.add(s);
        s.on('close', () => closedAt.push(performance.now()));
      }
      const timeout = /GET \/ka(\d)/.exec(text)?.[1] ?? '2';
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=${timeout}\r\n\r\nok`);
    });
    const { port } = await proxyWith([route(be.address)]);
    const c = connection(port);
    c.write(GET('/ka2'));
    await until(() => c.statuses().length === 1);
    await sleep(systemClock, 300);
    c.write(GET('/ka2'));
    await until(() => c.statuses().length === 2);
    const answered = performance.now();
    expect(be.connections).toBe(1); // reused within its idle time
    await until(() => closedAt.length === 1, 3_000);
    // timeout=2 → kept 1 s after its last response, closed by the proxy before the backend would.
    expect(closedAt[0]! - answered).toBeGreaterThan(800);
    expect(closedAt[0]! - answered).toBeLessThan(1_800);
    // timeout=1 leaves no time to reuse it safely: closed after its response, the next request opens another.
    c.write(GET('/ka1'));
    await until(() => c.statuses().length === 3 && closedAt.length === 2, 1_000);
    c.write(GET('/ka1'));
    await until(() => c.statuses().length === 4);
    expect(be.connections).toBe(3);
  });

  it('bounds what a client pipelines while its request is in flight', async () => {
    let release: (() => void) | undefined;
    const b: TestBackend = await backend('slow', (_req, res) => {
      release = () => res.end('done');
    });
    const { port } = await proxyWith([route(b.address)], { maxHeaderBytes: 1024 });
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    defer(() => void socket.destroy());
    await new Promise((r) => socket.once('connect', r));
    socket.write(GET());
    await until(() => release !== undefined);
    // 16 MiB of pipelined bytes: the proxy stops reading once it holds more than maxHeaderBytes,
    // so most of them stay in the client's own buffer (the kernel's loopback buffers hold a few MiB).
    for (let i = 0; i < 16; i++) socket.write(Buffer.alloc(1024 * 1024, 'x'));
    await sleep(systemClock, 300);
    expect(socket.writableLength).toBeGreaterThan(4 * 1024 * 1024);
    release?.();
  });
});
