import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { Clock, TimerHandle } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { EventRecord } from '../store/types.js';
import { keepAlive, wsChannel, type Channel } from '../agent/channel.js';
import { decodeAgentMessage, encode, PROTOCOL_VERSION, type AgentMessage, type ServerMessage } from '../agent/protocol.js';
import { bearer, tokenMatches } from './token.js';
import type { NodeRegistry } from './node-registry.js';
import type { RemoteNode } from './remote-node.js';

export const AGENT_PATH = '/v1/agent';
const HELLO_TIMEOUT_MS = 10_000;

export interface AgentHubDeps {
  clock: Clock;
  log: Logger;
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
}

/**
 * The server's end of agent sessions: authenticates WebSocket upgrades on /v1/agent with the
 * cluster token (a refusal is logged without the token), waits for hello, checks protocol
 * version and cluster, then serves the session. A session silent past the heartbeat deadline
 * is closed (no half-open sessions). The embedded agent comes in through accept() with an
 * in-memory channel and is served by exactly the same code.
 */
export class AgentHub {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 * 1024 });
  private readonly channels = new Set<Channel>();

  constructor(private readonly deps: AgentHubDeps) {}

  /** For the API server's 'upgrade' event. Returns false when the path is not ours. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const url = new URL(req.url ?? '/', 'http://orca');
    if (url.pathname !== AGENT_PATH) return false;
    if (!tokenMatches(bearer(req.headers.authorization), this.deps.token)) {
      this.deps.log.warn({ remote: req.socket.remoteAddress, path: url.pathname }, 'agent refused: missing or wrong token');
      socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nmissing or wrong token\n');
      return true;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      keepAlive(ws, this.deps.clock, this.deps.heartbeat.intervalMs);
      this.accept(wsChannel(ws), req.socket.remoteAddress ?? 'unknown');
    });
    return true;
  }

  /** Serves one session from its first message to its end. */
  accept(channel: Channel, remote: string): void {
    this.channels.add(channel);
    let node: RemoteNode | null = null;
    let deadline: TimerHandle | null = null;
    const send = (msg: ServerMessage) => channel.send(encode(msg));
    const refuse = (code: string, message: string) => {
      this.deps.log.warn({ remote, code, message }, 'agent session refused');
      send({ type: 'error', code, message });
      channel.close(4403, message.slice(0, 120));
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
      if (deadline) this.deps.clock.clearTimeout(deadline);
      this.channels.delete(channel);
      if (node) {
        node.detach(channel);
        this.deps.log.info({ node: node.name }, 'agent session ended');
      }
    });

    channel.onMessage((text) => {
      const d = decodeAgentMessage(text);
      if (!d.ok) {
        this.deps.log.warn({ remote, node: node?.name, error: d.error }, 'bad message from an agent; closing its session');
        send({ type: 'error', code: 'ORCA_PROTOCOL', message: d.error });
        channel.close(4400, d.error.slice(0, 120));
        return;
      }
      const msg = d.msg;
      if (!node) {
        if (msg.type !== 'hello') return refuse('ORCA_PROTOCOL', `expected hello, got ${msg.type}`);
        if (msg.v !== PROTOCOL_VERSION) return refuse('ORCA_PROTOCOL', `protocol version ${msg.v} not supported (this server speaks ${PROTOCOL_VERSION})`);
        if (msg.cluster !== this.deps.clusterId) return refuse('ORCA_CONFLICT', `agent is in cluster "${msg.cluster}", this server is "${this.deps.clusterId}"`);
        void this.welcome(channel, msg).then(
          (n) => {
            node = n;
            arm(this.deps.heartbeat.timeoutMs);
          },
          (err) => refuse('ORCA_INTERNAL', (err as Error).message),
        );
        return;
      }
      arm(this.deps.heartbeat.timeoutMs);
      this.deps.registry.heard(node.name);
      this.handle(node, msg, send);
    });
  }

  /** Closes every session (server stopping). */
  close(): void {
    for (const c of this.channels) c.close(1001, 'server stopping');
    this.wss.close();
  }

  private async welcome(channel: Channel, hello: Extract<AgentMessage, { type: 'hello' }>): Promise<RemoteNode> {
    const node = await this.deps.registry.hello({ name: hello.node, advertise: hello.advertise, labels: hello.labels, capacity: hello.capacity });
    channel.send(encode({ type: 'welcome', v: PROTOCOL_VERSION, heartbeatIntervalMs: this.deps.heartbeat.intervalMs, heartbeatTimeoutMs: this.deps.heartbeat.timeoutMs }));
    node.attach(channel, hello.reports, hello.endpoints);
    this.deps.log.info({ node: node.name, instances: hello.reports.length }, 'agent session established');
    this.deps.onSession(node);
    this.deps.onState(node);
    return node;
  }

  private handle(node: RemoteNode, msg: AgentMessage, send: (m: ServerMessage) => void): void {
    if (node.handleReply(msg)) return;
    switch (msg.type) {
      case 'state':
        node.updateState(msg.reports, msg.endpoints);
        this.deps.onState(node);
        return;
      case 'endpoints':
        node.updateEndpoints(msg.endpoints);
        this.deps.onState(node);
        return;
      case 'event':
        for (const e of msg.records) this.deps.record(e as EventRecord);
        return;
      case 'heartbeat':
        send({ type: 'heartbeat-ack', seq: msg.seq });
        return;
      case 'drain':
        void this.deps.drain(msg.address, msg.maxMs).finally(() => send({ type: 'drained', id: msg.id }));
        return;
      case 'hello':
        this.deps.log.warn({ node: node.name }, 'second hello in one session; ignored');
        return;
      default:
        return;
    }
  }
}
