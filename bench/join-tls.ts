/**
 * The cost of a secure cluster (issue 13, SPEC §3.10), beside plaintext measured in the same run.
 *
 * Two `orca server`s on 127.0.0.1 (ports chosen by the OS, temp data dirs, each its own
 * --cluster-id, --no-local-agent so that only the bench's agents talk to them): one with --tls,
 * one in plaintext.
 *
 * 1. Agent join, spawn → ready. Per join a new node name, data dir and (for a join token) a new
 *    token made with `orca token create --uses 1` (its wall time is shown, not counted). t0 is
 *    the spawn of `orca agent --join <api> --token-file F` (never given the CA file or the admin
 *    token: it learns the CA from the token's pin) or `orca agent --join <api> --token <admin>`;
 *    t_ready is when GET /v1/nodes (what `orca nodes -o json` reads; admin token, keep-alive,
 *    polled every POLL_MS) first shows the node `ready`. Also taken, as their lines arrive here:
 *    the agent's "joined: node credential stored" (token exchange done) and the server's
 *    "agent session established" for the node. Three ways, interleaved per round:
 *      admin token over ws://  (the baseline: no exchange, no TLS)
 *      join token over ws://   (the exchange without TLS)
 *      join token over wss://  (the exchange, the CA pin and TLS: what the secure cluster does)
 *    One warm-up join of each (not counted) first.
 * 2. TLS on an established session: a raw `ws` client speaking the agent protocol with the admin
 *    token (wss: trusting <data-dir>/tls/ca.crt), hello as its own node, then
 *      heartbeat RTT: `heartbeat {seq}` → `heartbeat-ack`, sequential;
 *      1,000-instance report: a `state` with 1,000 reports and 1,000 endpoints (of instances not
 *      assigned to the node: the server validates and keeps them, never routes them), then a
 *      heartbeat; timed until that heartbeat's ack (messages are handled in order). If the
 *      state did not fit in LIMITS.agentMessageBudget it is split with `more` as the agent does.
 *    Plaintext and TLS alternate in rounds (all heartbeat rounds, then all report rounds); a
 *    warm-up each first. Also: a new connection's cost, TCP connect to the plaintext API vs TCP
 *    + TLS handshake (trusting the CA) to the TLS one, and `orca --version` as the floor of any
 *    orca process (what a join cannot go under).
 *
 *   node dist/bench/join-tls.js [joins=5] [heartbeats=500] [reports=50]
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as netConnect } from 'node:net';
import type { Readable } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { Agent as HttpDispatcher, request } from 'undici';
import { WebSocket } from 'ws';
import { sleep, systemClock } from '../core/clock.js';
import { agentUrl } from '../agent/main.js';
import { LIMITS, PROTOCOL_VERSION, type AgentMessage, type Endpoint } from '../protocol/messages.js';
import type { InstanceReport } from '../protocol/reports.js';
import { jsonBytes, splitByBytes } from '../protocol/split.js';
import {
  cleanup,
  orca,
  ORCA,
  ROOT,
  startAgentProcess,
  startServer,
  stopAgentProcess,
  stopServer,
  testEnv,
  waitFor,
  type AgentProcess,
  type ServerProcess,
} from '../test/e2e/harness.js';
import { percentile, report, series, timeCommand } from './lib.js';

const joins = Number(process.argv[2] ?? 5);
const heartbeats = Number(process.argv[3] ?? 500);
const stateReports = Number(process.argv[4] ?? 50);
if (
  !Number.isInteger(joins) || joins < 1 || joins > 30 ||
  !Number.isInteger(heartbeats) || heartbeats < 10 || heartbeats > 20_000 ||
  !Number.isInteger(stateReports) || stateReports < 2 || stateReports > 1000
) {
  process.stderr.write('usage: node dist/bench/join-tls.js [joins=5 (1..30)] [heartbeats=500 (10..20000)] [reports=50 (2..1000)]\n');
  process.exit(2);
}
const POLL_MS = 20;
const JOIN_TIMEOUT_MS = 30_000;
const ENDPOINTS = 1000;
const ROUNDS = 5;
const HANDSHAKES = 50;
/** The same for every agent of either kind: a failed first dial is retried quickly (and counted). */
const AGENT_FLAGS = ['--reconnect-initial', '0.2', '--reconnect-max', '0.5'];
const LOG_ENV = { ORCA_LOG_LEVEL: 'info' };
// "Never given the CA file": not through the environment either.
delete process.env.ORCA_CA_CERT;
delete process.env.ORCA_JOIN_TOKEN;

