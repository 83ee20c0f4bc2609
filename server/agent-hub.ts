import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { Clock, TimerHandle } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import { DEFAULTS } from '../core/defaults.js';
import type { EventRecord } from '../store/types.js';
import { keepAlive, wsChannel, type Channel } from '../protocol/channel.js';
import { CLOSE_REVOKED } from '../protocol/agent-session.js';
import { decodeAgentMessage, encode, LIMITS, OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION, protocolSupported, type AgentMessage, type Endpoint, type ServerMessage } from '../protocol/messages.js';
import type { InstanceReport } from '../protocol/reports.js';
import { checkEndpointAddress } from './endpoint-check.js';
import { LogLimiter } from './log-limiter.js';
import { bearer, tokenMatches } from './token.js';
import type { Principal } from './access.js';
import type { NodeRegistry } from './node-registry.js';
import type { RemoteNode } from './remote-node.js';

export const AGENT_PATH = '/v1/agent';
const HELLO_TIMEOUT_MS = DEFAULTS.agentHelloTimeoutMs;
const EVENT_BURST = DEFAULTS.agentEventBurst;
const EVENTS_PER_SEC = DEFAULTS.agentEventsPerSec;
export interface AgentHubDeps {
  clock: Clock;
  log: Logger;
  /**
   * Whether this server leads the control plane (SPEC §3.11): only the leader holds agent
   * sessions. A standby answers an agent's upgrade with 503 and the leader's address (header
   * x-orca-leader), before looking at its credential — a standby's copy of the credentials may
   * be behind the leader's, and a refusal there must not look like a revocation. Absent: always.
   */
  leading?: () => boolean;
  /** The leader's API URL while this server stands by (null: none elected yet). */
  leader?: () => string | null;
  token: string;
  clusterId: string;
  heartbeat: { intervalMs: number; timeoutMs: number };
  registry: NodeRegistry;
  /** A session started: the node must get its assignments. */
  onSession: (node: RemoteNode) => void;
  /** A node's instances or endpoints changed. */
  onState: (node: RemoteNode) => void;
  record: (e: EventRecord) => void;
  /** Takes an instance out of the routes and waits for its in-flight requests (bounded). */
  drain: (address: string, maxMs: number) => Promise<void>;
  /** The server's own listening addresses (API, proxy): never accepted as an endpoint. */
  ownAddresses?: () => Array<{ host: string; port: number }>;
  /**
   * Who a bearer token is (SPEC §3.10: the admin, or one node's credential) and which node names
   * are bound to a credential. Without it only the admin token (`token`) opens a session.
   */
  access?: { authenticate(presented: string | undefined): Principal | null; bound(node: string): boolean };
}

/**
 * The server's end of agent sessions: authenticates WebSocket upgrades on /v1/agent with the
 * admin token or a node credential (a refusal is logged without the token), waits for hello,
 * checks protocol version, cluster and node identity (a node name with a live session, or one
 * bound to another credential than the one presented, is refused with 4409 — the incumbent keeps
 * its session; a credential of another, unbound name with 4403), then serves the session. A session silent past the heartbeat
 * deadline is closed (no half-open sessions). The embedded agent comes in through accept() with
 * an in-memory channel and is served by exactly the same code.
 *
 * Every message is untrusted input: bounded by size (maxPayload) and schema; a bad message is
 * dropped and logged, a bad record in a batch is dropped alone; endpoints must be on the node's
 * advertise address, not the server's own, and of instances assigned to the node; events get
 * the server's receive time and the node's name. Drop logs are rate-limited.
 */
