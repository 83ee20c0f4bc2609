/**
 * Upgrades (issue 13 item 5, SPEC §3.10): a server accepts an agent one protocol version behind.
 * The old agent is a test double that speaks protocol 1 exactly as the previous release did: it
 * checks every message the server sends it with that release's own decoder
 * (test/fixtures/protocol-v1.ts) and every message it sends with its encoder's schema, runs its
 * replicas as real containers and reports them as the old agent did.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { TEST_IMAGE } from '../images.js';
import { agentMessage as v1AgentMessage, decodeServerMessage as decodeV1 } from '../fixtures/protocol-v1.js';
import { cleanup, cli, holdsFor, startServer, stopServer, testEnv, waitFor, type ServerProcess } from './harness.js';
import { httpClient } from './http-client.js';

const sh = promisify(execFile);
const SERVER_FLAGS = ['--heartbeat-interval', '0.2', '--heartbeat-timeout', '2', '--node-down-grace', '1.5', '--watchdog-interval', '2'];
const NODE = 'old1';

interface Slot {
  service: string;
  slot: number;
  revision: number;
  specHash: string;
}
interface Running {
  id: string;
  slot: Slot;
  containerId: string;
  address: string;
  startedAt: string;
}

/** An agent of the previous release: protocol 1, the admin token, real containers on the loopback. */
class OldAgent {
  ws: WebSocket | null = null;
  /** Messages from the server its decoder refused (there must be none). */
  readonly refused: string[] = [];
  readonly got: Array<{ type: string } & Record<string, unknown>> = [];
  readonly running = new Map<string, Running>();
  closed: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  private seq = 0;
  acks = 0;
  sessions = 0;

  constructor(
    private readonly api: string,
    private readonly token: string,
    private readonly cluster: string,
  ) {}

  /** Dials until welcomed, as the old agent did (a cut session may still be live on the server for a moment: 4409, retried). */
  async connect(): Promise<void> {
    const sessions = this.sessions;
    await waitFor(async () => {
      await this.dial();
      return this.sessions > sessions;
    }, 15_000, 'welcomed', 200);
  }

  private async dial(): Promise<void> {
    const seen = this.got.length;
    const ws = new WebSocket(`${this.api.replace(/^http/, 'ws')}/v1/agent`, { headers: { authorization: `Bearer ${this.token}` } });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    this.ws = ws;
    this.closed = null;
    ws.on('error', () => undefined);
    ws.on('close', (code) => {
      this.closed = code;
      if (this.timer) clearInterval(this.timer);
    });
    ws.on('message', (data) => {
      const text = data.toString();
      const d = decodeV1(text);
      if (!d.ok) {
        this.refused.push(`${d.error}: ${text.slice(0, 300)}`);
        return;
      }
      const msg = d.msg as { type: string } & Record<string, unknown>;
      this.got.push(msg);
      if (msg.type === 'welcome') {
        this.sessions++;
        this.timer = setInterval(() => this.send({ type: 'heartbeat', seq: ++this.seq }), msg.heartbeatIntervalMs as number);
      } else if (msg.type === 'heartbeat-ack') this.acks++;
      // One assignment message after the other, never blocking the event loop (heartbeats go on meanwhile).
      else if (msg.type === 'assignments') this.assigning = this.assigning.then(() => this.assign(msg as never)).catch((err: unknown) => void this.refused.push(`assign failed: ${String(err)}`));
      else if (msg.type === 'observe') this.send({ type: 'observed', id: msg.id, reports: this.reports(), endpoints: this.endpoints() });
    });
    this.send({ type: 'hello', v: 1, node: NODE, cluster: this.cluster, advertise: '127.0.0.1', labels: { gen: 'old' }, capacity: {}, reports: this.reports(), endpoints: this.endpoints() });
    await waitFor(() => this.got.slice(seen).some((m) => m.type === 'welcome') || this.closed !== null, 10_000, 'welcome');
  }