/** Calls `onLine(line, performance.now())` for every complete line of a stream as it arrives. */
function tapLines(stream: Readable | null, onLine: (line: string, at: number) => void): void {
  let buf = '';
  stream?.on('data', (d: Buffer | string) => {
    const at = performance.now();
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, nl), at);
      buf = buf.slice(nl + 1);
    }
  });
}

/** A JSON log line's `msg` and fields, or undefined. */
function logLine(line: string): { msg?: string; node?: string } | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line) as { msg?: string; node?: string };
  } catch {
    return undefined;
  }
}

interface Orca {
  tls: boolean;
  env: { cluster: string; dataDir: string };
  server: ServerProcess;
  admin: string;
  ca: string | undefined;
  /** The proxy's port and the API's (never an endpoint's). */
  ownPorts: number[];
  /** performance.now() at which "agent session established" arrived, by node. */
  sessions: Map<string, number>;
  /** Lines saying records were dropped, by node. */
  drops: Map<string, number>;
  http: HttpDispatcher;
  api<T>(method: string, path: string, body?: unknown): Promise<T>;
  cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
}

async function startOrca(tls: boolean): Promise<Orca> {
  const env = await testEnv(tls ? 'bench-join-tls' : 'bench-join-plain');
  const server = await startServer({ ...env, extra: [...(tls ? ['--tls'] : []), '--no-local-agent'], waitReady: false, env: LOG_ENV });
  // Before the wait: nothing is missed (the harness keeps the whole output as well).
  const sessions = new Map<string, number>();
  const drops = new Map<string, number>();
  tapLines(server.child.stdout, (line, at) => {
    const l = logLine(line);
    if (l?.msg === 'agent session established' && l.node) sessions.set(l.node, at);
    if (l?.msg === 'records from an agent dropped' && l.node) drops.set(l.node, (drops.get(l.node) ?? 0) + 1);
  });
  // The harness's /healthz probe does not trust the cluster CA: the log says when it is ready.
  await waitFor(() => server.logs().includes('"server ready"'), 30_000, `server ready\n${server.logs()}`, 20);
  const proxyLine = server.logs().split('\n').find((l) => l.includes('"proxy listening"'));
  const proxyPort = Number(/:(\d+)"/.exec(proxyLine ?? '')?.[1] ?? 0);
  const admin = (await readFile(join(env.dataDir, 'cluster.token'), 'utf8')).trim();
  const ca = tls ? await readFile(join(env.dataDir, 'tls', 'ca.crt'), 'utf8') : undefined;
  const http = new HttpDispatcher({ keepAliveTimeout: 30_000, ...(ca ? { connect: { ca } } : {}) });
  const api = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const r = await request(`${server.api}${path}`, {
      method: method as 'GET',
      dispatcher: http,
      headers: { authorization: `Bearer ${admin}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await r.body.text();
    if (r.statusCode !== 200) throw new Error(`${method} ${path}: HTTP ${r.statusCode}: ${text.slice(0, 300)}`);
    return JSON.parse(text) as T;
  };
  return {
    tls,
    env,
    server,
    admin,
    ca,
    ownPorts: [Number(new URL(server.api).port), proxyPort],
    sessions,
    drops,
    http,
    api,
    // As a user on the server's host: the CLI trusts <data-dir>/tls/ca.crt.
    cli: (args) => orca(['--api', server.api, '--data-dir', env.dataDir, ...args]),
  };
}

// ---- 1. joins -------------------------------------------------------------------------------

type JoinKind = 'admin-ws' | 'token-ws' | 'token-wss';
const KINDS: JoinKind[] = ['admin-ws', 'token-ws', 'token-wss'];
const KIND_LABEL: Record<JoinKind, string> = {
  'admin-ws': 'admin token, ws:// (baseline)',
  'token-ws': 'join token file, ws://',
  'token-wss': 'join token file, wss:// (--tls)',
};

interface Join {
  /** ms from the spawn; NaN when it did not happen. */
  credential: number;
  session: number;
  ready: number;
  /** `orca token create` wall time (token kinds), ms. */
  tokenCreate: number;
  /** Failed dials before the session (from the agent's log). */
  retries: number;
}

const agents = new Set<AgentProcess>();
let work = '';
let joinSeq = 0;

async function joinOnce(o: Orca, kind: JoinKind): Promise<Join> {
  const node = `${kind}-${++joinSeq}`;
  const dir = await mkdtemp(join(work, `${node}-`));
  let tokenFile: string | undefined;
  let tokenCreate = NaN;
  if (kind !== 'admin-ws') {
    const t = performance.now();
    const made = await o.cli(['token', 'create', '--uses', '1', '--ttl', '10m']);
    tokenCreate = performance.now() - t;
    if (made.code !== 0) throw new Error(`orca token create failed (${made.code}): ${made.stderr}`);
    tokenFile = join(work, `${node}.token`);
    await writeFile(tokenFile, made.stdout, { mode: 0o600 });
  }
  const t0 = performance.now();
  const a = startAgentProcess({
    api: o.server.api,
    node,
    dataDir: dir,
    cluster: o.env.cluster,
    extra: AGENT_FLAGS,
    env: LOG_ENV,
    ...(tokenFile ? { tokenFile } : { token: o.admin }),
  });
  agents.add(a);
  let credential = NaN;
  let retries = 0;
  tapLines(a.child.stdout, (line, at) => {
    const l = logLine(line);
    if (l?.msg === 'joined: node credential stored') credential = at - t0;
    if (l?.msg === 'cannot reach the server') retries++;
  });
  let ready = NaN;
  try {
    while (performance.now() - t0 < JOIN_TIMEOUT_MS) {
      const { nodes } = await o.api<{ nodes: Array<{ name: string; state: string }> }>('GET', '/v1/nodes');
      if (nodes.some((n) => n.name === node && n.state === 'ready')) {
        ready = performance.now() - t0;
        break;
      }
      if (a.child.exitCode !== null || a.child.signalCode !== null) break;
      await sleep(systemClock, POLL_MS);
    }
    if (Number.isNaN(ready)) throw new Error(`${kind}: node ${node} not ready within ${JOIN_TIMEOUT_MS} ms (agent exit ${a.child.exitCode})\n${a.logs().slice(-3000)}`);
  } finally {
    await stopAgentProcess(a);
    agents.delete(a);
  }
  const s = o.sessions.get(node);
  return { credential, session: s === undefined ? NaN : s - t0, ready, tokenCreate, retries };
}

// ---- 2. a raw agent session -----------------------------------------------------------------

/** An agent session by hand: hello, welcome, then heartbeats and state reports. */
class RawSession {
  private readonly acks = new Map<number, () => void>();
  private seq = 0;

  private constructor(private readonly ws: WebSocket) {
    // A failure shows as a missing ack (roundTrip's timeout), with the error's text.
    ws.on('error', (err) => process.stderr.write(`raw session: ${err.message}\n`));
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString()) as { type: string; seq?: number };
      if (m.type === 'heartbeat-ack' && m.seq !== undefined) {
        this.acks.get(m.seq)?.();
        this.acks.delete(m.seq);
      }
    });
  }

  static open(o: Orca, node: string): Promise<RawSession> {
    const url = agentUrl(o.server.api);
    if (!url) throw new Error(`no agent URL for ${o.server.api}`);
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${o.admin}` }, maxPayload: LIMITS.maxMessageBytes * 16, handshakeTimeout: 5000, ...(o.ca ? { ca: o.ca } : {}) });
    return new Promise((resolve, reject) => {
      const timer = systemClock.setTimeout(() => {
        ws.terminate();
        reject(new Error(`no welcome from ${url} within 10 s`));
      }, 10_000);
      ws.once('error', reject);
      ws.once('close', (code, reason) => reject(new Error(`session closed before the welcome: ${code} ${reason.toString()}`)));
      ws.once('open', () => {
        const hello: AgentMessage = { type: 'hello', v: PROTOCOL_VERSION, cluster: o.env.cluster, node, advertise: '127.0.0.1', labels: {}, capacity: {}, reports: [], endpoints: [] };
        ws.send(JSON.stringify(hello));
      });
      const onWelcome = (data: WebSocket.RawData) => {
        if ((JSON.parse(data.toString()) as { type: string }).type !== 'welcome') return;
        ws.off('message', onWelcome);
        ws.removeAllListeners('close');
        systemClock.clearTimeout(timer);
        resolve(new RawSession(ws));
      };
      ws.on('message', onWelcome);
    });
  }

  /** Sends `texts` (already encoded) then a heartbeat; resolves with ms until that heartbeat's ack. */
  roundTrip(texts: string[] = []): Promise<number> {
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      const timer = systemClock.setTimeout(() => reject(new Error(`no heartbeat-ack ${seq} within 10 s`)), 10_000);
      const t0 = performance.now();
      this.acks.set(seq, () => {
        systemClock.clearTimeout(timer);
        resolve(performance.now() - t0);
      });
      for (const t of texts) this.ws.send(t);
      this.ws.send(JSON.stringify({ type: 'heartbeat', seq }));
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) return resolve();
      this.ws.once('close', () => resolve());
      this.ws.close(1000, 'bench done');
    });
  }
}

