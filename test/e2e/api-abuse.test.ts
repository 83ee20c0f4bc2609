/**
 * The API under abuse, through real sockets against a real `orca server` (SPEC §3.7): malformed
 * request targets, bad encodings, duplicate and huge headers, slow headers and bodies, idle
 * connections, a flood of 401s, clients that reset mid-stream, a container printing a 100 MB
 * line without a newline, and a `logs -f` reader that stops reading. Afterwards the server is
 * alive and `orca status` answers within a second.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { systemClock, sleep } from '../../core/clock.js';
import { cleanup, cli, dockerExec, holdsFor, ORCA, startServer, stopServer, testEnv, waitFor, type ServerProcess } from './harness.js';
import { TEST_IMAGE } from '../images.js';

interface RawResult {
  status: number | null;
  text: string;
  /** The server closed the connection (rather than our wait ending). */
  closed: boolean;
  ms: number;
}

/** Sends raw bytes to host:port and collects what comes back until the server closes or waitMs passes. */
function raw(port: number, data: string | Buffer | null, waitMs = 5_000, onSocket?: (s: Socket) => void): Promise<RawResult> {
  return new Promise((resolve) => {
    const t0 = systemClock.now();
    const s = connect(port, '127.0.0.1');
    let text = '';
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      systemClock.clearTimeout(timer);
      s.destroy();
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : null, text, closed, ms: systemClock.now() - t0 });
    };
    const timer = systemClock.setTimeout(() => finish(false), waitMs);
    s.on('data', (d) => (text += d.toString('latin1')));
    s.on('close', () => finish(true));
    s.on('error', () => finish(true));
    s.on('connect', () => {
      if (data !== null) s.write(data);
      onSocket?.(s);
    });
  });
}

/** Resident set size of a process, in MiB. */
async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return Math.round((kb / 1024) * 10) / 10;
}