  /** Cuts the connection without a close handshake (a crash or a network cut). */
  drop(): void {
    if (this.timer) clearInterval(this.timer);
    this.ws?.terminate();
  }

  send(m: unknown): void {
    // The double never says what the old agent could not have said.
    const ok = v1AgentMessage.safeParse(m);
    if (!ok.success) throw new Error(`the old agent cannot send this: ${JSON.stringify(m).slice(0, 200)}`);
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(m));
  }

  private assigning: Promise<void> = Promise.resolve();

  private async assign(msg: { full: boolean; slots?: Slot[]; services?: Record<string, Slot[]> }): Promise<void> {
    const wanted = msg.full ? (msg.slots ?? []) : Object.values(msg.services ?? {}).flat();
    for (const a of wanted) {
      const key = `${a.service}/${a.slot}`;
      if (this.running.has(key)) continue;
      const id = `${a.service}-${a.revision}-${a.slot}-old${a.slot}`;
      const containerId = (await sh('docker', [
        'run', '-d', '--name', `${this.cluster}-${NODE}-${id}`, '--label', `orca.cluster=${this.cluster}`, '--label', `orca.node=${NODE}`, '--label', `orca.service=${a.service}`, '--label', `orca.instance=${id}`, '--label', `orca.slot=${a.slot}`, '--label', `orca.revision=${a.revision}`, '-p', '127.0.0.1::80', TEST_IMAGE,
        'sh', '-c', 'mkdir -p /tmp/www && echo old-agent > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www',
      ])).stdout.trim();
      const port = (await sh('docker', ['port', containerId, '80/tcp'])).stdout.trim().split('\n')[0]!.split(':').pop()!;
      this.running.set(key, { id, slot: a, containerId, address: `127.0.0.1:${port}`, startedAt: new Date().toISOString() });
    }
    this.send({ type: 'state', reports: this.reports(), endpoints: this.endpoints() });
    this.send({ type: 'endpoints', endpoints: this.endpoints() });
  }

  private reports() {
    return [...this.running.values()].map((r) => ({
      id: r.id, service: r.slot.service, slot: r.slot.slot, revision: r.slot.revision, specHash: r.slot.specHash, node: NODE, state: 'running', ready: true,
      restarts: 0, lastExit: null, containerId: r.containerId, address: r.address, nextRetryAt: null, startedAt: r.startedAt, current: true, rolloutFailed: null,
    }));
  }

  private endpoints() {
    return [...this.running.values()].map((r) => ({ service: r.slot.service, instance: r.id, address: r.address }));
  }
}