/**
 * A full report of `n` running, ready instances on `node` and their endpoints (on 127.0.0.1,
 * ports from 20000 — under Linux's ephemeral range — skipping `avoid`), as the agent would
 * send them: cut with `more` like agent-session.ts's reportParts when over the agent's budget.
 */
function stateMessages(node: string, n: number, avoid: number[]): { texts: string[]; bytes: number } {
  const reports: InstanceReport[] = [];
  const endpoints: Endpoint[] = [];
  const started = new Date().toISOString();
  let port = 20_000;
  for (let i = 0; i < n; i++) {
    const service = `svc-${String(Math.floor(i / 4)).padStart(3, '0')}`;
    const slot = i % 4;
    const instance = `${service}-3-${slot}-${randomBytes(4).toString('hex')}`;
    while (avoid.includes(port)) port++;
    const address = `127.0.0.1:${port++}`;
    reports.push({
      id: instance, service, slot, revision: 3, specHash: randomBytes(8).toString('hex'), node, state: 'running', ready: true, restarts: 0,
      lastExit: null, containerId: randomBytes(32).toString('hex'), address, nextRetryAt: null, startedAt: started, current: true,
      rolloutFailed: null, error: null, probe: null,
    });
    endpoints.push({ service, instance, address });
  }
  const room = Math.max(LIMITS.agentMessageBudget / 4, LIMITS.agentMessageBudget - jsonBytes(endpoints));
  const parts = splitByBytes(reports, room, LIMITS.reports);
  const texts = parts.map((part, i) => JSON.stringify({ type: 'state', reports: part, endpoints, ...(i < parts.length - 1 ? { more: true } : {}) } satisfies AgentMessage));
  for (const t of texts) if (Buffer.byteLength(t) > LIMITS.maxMessageBytes) throw new Error(`a state message of ${Buffer.byteLength(t)} bytes is over the ${LIMITS.maxMessageBytes} limit`);
  return { texts, bytes: texts.reduce((a, t) => a + Buffer.byteLength(t), 0) };
}