describe('API abuse: nothing a client sends takes the server down', () => {
  let env: { cluster: string; dataDir: string };
  let server: ServerProcess | undefined;
  let run: ReturnType<typeof cli>;
  let port: number;
  let token: string;

  /** The server is alive: /healthz answers and `orca status` answers within a second. */
  const alive = async () => {
    expect(server!.child.exitCode).toBeNull();
    const t0 = systemClock.now();
    const r = await run(['status']);
    const ms = systemClock.now() - t0;
    expect(r.code, r.stderr).toBe(0);
    // The CLI's own start-up (node) is part of the figure; the API answers in milliseconds.
    expect(ms).toBeLessThan(1_000);
    const h = await fetch(`${server!.api}/healthz`);
    expect(h.status).toBe(200);
  };

  const apply = async (name: string, body: string) => {
    const file = join(env.dataDir, `${name}.toml`);
    await writeFile(file, `[[service]]\nname = "${name}"\nimage = "${TEST_IMAGE}"\nreplicas = 1\nstop_grace_secs = 1\n${body}\n`);
    const r = await run(['apply', '-f', file]);
    expect(r.code, r.stderr).toBe(0);
  };

  const containerOf = async (name: string): Promise<string> => {
    let id = '';
    await waitFor(
      async () => {
        const r = await run(['status', name, '-o', 'json']);
        const s = JSON.parse(r.stdout) as { services: Array<{ instances: Array<{ containerId: string | null; state: string }> }> };
        id = s.services[0]?.instances.find((i) => i.state === 'running' && i.containerId)?.containerId ?? '';
        return id !== '';
      },
      30_000,
      `a running instance of ${name}`,
    );
    return id;
  };

  beforeAll(async () => {
    env = await testEnv('abuse');
    server = await startServer(env);
    run = cli(server, env.dataDir);
    port = Number(new URL(server.api).port);
    token = (await readFile(join(env.dataDir, 'cluster.token'), 'utf8')).trim();
  });

  afterAll(async () => {
    await stopServer(server);
    await cleanup(env.cluster, env.dataDir);
  });

  it('malformed request targets and bad encodings are 4xx answers, not a crash', async () => {
    const auth = `Authorization: Bearer ${token}\r\n`;
    const cases: Array<[string, number]> = [
      ['GET http://a:99999/ HTTP/1.1\r\nHost: a\r\n\r\n', 400],
      ['GET http://a:99999/v1/status HTTP/1.1\r\nHost: a\r\n' + auth + '\r\n', 400],
      ['GET http://[::1/ HTTP/1.1\r\nHost: a\r\n\r\n', 400],
      ['GET * HTTP/1.1\r\nHost: a\r\n\r\n', 400],
      ['OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n', 400],
      ['GET /v1/services/%E0%A4%A/history HTTP/1.1\r\nHost: a\r\n' + auth + '\r\n', 400],
      ['POST /v1/services/%ZZ/rollback HTTP/1.1\r\nHost: a\r\n' + auth + 'Content-Length: 2\r\n\r\n{}', 400],
      ['GET /v1/services/%/history HTTP/1.1\r\nHost: a\r\n' + auth + '\r\n', 400],
      ['GET /v1/events?since=%FF%FE HTTP/1.1\r\nHost: a\r\n' + auth + '\r\n', 400],
      ['GARBAGE\r\n\r\n', 400],
      ['GET / HTTP/9.9\r\nHost: a\r\n\r\n', 400],
      ['GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n', 400],
      // Duplicate headers: which one counts would be ambiguous.
      ['GET /v1/status HTTP/1.1\r\nHost: a\r\nHost: b\r\n' + auth + '\r\n', 400],
      ['GET /v1/status HTTP/1.1\r\nHost: a\r\n' + auth + 'Authorization: Bearer other\r\n\r\n', 400],
      ['POST /v1/apply HTTP/1.1\r\nHost: a\r\n' + auth + 'Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}', 400],
      // Odd headers.
      ['GET /v1/status HTTP/1.1\r\nHost: a\r\nX-Bad\x01Name: 1\r\n\r\n', 400],
      ['GET /v1/status HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n', 400],
      ['GET /v1/status HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n', 400],
    ];
    for (const [req, status] of cases) {
      // Connection: close, so that an answer on a keep-alive connection ends the exchange.
      const r = await raw(port, req.replace('Host: a\r\n', 'Host: a\r\nConnection: close\r\n'));
      expect(r.status, `${JSON.stringify(req)} → ${r.text.slice(0, 200)}`).toBe(status);
    }
    // A bad encoding says what was wrong.
    const r = await raw(port, 'GET /v1/services/%E0%A4%A/history HTTP/1.1\r\nHost: a\r\nConnection: close\r\n' + auth + '\r\n');
    expect(r.text).toContain('bad percent-encoding');
    await alive();
  });

  it('10,000 headers and a 1 MB header are refused with 431', async () => {
    const many = 'GET /v1/status HTTP/1.1\r\nHost: a\r\n' + Array.from({ length: 10_000 }, (_, i) => `X-H${i}: v\r\n`).join('') + '\r\n';
    expect((await raw(port, many)).status).toBe(431);
    const huge = `GET /v1/status HTTP/1.1\r\nHost: a\r\nX-Big: ${'b'.repeat(1024 * 1024)}\r\n\r\n`;
    const r = await raw(port, huge);
    expect([431, null]).toContain(r.status);
    expect(r.closed).toBe(true);
    const longTarget = `GET /${'p'.repeat(100_000)} HTTP/1.1\r\nHost: a\r\n\r\n`;
    expect((await raw(port, longTarget)).status).toBe(431);
    await alive();
  });

  it('slow headers, slow bodies and idle connections are timed out while others are served', async () => {
    const slowHeaders = raw(port, 'GET /v1/status HTTP/1.1\r\nHost: a\r\n', 40_000);
    const slowBody = raw(port, `POST /v1/apply HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${token}\r\nContent-Length: 100000\r\n\r\n{"files":`, 40_000);
    // A drip-feed: one header byte a second never completes the headers.
    const drip = raw(port, null, 40_000, (s) => {
      const text = 'GET /v1/status HTTP/1.1\r\nHost: a\r\nX-Slow: ' + 'x'.repeat(100);
      let i = 0;
      const tick = () => {
        if (s.destroyed || i >= text.length) return;
        s.write(text[i++] ?? '');
        systemClock.setTimeout(tick, 1_000);
      };
      tick();
    });
    const idle = Array.from({ length: 100 }, () => raw(port, null, 40_000));
    // Meanwhile the API serves everyone else.
    await sleep(systemClock, 1_000);
    await alive();
    const [h, b, d, ...rest] = await Promise.all([slowHeaders, slowBody, drip, ...idle]);
    expect(h.closed && h.status).toBe(408);
    expect(h.ms).toBeLessThan(15_000);
    expect(d.closed).toBe(true);
    expect(d.ms).toBeLessThan(15_000);
    expect(b.closed).toBe(true);
    expect(b.ms).toBeLessThan(35_000);
    for (const r of rest) {
      expect(r.closed).toBe(true);
      expect(r.ms).toBeLessThan(15_000);
    }
    await alive();
  });

  it('a flood of 401s: every one answered and counted, a handful of log lines, never the token', async () => {
    const wrong = 'wrong-token-' + 'z'.repeat(20);
    const before = (server!.logs().match(/unauthorized API request/g) ?? []).length;
    let refused = 0;
    for (let batch = 0; batch < 20; batch++) {
      const answers = await Promise.all(
        Array.from({ length: 100 }, () => fetch(`${server!.api}/v1/status`, { headers: { authorization: `Bearer ${wrong}` } }).then((r) => r.status)),
      );
      refused += answers.filter((s) => s === 401).length;
    }
    expect(refused).toBe(2_000);
    // The log lines of the last refusals may still be on their way: the count must stay bounded.
    const refusalLines = () => server!.logs().split('\n').filter((l) => l.includes('unauthorized API request')).length - before;
    await holdsFor(() => refusalLines() <= 2, 500, 'at most 2 refusal log lines');
    expect(server!.logs()).not.toContain(wrong);
    const metrics = await (await fetch(`${server!.api}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
    const counted = Number(/^orca_api_unauthorized_total (\d+)/m.exec(metrics)?.[1] ?? 0);
    expect(counted).toBeGreaterThanOrEqual(2_000);
    await alive();
  });

  it('clients that reset mid-request, mid-stream or mid-upgrade are no unhandled errors', async () => {
    const auth = `Authorization: Bearer ${token}\r\n`;
    const resets: Array<Promise<RawResult>> = [];
    for (let i = 0; i < 20; i++) {
      // Reset right after asking for a follow stream.
      resets.push(raw(port, `GET /v1/events?follow=1 HTTP/1.1\r\nHost: a\r\n${auth}\r\n`, 2_000, (s) => systemClock.setTimeout(() => s.resetAndDestroy(), 50)));
      // Reset in the middle of a body.
      resets.push(raw(port, `POST /v1/apply HTTP/1.1\r\nHost: a\r\n${auth}Content-Length: 1000\r\n\r\n{"fi`, 2_000, (s) => systemClock.setTimeout(() => s.resetAndDestroy(), 20)));
      // Reset a refused agent upgrade.
      resets.push(
        raw(port, 'GET /v1/agent HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer nope\r\n\r\n', 2_000, (s) =>
          s.resetAndDestroy(),
        ),
      );
      // An upgrade with a malformed target.
      resets.push(raw(port, 'GET http://a:99999/v1/agent HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n', 2_000));
    }
    await Promise.all(resets);
    await alive();
  });

  it('a container printing a 100 MB line without a newline: logs cut it, the server stays small', async () => {
    await apply('bigline', `command = ["sh", "-c", "head -c 100000000 /dev/zero | tr '\\\\0' a; touch /tmp/written; sleep 3600"]`);
    const id = await containerOf('bigline');
    const rssBefore = await rssMiB(server!.pid);
    let rssMax = rssBefore;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        rssMax = Math.max(rssMax, await rssMiB(server!.pid));
        await sleep(systemClock, 100);
      }
    })();
    // Follow while it is being written: the cut line arrives as soon as it reaches the cap.
    const follower = spawn(process.execPath, [ORCA, '--api', server!.api, '--data-dir', env.dataDir, 'logs', 'bigline', '-f'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let followed = '';
    follower.stdout.on('data', (d) => (followed += d));
    await waitFor(() => followed.includes('the rest was cut'), 60_000, 'the cut line through logs -f');
    await waitFor(
      () => {
        try {
          dockerExec(id, 'test', '-f', '/tmp/written');
          return true;
        } catch {
          return false;
        }
      },
      120_000,
      'the 100 MB written',
      500,
    );
    // The whole 100 MB through the agent and the server, once more, without -f.
    const t0 = systemClock.now();
    const r = await run(['logs', 'bigline'], 120_000);
    const readMs = systemClock.now() - t0;
    sampling = false;
    await sampler;
    follower.kill('SIGINT');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.length).toBeLessThan(20 * 1024);
    expect(r.stdout).toMatch(/^a{16384} …\[orca: line longer than 16384 characters; the rest was cut\]\n$/);
    expect(followed.length).toBeLessThan(20 * 1024);
    console.log(`100 MB line: server RSS ${rssBefore} MiB before, at most ${rssMax} MiB while streaming; read in ${readMs} ms`);
    expect(rssMax - rssBefore).toBeLessThan(100);
    await alive();
  });

  it('logs -f to a reader that stopped reading: the server memory stays flat (ORCA_MEASURE_STALL_SECS, default 20)', async () => {
    const stallSecs = Number(process.env.ORCA_MEASURE_STALL_SECS ?? 20);
    // About 1 MB/s of output, 100-character lines.
    await apply('chatty', `command = ["sh", "-c", "while :; do head -c 10000 /dev/zero | tr '\\\\0' c | fold -w 100; usleep 10000; done"]`);
    await containerOf('chatty');
    const rssStart = await rssMiB(server!.pid);
    let received = 0;
    let sock: Socket | undefined;
    const stream = raw(port, `GET /v1/services/chatty/logs?follow=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${token}\r\n\r\n`, (stallSecs + 30) * 1000, (s) => {
      sock = s;
      s.on('data', (d) => (received += d.length));
    });
    await waitFor(() => received > 100_000, 30_000, 'the log stream flowing');
    // The reader stops reading.
    sock!.pause();
    await sleep(systemClock, 2_000);
    const rssStalled = await rssMiB(server!.pid);
    const samples: number[] = [];
    for (let t = 0; t < stallSecs; t += 5) {
      await sleep(systemClock, 5_000);
      samples.push(await rssMiB(server!.pid));
    }
    const rssEnd = samples.at(-1) ?? rssStalled;
    console.log(`logs -f stalled reader: server RSS ${rssStart} MiB at start, ${rssStalled} MiB when stalled, ${samples.join(' / ')} MiB every 5 s over ${stallSecs} s`);
    // Flat: a stalled reader costs at most a few MiB more, however long the container talks.
    expect(Math.max(...samples) - rssStalled).toBeLessThan(30);
    expect(rssEnd - rssStart).toBeLessThan(60);
    await alive();
    sock!.resume();
    sock!.destroy();
    await stream;
  });
});