describe('an agent one protocol version behind (upgrade: server first, then agents)', () => {
  let env: { cluster: string; dataDir: string };
  let server: ServerProcess | undefined;
  let run: ReturnType<typeof cli>;
  let old: OldAgent;

  beforeAll(async () => {
    env = await testEnv('upgrade');
    server = await startServer({ ...env, extra: SERVER_FLAGS });
    run = cli(server, env.dataDir);
    const token = (await readFile(join(env.dataDir, 'cluster.token'), 'utf8')).trim();
    old = new OldAgent(server.api, token, env.cluster);
    await old.connect();
  });

  afterAll(async () => {
    old?.drop();
    await stopServer(server);
    await cleanup(env.cluster, env.dataDir);
  });

  const nodesJson = async () => JSON.parse((await run(['nodes', '-o', 'json'])).stdout) as { nodes: Array<{ name: string; state: string; protocol: number }> };

  it('is welcomed in its own version and shown in orca nodes as one to upgrade', async () => {
    expect(old.got[0]).toMatchObject({ type: 'welcome', v: 1 });
    const nodes = await nodesJson();
    expect(nodes.nodes.find((n) => n.name === NODE)).toMatchObject({ state: 'ready', protocol: 1 });
    expect(nodes.nodes.find((n) => n.name === 'n1')).toMatchObject({ protocol: 2 });
    const table = (await run(['nodes'])).stdout;
    expect(table).toMatch(/PROTOCOL/);
    expect(table.split('\n').find((l) => l.startsWith(NODE))).toContain('1 (upgrade agent)');
    expect(server!.logs()).toContain('agent speaks an older protocol');
  });

  it('runs its replicas, routes to them, and keeps them and its session over many heartbeat deadlines and a reconnect', async () => {
    const file = join(env.dataDir, 'web.toml');
    await writeFile(
      file,
      `[[service]]\nname = "web"\nimage = "${TEST_IMAGE}"\nreplicas = 1\nport = 80\n\n[service.placement]\nnode = "${NODE}"\n\n[service.route]\nhost = "web.localhost"\n`,
    );
    expect((await run(['apply', '-f', file])).code).toBe(0);
    await waitFor(() => old.running.has('web/0'), 15_000, 'the old agent got web/0');
    const http = httpClient(server!.proxy!);
    try {
      await waitFor(async () => (await http.get('web.localhost').catch(() => null))?.body.trim() === 'old-agent', 15_000, 'proxy routes to the old agent’s container');
      const container = old.running.get('web/0')!.containerId;
      const acks = old.acks;
      // Three heartbeat deadlines: the session holds, the node stays ready, nothing moves.
      await holdsFor(async () => old.closed === null && (await nodesJson()).nodes.find((n) => n.name === NODE)?.state === 'ready', 6_000, 'session and node ready');
      expect(old.acks).toBeGreaterThan(acks + 10);
      expect((await http.get('web.localhost')).body.trim()).toBe('old-agent');

      // Its connection drops; it comes back with its inventory and keeps its container.
      old.drop();
      await old.connect();
      expect(old.sessions).toBe(2);
      await waitFor(async () => (await nodesJson()).nodes.find((n) => n.name === NODE)?.state === 'ready', 10_000, 'ready again');
      expect(old.running.get('web/0')!.containerId).toBe(container);
      expect(execFileSync('docker', ['inspect', '-f', '{{.State.Running}} {{.RestartCount}}', container]).toString().trim()).toBe('true 0');
      await waitFor(async () => (await http.get('web.localhost').catch(() => null))?.body.trim() === 'old-agent', 10_000, 'still routed after the reconnect');
      const status = JSON.parse((await run(['status', 'web', '-o', 'json'])).stdout) as { services: Array<{ instances: Array<{ id: string; node: string }> }> };
      expect(status.services[0]!.instances.map((i) => [i.id, i.node])).toEqual([['web-1-0-old0', NODE]]);
    } finally {
      http.close();
    }
    expect(old.refused).toEqual([]);
  });

  it('gets no service it would run wrong (volumes, secrets): those wait with the reason, and orca volumes still answers', async () => {
    await writeFile(join(env.dataDir, 'pw'), 's3cret');
    expect((await run(['secret', 'set', 'pw', '-f', join(env.dataDir, 'pw')])).code).toBe(0);
    const file = join(env.dataDir, 'db.toml');
    await writeFile(
      file,
      `[[service]]\nname = "db"\nimage = "${TEST_IMAGE}"\ncommand = ["sleep", "3600"]\nreplicas = 1\nsecrets = ["pw"]\n\n[service.volumes]\ndata = "/data"\n\n[service.placement]\nnode = "${NODE}"\n`,
    );
    expect((await run(['apply', '-f', file])).code).toBe(0);
    await waitFor(async () => (await run(['status', 'db'])).stdout.includes('speaks protocol 2'), 10_000, 'db waits with the reason');
    expect((await run(['status', 'db'])).stdout).toContain(`upgrade orca agent on ${NODE}`);
    await holdsFor(() => !old.running.has('db/0'), 1_000, 'db never reaches the old agent');
    const sent = JSON.stringify(old.got);
    expect(sent).not.toContain('s3cret');
    expect(sent).not.toContain('"db"');
    const vols = await run(['volumes', '-o', 'json']);
    expect(vols.code).toBe(0);
    expect(old.refused).toEqual([]);
    expect(old.closed).toBeNull();
  });
});