/** ms from connect() to a connection ready for its first byte: TCP, or TCP + TLS handshake trusting the cluster CA. */
function connectMs(o: Orca, tls: boolean): Promise<number> {
  const port = Number(new URL(o.server.api).port);
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const sock = tls ? tlsConnect({ host: '127.0.0.1', port, ca: o.ca ?? '' }) : netConnect({ host: '127.0.0.1', port });
    sock.once(tls ? 'secureConnect' : 'connect', () => {
      const ms = performance.now() - t0;
      sock.destroy();
      resolve(ms);
    });
    sock.once('error', reject);
  });
}

// ---- run --------------------------------------------------------------------------------------

const started = performance.now();
const r = spawnSync('bash', [join(ROOT, 'scripts/ensure-docker.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
if (r.status !== 0) throw new Error('scripts/ensure-docker.sh failed: agents need Docker');

const connects = { plain: [] as number[], tls: [] as number[] };
const floor: number[] = [];
const samples: Record<JoinKind, Join[]> = { 'admin-ws': [], 'token-ws': [], 'token-wss': [] };
const warm: Record<JoinKind, Join | undefined> = { 'admin-ws': undefined, 'token-ws': undefined, 'token-wss': undefined };
const hb = { plain: [] as number[], tls: [] as number[] };
const st = { plain: [] as number[], tls: [] as number[] };
let stateShape = { parts: 0, bytes: 0 };
const dropNotes: string[] = [];
let plain: Orca | undefined;
let secure: Orca | undefined;
const sessions: RawSession[] = [];
try {
  work = await mkdtemp(join(tmpdir(), 'orca-bench-join-tls-'));
  plain = await startOrca(false);
  secure = await startOrca(true);
  if (!secure.server.api.startsWith('https://') || !plain.server.api.startsWith('http://')) throw new Error(`unexpected API URLs ${plain.server.api}, ${secure.server.api}`);
  const serverOf = (k: JoinKind) => (k === 'token-wss' ? secure! : plain!);

  // 1. joins, interleaved: one warm-up of each, then `joins` rounds.
  for (const k of KINDS) warm[k] = await joinOnce(serverOf(k), k);
  for (let i = 0; i < joins; i++) for (const k of KINDS) samples[k].push(await joinOnce(serverOf(k), k));

  // 2. the session: heartbeats and 1,000-instance reports, plaintext and TLS in alternating rounds.
  const raw = { plain: await RawSession.open(plain, 'raw-session'), tls: await RawSession.open(secure, 'raw-session') };
  sessions.push(raw.plain, raw.tls);
  const msgs = stateMessages('raw-session', ENDPOINTS, [...plain.ownPorts, ...secure.ownPorts]);
  stateShape = { parts: msgs.texts.length, bytes: msgs.bytes };
  for (const side of ['plain', 'tls'] as const) {
    for (let i = 0; i < 50; i++) await raw[side].roundTrip();
    await raw[side].roundTrip(msgs.texts);
  }
  // Heartbeats first (no report's after-work on the server in their way), then the reports.
  const per = (total: number) => Math.max(1, Math.ceil(total / ROUNDS));
  for (let round = 0; round < ROUNDS; round++) {
    for (const side of ['plain', 'tls'] as const) {
      for (let i = 0; i < per(heartbeats) && hb[side].length < heartbeats; i++) hb[side].push(await raw[side].roundTrip());
    }
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const side of ['plain', 'tls'] as const) {
      for (let i = 0; i < per(stateReports) && st[side].length < stateReports; i++) st[side].push(await raw[side].roundTrip(msgs.texts));
    }
  }
  // What a new connection costs: TCP connect to the plaintext API, TCP + TLS handshake (trusting the CA) to the TLS one.
  for (let i = 0; i < HANDSHAKES; i++) {
    connects.plain.push(await connectMs(plain, false));
    connects.tls.push(await connectMs(secure, true));
  }
  for (let i = 0; i < 5; i++) floor.push(timeCommand(process.execPath, [ORCA, '--version']));
  for (const [side, o] of [['plain', plain], ['tls', secure]] as const) {
    const d = o.drops.get('raw-session') ?? 0;
    if (d > 0) dropNotes.push(`${side}: the server logged ${d} 'records from an agent dropped' line(s) for the raw session`);
  }
} finally {
  for (const s of sessions) await s.close().catch(() => undefined);
  for (const a of [...agents]) await stopAgentProcess(a);
  for (const o of [plain, secure]) {
    if (!o) continue;
    await stopServer(o.server);
    await o.http.close().catch(() => undefined);
    await cleanup(o.env.cluster, o.env.dataDir);
  }
  if (work) await rm(work, { recursive: true, force: true });
}

// ---- report ---------------------------------------------------------------------------------
const out = (s: string) => process.stdout.write(`${s}\n`);
const field = (l: Join[], k: keyof Join) => l.map((j) => j[k]).filter((v) => Number.isFinite(v));
const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : '-');
const docker = spawnSync('docker', ['version', '-f', '{{.Server.Version}}'], { encoding: 'utf8' }).stdout.trim();
out(`secure cluster (issue 13): agent join and session cost, plaintext vs TLS, same run (node ${process.version}, Docker ${docker})`);
out(`two orca servers on 127.0.0.1, --no-local-agent, one with --tls; agents ${AGENT_FLAGS.join(' ')}, ORCA_LOG_LEVEL=info`);
out(`join: spawn of orca agent → node 'ready' in GET /v1/nodes (polled every ${POLL_MS} ms over keep-alive); ${joins} joins of each way,`);
out(`  interleaved, each a new node name, data dir and token (orca token create --uses 1), after one warm-up of each (not counted)`);
out(`\nper join, ms from spawn to ready:`);
for (const k of KINDS) out(`  ${KIND_LABEL[k].padEnd(32)} ${series(samples[k].map((j) => j.ready))}   (warm-up ${series([warm[k]?.ready ?? NaN])})`);
report('agent join, ms from the spawn (same run)', ['how', 'joins', 'credential stored p50', 'session established p50', 'ready p50', 'ready max', 'retried dials'], KINDS.map((k) => [
  KIND_LABEL[k],
  `${field(samples[k], 'ready').length}/${samples[k].length}`,
  percentile(field(samples[k], 'credential'), 50),
  percentile(field(samples[k], 'session'), 50),
  percentile(field(samples[k], 'ready'), 50),
  percentile(field(samples[k], 'ready'), 100),
  String(samples[k].reduce((a, j) => a + j.retries, 0)),
]));
out(`(credential stored: the agent's "joined: node credential stored" line; session established: the server's "agent session established" line; both as they arrived here)`);
const tokenWall = [...samples['token-ws'], ...samples['token-wss']].map((j) => j.tokenCreate);
out(`orca token create wall time (not in the join): p50 ${percentile(tokenWall, 50).toFixed(0)} ms, max ${percentile(tokenWall, 100).toFixed(0)} ms`);
out(`the floor of any orca process: \`orca --version\` wall time p50 ${percentile(floor, 50).toFixed(0)} ms (node start and the CLI's modules)`);

out(`\nsession: a raw ws client with the agent protocol (admin token; wss trusts <data-dir>/tls/ca.crt), ${ROUNDS} alternating rounds after a warm-up`);
out(`(a wss:// join makes 4 TLS handshakes: pin check + POST /v1/join for the exchange, pin check again + the wss upgrade for the session)`);
out(`1,000-instance report: ${stateShape.parts} state message${stateShape.parts === 1 ? '' : 's (split with more)'} of ${stateShape.bytes} bytes (1,000 reports + 1,000 endpoints; limit ${LIMITS.maxMessageBytes}, agent budget ${LIMITS.agentMessageBudget}), then a heartbeat: time to its ack`);
const P = (v: number[], q: number) => percentile(v, q);
const join50 = { plain: P(field(samples['admin-ws'], 'ready'), 50), tls: P(field(samples['token-wss'], 'ready'), 50) };
const joinMax = { plain: P(field(samples['admin-ws'], 'ready'), 100), tls: P(field(samples['token-wss'], 'ready'), 100) };
const tokenPlain50 = P(field(samples['token-ws'], 'ready'), 50);
const rows: Array<[string, number, number]> = [
  ['join → ready p50 ms (admin ws:// | token wss://)', join50.plain, join50.tls],
  ['join → ready max ms (admin ws:// | token wss://)', joinMax.plain, joinMax.tls],
  ['join → ready p50 ms (token ws:// | token wss://)', tokenPlain50, join50.tls],
  [`heartbeat RTT p50 ms (${hb.plain.length} | ${hb.tls.length})`, P(hb.plain, 50), P(hb.tls, 50)],
  ['heartbeat RTT p99 ms', P(hb.plain, 99), P(hb.tls, 99)],
  [`1,000-endpoint report p50 ms (${st.plain.length} | ${st.tls.length})`, P(st.plain, 50), P(st.tls, 50)],
  ['1,000-endpoint report p99 ms', P(st.plain, 99), P(st.tls, 99)],
  ['1,000-endpoint report bytes', stateShape.bytes, stateShape.bytes],
  [`new connection p50 ms (TCP | TCP+TLS handshake, ${HANDSHAKES} each)`, P(connects.plain, 50), P(connects.tls, 50)],
  ['new connection p99 ms', P(connects.plain, 99), P(connects.tls, 99)],
];
report('plaintext vs TLS (same run)', ['metric', 'plaintext', 'TLS', 'ratio'], rows.map(([m, a, b]) => [m, a, b, ratio(b, a)]));
for (const n of dropNotes) out(`note: ${n}`);
out(`total ${((performance.now() - started) / 1000).toFixed(0)} s`);
