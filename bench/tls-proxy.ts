/**
 * TLS at the edge (SPEC §3.12): the TLS handshake rate and keep-alive req/s through Orca's proxy
 * terminating TLS, beside nginx terminating TLS with the same certificate and key, in the same run,
 * to the same keep-alive backend.
 *
 *   - backend: a tiny Node http server in a child process on 127.0.0.1 (keep-alive, 200 and 19 bytes);
 *   - Orca: proxy/proxy.ts built as the server builds it, in a child process of its own, one route
 *     with tls = "manual" to the backend, listening for TLS (listenTls) with the certificate given
 *     through setEdge (ECDSA P-256, made for this run), plain listener beside it;
 *   - nginx: `ssl_certificate` the same files, TLS 1.2/1.3, HTTP/1.1, keepalive 64 to the backend,
 *     access log off, 2 workers (and 1 worker: the proxy's one event loop's CPU budget).
 * wrk -t2 -c50 over https://: "keep-alive" is req/s on 50 connections kept open; "handshakes" is
 * req/s with `Connection: close` on every request (a new TCP connection and a full TLS handshake
 * each: wrk keeps no session for resumption), i.e. the handshake rate. Each target in `rounds`
 * interleaved rounds (default 3), the median round shown beside every round's figure. Everything
 * shares this machine's CPUs (wrk too): figures compare within the run.
 *
 *   node dist/bench/tls-proxy.js [seconds=8] [rounds=3]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { systemClock } from '../core/clock.js';
import { createLogger } from '../core/log.js';
import { issueCert, makeCa } from '../test/certs.js';
import { ensureDebianTool, freePort, median, parseWrk, report, toolPath, waitForPort, wrk, type WrkResult } from './lib.js';

const HOST = 'bench.localhost';
const WRK = { threads: 2, connections: 50 };
const WARMUP_SECS = 2;
const BODY = 'orca-example web v1';

const role = process.argv[2] === '--child' ? process.argv[3] : undefined;
if (role === 'backend') backendChild();
else if (role === 'proxy') await proxyChild(Number(process.argv[4]), process.argv[5] as string);
else await main();

function backendChild(): void {
  const body = Buffer.from(BODY);
  const srv = http.createServer({ noDelay: true }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html', 'content-length': body.length });
    res.end(body);
  });
  srv.keepAliveTimeout = 65_000;
  srv.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: (srv.address() as { port: number }).port })}\n`));
  process.once('SIGTERM', () => process.exit(0));
}

/** Orca's proxy as the server builds it (prom-client metrics), TLS with the certificate in `dir`. */
async function proxyChild(backendPort: number, dir: string): Promise<void> {
  const { Proxy } = await import('../proxy/proxy.js');
  const { Metrics } = await import('../server/metrics.js');
  const metrics = new Metrics({ instances: () => Promise.resolve([]), nodes: () => [] });
  const log = createLogger({ level: 'info', pretty: false, destination: process.stderr });
  const px = new Proxy({
    log: log.child({ component: 'proxy' }),
    clock: systemClock,
    metrics: {
      request: (route: string, status: number) => metrics.proxyRequest(route, status),
      upstreamSeconds: (route: string, seconds: number) => metrics.proxyUpstreamSeconds(route, seconds),
    },
  });
  px.setRoutes([{ service: 'bench', host: HOST, path: '/', backends: [{ instance: 'b-1', address: `127.0.0.1:${backendPort}` }], tls: 'manual' }]);
  const cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
  const key = readFileSync(join(dir, 'key.pem'), 'utf8');
  // wrk names the URL's host in SNI: the same certificate for the IP it dials.
  px.setEdge({ certs: [{ host: HOST, cert, key }, { host: '127.0.0.1', cert, key }], challenges: [] });
  await px.listen('127.0.0.1', 0);
  const { port } = await px.listenTls('127.0.0.1', 0);
  process.stdout.write(`${JSON.stringify({ port })}\n`);
  process.once('SIGTERM', () => void px.close().then(() => process.exit(0)));
}

interface Child {
  proc: ChildProcess;
  port: number;
  stop: () => Promise<void>;
}

function startChild(args: string[]): Promise<Child> {
  const proc = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr?.on('data', (d) => (err += d));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    process.kill(proc.pid as number, 'SIGTERM');
    await exited;
  };
  return new Promise((resolve, reject) => {
    const timer = systemClock.setTimeout(() => {
      void stop();
      reject(new Error(`child ${args.join(' ')} did not start: ${err}`));
    }, 10_000);
    proc.stdout?.on('data', (d) => {
      out += d;
      const line = out.split('\n').find((l) => l.startsWith('{"port"'));
      if (!line) return;
      systemClock.clearTimeout(timer);
      resolve({ proc, port: (JSON.parse(line) as { port: number }).port, stop });
    });
    void exited.then(() => reject(new Error(`child ${args.join(' ')} exited: ${err}`)));
  });
}