export class AgentHub {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: LIMITS.maxMessageBytes });
  private readonly channels = new Set<Channel>();
  /** Node names whose hello is being welcomed (the store write is async): a second hello waits its turn by being refused. */
  private readonly claims = new Map<string, Channel>();
  private readonly limiter: LogLimiter;
  private readonly buckets = new Map<string, { tokens: number; atMs: number }>();
  /** Who opened each channel. */
  private readonly principals = new Map<Channel, Principal>();
  /** The channel of each welcomed node. */
  private readonly sessions = new Map<string, Channel>();

  constructor(private readonly deps: AgentHubDeps) {
    this.limiter = new LogLimiter(deps.clock);
  }

  /** For the API server's 'upgrade' event. Returns false when the path is not ours. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    let pathname: string;
    try {
      pathname = new URL(req.url ?? '/', 'http://orca').pathname;
    } catch {
      return false;
    }
    if (pathname !== AGENT_PATH) return false;
    if (this.deps.leading && !this.deps.leading()) {
      const leader = this.deps.leader?.() ?? null;
      const body = JSON.stringify({ error: 'ORCA_NOT_LEADER', message: leader ? `this server stands by; the leader is ${leader}` : 'no server leads yet', leader });
      const header = leader && /^https?:\/\/[^\s]+$/.test(leader) ? `X-Orca-Leader: ${leader}\r\n` : '';
      socket.end(`HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n${header}Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      return true;
    }
    const presented = bearer(req.headers.authorization);
    const principal: Principal | null = this.deps.access
      ? this.deps.access.authenticate(presented)
      : tokenMatches(presented, this.deps.token)
        ? { role: 'admin' }
        : null;
    if (!principal) {
      const l = this.limiter.allow(`401:${req.socket.remoteAddress}`);
      if (l.log) this.deps.log.warn({ remote: req.socket.remoteAddress, path: pathname, suppressed: l.suppressed }, 'agent refused: missing or wrong token');
      socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nmissing or wrong token\n');
      return true;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      keepAlive(ws, this.deps.clock, this.deps.heartbeat.intervalMs);
      this.accept(wsChannel(ws), req.socket.remoteAddress ?? 'unknown', { principal });
    });
    return true;
  }

  /** Serves one session from its first message to its end. */
  /**
   * Serves one session. `sameClock`: the agent runs in this process on this server's clock (the
   * embedded agent), so its events keep their own time — which is the server's — instead of the
   * receive time, which would only add the channel's delay to every record.
   */
  accept(channel: Channel, remote: string, opts: { sameClock?: boolean; principal?: Principal } = {}): void {
    this.channels.add(channel);
    const principal: Principal = opts.principal ?? { role: 'admin' };
    this.principals.set(channel, principal);
    let node: RemoteNode | null = null;
    let helloSeen = false;
    let closed = false;
    let deadline: TimerHandle | null = null;
    const send = (msg: ServerMessage) => channel.send(encode(msg));
    const refuse = (code: string, message: string, closeCode = 4403) => {
      this.deps.log.warn({ remote, code, message }, 'agent session refused');
      send({ type: 'error', code, message });
      channel.close(closeCode, truncateUtf8(message, 120));
    };
    const arm = (ms: number) => {
      if (deadline) this.deps.clock.clearTimeout(deadline);
      deadline = this.deps.clock.setTimeout(() => {
        this.deps.log.warn({ remote, node: node?.name }, 'agent session silent past its deadline; closing');
        channel.close(4408, 'heartbeat deadline');
      }, ms);
    };
    arm(HELLO_TIMEOUT_MS);

    channel.onClose(() => {
      closed = true;
      if (deadline) this.deps.clock.clearTimeout(deadline);
      this.channels.delete(channel);
      this.principals.delete(channel);
      for (const [name, c] of this.claims) if (c === channel) this.claims.delete(name);
      if (node) {
        if (this.sessions.get(node.name) === channel) this.sessions.delete(node.name);
        node.detach(channel);
        this.deps.log.info({ node: node.name }, 'agent session ended');
      }
    });

    channel.onMessage((text) => {
      const d = decodeAgentMessage(text);
      if (!d.ok) {
        if (!node) return refuse('ORCA_PROTOCOL', d.error, 4400);
        this.dropped(node.name, remote, 'message', [d.error]);
        return;
      }
      const msg = d.msg;
      if (!node) {
        if (helloSeen) return; // welcome in progress: nothing else is served before it
        // A late reply from the agent's previous session can land here before its hello: dropped.
        if (msg.type !== 'hello') return this.dropped('(no hello yet)', remote, 'message', [`expected hello, got ${msg.type}`]);
        if (!protocolSupported(msg.v)) {
          const speaks = `${OLDEST_PROTOCOL_VERSION} to ${PROTOCOL_VERSION}`;
          const hint = msg.v > PROTOCOL_VERSION ? ': upgrade the server first' : ': upgrade orca agent on this node';
          return refuse('ORCA_PROTOCOL', `protocol version ${msg.v} not supported (this server speaks ${speaks})${hint}`);
        }
        if (msg.cluster !== this.deps.clusterId) return refuse('ORCA_CONFLICT', `agent is in cluster "${msg.cluster}", this server is "${this.deps.clusterId}"`);
        // A node credential holds a session for its own node only (SPEC §3.10); the admin token for any.
        if (principal.role === 'node' && msg.node !== principal.node) {
          if (this.deps.access?.bound(msg.node)) return refuse('ORCA_CONFLICT', `node name ${msg.node} is bound to another credential`, 4409);
          return refuse('ORCA_FORBIDDEN', `this node credential is for node ${principal.node}, not ${msg.node}`);
        }
        const incumbent = this.deps.registry.get(msg.node);
        if (incumbent?.attached || this.claims.has(msg.node)) {
          const from = incumbent?.attached ? (incumbent.remote ?? 'unknown') : 'another agent';
          return refuse('ORCA_CONFLICT', `node name ${msg.node} already has a live session from ${from}`, 4409);
        }
        helloSeen = true;
        this.claims.set(msg.node, channel);
        if (d.dropped.length) this.dropped(msg.node, remote, 'record', d.dropped);
        void this.welcome(channel, msg, remote, () => closed).then(
          (n) => {
            if (this.claims.get(msg.node) === channel) this.claims.delete(msg.node);
            if (!n) return;
            node = n;
            this.sessions.set(n.name, channel);
            arm(this.deps.heartbeat.timeoutMs);
          },
          (err) => {
            if (this.claims.get(msg.node) === channel) this.claims.delete(msg.node);
            refuse('ORCA_INTERNAL', (err as Error).message);
          },
        );
        return;
      }
      arm(this.deps.heartbeat.timeoutMs);
      this.deps.registry.heard(node.name);
      if (d.dropped.length) this.dropped(node.name, remote, 'record', d.dropped);
      this.handle(node, remote, this.sanitize(node, remote, msg, opts.sameClock === true), send);
    });
  }

  /**
   * Ends every session of a node — welcomed, or opened with its credential and not yet welcomed —
   * with CLOSE_REVOKED and the reason, so that its agent stops dialling (`orca nodes rm`).
   * Returns how many were closed.
   */
  disconnect(node: string, message: string): number {
    let n = 0;
    for (const c of [...this.channels]) {
      const p = this.principals.get(c);
      if (this.sessions.get(node) !== c && !(p?.role === 'node' && p.node === node)) continue;
      c.send(encode({ type: 'error', code: 'ORCA_UNAUTHORIZED', message }));
      c.close(CLOSE_REVOKED, truncateUtf8(message, 120));
      n++;
    }
    return n;
  }

  /**
   * Ends every agent session (this server stopped leading): each agent dials again and finds the
   * new leader. 1012 (service restart): not an error, nothing to give up on.
   */
  closeSessions(reason: string): void {
    for (const c of [...this.channels]) c.close(1012, truncateUtf8(reason, 120));
  }

  /** Closes every session (server stopping). */
  close(): void {
    for (const c of this.channels) c.close(1001, 'server stopping');
    this.wss.close();
  }

  private async welcome(
    channel: Channel,
    hello: Extract<AgentMessage, { type: 'hello' }>,
    remote: string,
    isClosed: () => boolean,
  ): Promise<RemoteNode | null> {
    const node = await this.deps.registry.hello({
      name: hello.node,
      advertise: hello.advertise,
      labels: hello.labels,
      capacity: hello.capacity,
      ...(hello.allowHostPaths?.length ? { allowHostPaths: hello.allowHostPaths } : {}),
      protocol: hello.v,
    });
    // The session may have ended while the node's facts were written: nothing to attach.
    if (isClosed()) return null;
    const clean = this.sanitize(node, remote, hello, false) as typeof hello;
    // The session speaks the agent's version (one release back at most): so does the welcome.
    if (hello.v < PROTOCOL_VERSION) this.deps.log.warn({ node: node.name, protocol: hello.v, current: PROTOCOL_VERSION }, 'agent speaks an older protocol: upgrade orca agent on this node (services with volumes, mounts or secrets are not placed there)');
    channel.send(encode({ type: 'welcome', v: hello.v, heartbeatIntervalMs: this.deps.heartbeat.intervalMs, heartbeatTimeoutMs: this.deps.heartbeat.timeoutMs }));
    node.attach(channel, clean.reports, clean.endpoints, { remote, ...(clean.more ? { more: true } : {}), ...(hello.proxy ? { proxy: true } : {}), ...(hello.proxyTls ? { proxyTls: true } : {}) });
    this.deps.log.info({ node: node.name, remote, instances: clean.reports.length }, 'agent session established');
    this.deps.onSession(node);
    this.deps.onState(node);
    return node;
  }

  /**
   * What the server can verify of a message: reports of this node only; endpoints on its
   * advertise address, not the server's own (and of assigned instances, see RemoteNode.endpoints);
   * events stamped with the receive time and this node, of services it was given, at a bounded rate.
   */
  private sanitize(node: RemoteNode, remote: string, msg: AgentMessage, sameClock: boolean): AgentMessage {
    const drops: string[] = [];
    const reports = (list: InstanceReport[]) =>
      list.filter((r) => {
        if (r.node === node.name) return true;
        drops.push(`report ${r.id ?? r.service}: for node ${r.node.slice(0, 63)}`);
        return false;
      });
    const own = this.deps.ownAddresses?.() ?? [];
    const endpoints = (list: Endpoint[]) =>
      list.filter((e) => {
        const v = checkEndpointAddress(e.address, { advertise: node.address(), own });
        if (!v.ok) {
          drops.push(`endpoint ${e.instance} at ${e.address}: ${v.reason}`);
          return false;
        }
        // An instance of a slot not assigned here (now) is kept but never routed: RemoteNode.endpoints()
        // filters by the assignment at read time (a slot scaled away is still draining, a newly
        // assigned one may report before its assignment reached this server's memory).
        return true;
      });
    let out: AgentMessage = msg;
    switch (msg.type) {
      case 'hello':
      case 'state':
        out = { ...msg, reports: reports(msg.reports), endpoints: endpoints(msg.endpoints) };
        break;
      case 'observed':
        out = { ...msg, reports: reports(msg.reports), ...(msg.endpoints ? { endpoints: endpoints(msg.endpoints) } : {}) };
        break;
      case 'endpoints':
        out = { ...msg, endpoints: endpoints(msg.endpoints) };
        break;
      case 'event': {
        const time = new Date(this.deps.clock.now()).toISOString();
        const kept: EventRecord[] = [];
        for (const e of msg.records) {
          if (e.service !== null && !node.knowsService(e.service)) {
            drops.push(`event ${e.action}: service ${e.service.slice(0, 63)} was never assigned to this node`);
            continue;
          }
          if (!this.takeEventToken(node.name)) {
            drops.push(`event ${e.action}: over ${EVENTS_PER_SEC}/s`);
            continue;
          }
          kept.push({ ...e, time: sameClock ? e.time : time, node: node.name });
        }
        out = { ...msg, records: kept };
        break;
      }
      default:
        break;
    }
    if (drops.length) this.dropped(node.name, remote, 'record', drops);
    return out;
  }

  private takeEventToken(name: string): boolean {
    const now = this.deps.clock.now();
    const b = this.buckets.get(name) ?? { tokens: EVENT_BURST, atMs: now };
    b.tokens = Math.min(EVENT_BURST, b.tokens + ((now - b.atMs) / 1000) * EVENTS_PER_SEC);
    b.atMs = now;
    this.buckets.set(name, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Logs what was dropped, at most one line per node and kind per window. */
  private dropped(node: string, remote: string, kind: 'message' | 'record', what: string[]): void {
    const l = this.limiter.allow(`${node}:${kind}`);
    if (!l.log) return;
    this.deps.log.warn(
      { node, remote, dropped: what.slice(0, 5).map((w) => w.slice(0, 300)), count: what.length, suppressedSinceLast: l.suppressed },
      kind === 'message' ? 'bad message from an agent; dropped' : 'records from an agent dropped',
    );
  }

  private handle(node: RemoteNode, remote: string, msg: AgentMessage, send: (m: ServerMessage) => void): void {
    if (node.handleReply(msg)) return;
    switch (msg.type) {
      case 'state':
        node.updateState(msg.reports, msg.endpoints, msg.more);
        this.deps.onState(node);
        return;
      case 'endpoints':
        node.updateEndpoints(msg.endpoints);
        this.deps.onState(node);
        return;
      case 'event':
        for (const e of msg.records) this.deps.record(e);
        return;
      case 'heartbeat':
        send({ type: 'heartbeat-ack', seq: msg.seq });
        return;
      case 'drain': {
        const v = checkEndpointAddress(msg.address, { advertise: node.address(), own: this.deps.ownAddresses?.() ?? [] });
        if (!v.ok) {
          this.dropped(node.name, remote, 'record', [`drain of ${msg.address}: ${v.reason}`]);
          send({ type: 'drained', id: msg.id });
          return;
        }
        void this.deps.drain(msg.address, msg.maxMs).finally(() => send({ type: 'drained', id: msg.id }));
        return;
      }
      case 'hello':
        this.deps.log.warn({ node: node.name }, 'second hello in one session; ignored');
        return;
      default:
        return;
    }
  }
}

/** At most `max` bytes of UTF-8 (a WebSocket close reason is limited to 123). */
function truncateUtf8(s: string, max: number): string {
  let out = s.slice(0, max);
  while (Buffer.byteLength(out) > max) out = out.slice(0, -1);
  return out;
}