/** nginx terminating TLS with the certificate in `certDir`, proxying to the backend (keep-alive). */
async function startTlsNginx(backendPort: number, certDir: string, workers: number): Promise<Child> {
  const dir = await mkdtemp(join(tmpdir(), 'orca-bench-nginx-tls-'));
  await chmod(dir, 0o755);
  const port = await freePort();
  const conf = `worker_processes ${workers};
daemon off;
master_process on;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream backend {
    server 127.0.0.1:${backendPort};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port} ssl default_server;
    server_name ${HOST};
    ssl_certificate ${certDir}/cert.pem;
    ssl_certificate_key ${certDir}/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-Proto https;
    }
  }
}
`;
  await writeFile(join(dir, 'nginx.conf'), conf);
  const proc = spawn(toolPath('nginx'), ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  const stop = async () => {
    if (alive()) {
      process.kill(proc.pid as number, 'SIGTERM');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitForPort(port, 10_000, alive);
  } catch (err) {
    const log = await readFile(join(dir, 'error.log'), 'utf8').catch(() => '');
    await stop();
    throw new Error(`nginx did not start: ${String(err)}\n${log}`);
  }
  return { proc, port, stop };
}

/** wrk over https with the route's Host header; `close`: a new connection (and handshake) per request. */
function measure(port: number, secs: number, close: boolean): Promise<WrkResult> {
  const url = `https://127.0.0.1:${port}/`;
  if (!close) return wrk(url, { ...WRK, durationSecs: secs, host: HOST });
  // lib.wrk sets the Host header only: Connection: close needs a second -H.
  return new Promise((resolve, reject) => {
    const args = ['--latency', `-t${WRK.threads}`, `-c${WRK.connections}`, `-d${secs}s`, '--timeout', '5s', '-H', `Host: ${HOST}`, '-H', 'Connection: close', url];
    const child = spawn(toolPath('wrk'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = systemClock.setTimeout(() => child.kill('SIGKILL'), (secs + 30) * 1000);
    child.once('close', (code) => {
      systemClock.clearTimeout(timer);
      if (code !== 0) reject(new Error(`wrk failed (${code}): ${err}${out}`));
      else resolve(parseWrk(out));
    });
  });
}

async function main(): Promise<void> {
  const secs = Number(process.argv[2] ?? 8);
  const rounds = Number(process.argv[3] ?? 3);
  ensureDebianTool('wrk', 'wrk');
  ensureDebianTool('nginx', 'nginx-light');
  const certDir = await mkdtemp(join(tmpdir(), 'orca-bench-tls-'));
  await chmod(certDir, 0o755);
  const ca = await makeCa('Orca bench CA');
  const leaf = await issueCert(ca, [HOST, '127.0.0.1']);
  await writeFile(join(certDir, 'cert.pem'), leaf.certPem);
  await writeFile(join(certDir, 'key.pem'), leaf.keyPem);
  await chmod(join(certDir, 'key.pem'), 0o644);
  const stops: Array<() => Promise<void>> = [];
  try {
    const backend = await startChild(['backend']);
    stops.push(backend.stop);
    const orcaPx = await startChild(['proxy', String(backend.port), certDir]);
    stops.push(orcaPx.stop);
    const nginx2 = await startTlsNginx(backend.port, certDir, 2);
    stops.push(nginx2.stop);
    const nginx1 = await startTlsNginx(backend.port, certDir, 1);
    stops.push(nginx1.stop);
    const targets = [
      { name: "Orca's proxy (TLS)", port: orcaPx.port },
      { name: 'nginx (TLS, 2 workers)', port: nginx2.port },
      { name: 'nginx (TLS, 1 worker)', port: nginx1.port },
    ];
    for (const t of targets) {
      await measure(t.port, WARMUP_SECS, false);
      await measure(t.port, WARMUP_SECS, true);
    }
    const results = new Map<string, { keep: WrkResult[]; close: WrkResult[] }>(targets.map((t) => [t.name, { keep: [], close: [] }]));
    for (let r = 0; r < rounds; r++) {
      for (const t of targets) {
        const slot = results.get(t.name)!;
        slot.keep.push(await measure(t.port, secs, false));
        slot.close.push(await measure(t.port, secs, true));
      }
    }
    const pick = (list: WrkResult[]) => {
      const m = median(list.map((x) => x.rps));
      return list.reduce((best, x) => (Math.abs(x.rps - m) < Math.abs(best.rps - m) ? x : best), list[0]!);
    };
    const nginxKeep = pick(results.get('nginx (TLS, 2 workers)')!.keep).rps;
    const nginxClose = pick(results.get('nginx (TLS, 2 workers)')!.close).rps;
    const rows = targets.map((t) => {
      const s = results.get(t.name)!;
      const k = pick(s.keep);
      const c = pick(s.close);
      const errs = (x: WrkResult) => `${x.non2xx}${x.socketErrors ? ` / ${x.socketErrors}` : ''}`;
      return [
        t.name,
        Math.round(k.rps),
        s.keep.map((x) => Math.round(x.rps)).join(' '),
        k.p99.toFixed(2),
        (k.rps / nginxKeep).toFixed(2),
        Math.round(c.rps),
        s.close.map((x) => Math.round(x.rps)).join(' '),
        c.p99.toFixed(2),
        (c.rps / nginxClose).toFixed(2),
        `${errs(k)}; ${errs(c)}`,
      ];
    });
    report(
      `TLS termination, wrk -t${WRK.threads} -c${WRK.connections} ${secs}s × ${rounds} rounds (median round), ECDSA P-256 certificate, keep-alive Node backend`,
      ['how', 'keep-alive req/s', 'by round', 'p99 ms', '÷ nginx', 'handshakes/s', 'by round', 'p99 ms', '÷ nginx', 'non-2xx / socket errors (keep-alive; handshakes)'],
      rows,
    );
  } finally {
    for (const s of stops.reverse()) await s().catch(() => undefined);
    await rm(certDir, { recursive: true, force: true });
  }
}
