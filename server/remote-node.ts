import type { Clock, TimerHandle } from '../core/clock.js';
import type { EdgeState } from '../proxy/tls.js';
import { OrcaError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { DEFAULTS } from '../core/defaults.js';
import type { InstanceReport } from '../protocol/reports.js';
import type { Channel } from '../protocol/channel.js';
import { encode, type AgentMessage, type Endpoint, type ServerMessage, type VolumeRecord } from '../protocol/messages.js';
import {
  initialServerSession,
  stepServerSession,
  type ServerSessionEffect,
  type ServerSessionInput,
  type ServerSessionState,
  type ServerTimer,
  type ServerRequest,
} from '../protocol/server-session.js';
import { isAssigned } from './endpoint-check.js';
import type { SlotAssignment } from '../controllers/container/types.js';
import type { ObservedContainer } from '../runtime/types.js';
import type { NodeLink, NodeState } from './nodes.js';
import { LogInbox, LOG_WINDOW_CHARS } from './log-inbox.js';
import type { SecretResolver } from './secret-delivery.js';
import type { RouteEntry } from '../protocol/routes.js';

/** What a node told the server about itself (kept across server restarts). */
export interface NodeInfo {
  name: string;
  advertise: string;
  labels: Record<string, string>;
  capacity: { memoryBytes?: number };
  /** Set by `orca drain`, cleared by `orca uncordon`. */
  drained: boolean;
  /** Directories the node allows host mounts under (its hello); absent: none. */
  allowHostPaths?: string[];
  /**
   * The protocol version its agent speaks (its hello's). Absent in a record written by a server
   * before protocol 2, whose agents all spoke 1 (until the node says hello again).
   */
  protocol?: number;
}

const RPC_TIMEOUT_MS = DEFAULTS.nodeRpcTimeoutMs;

/**
 * The server's handle on one agent, over its session (a WebSocket, or the embedded agent's
 * in-memory channel: the same protocol either way). Assignments are sent in full when a
 * session starts and as per-service deltas after; instance state is what the agent pushed
 * (routes) or, for status, asked of it now. What goes over the session is decided by
 * protocol/server-session.ts; this class keeps the channel and the timers, answers callers and
 * holds what the control plane reads (state, heartbeat, what was assigned).
 */
export class RemoteNode implements NodeLink {
  private channel: Channel | null = null;
  /** Counts sessions: a log reader of an earlier session never speaks on a later one. */
  private epoch = 0;
  private session: ServerSessionState = initialServerSession();
  private readonly timers = new Map<ServerTimer, TimerHandle>();
  /** `service/slot` → revision, of the slots assigned to this node now. */
  private assignedSlots = new Map<string, number>();
  /** Every service ever assigned to this node since the server started (bounded by the cluster's services). */
  private readonly everAssigned = new Set<string>();
  /** Where the live session comes from (for the message to a refused duplicate). */
  remote: string | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, { reply: (msg: AgentMessage) => void; timeout: () => void }>();
  private readonly logQueues = new Map<number, LogInbox>();
  /** The node's volumes as it last listed them (shown for a node that cannot be asked). */
  private lastVolumes: VolumeRecord[] = [];
  private readonly queue: ServerSessionInput[] = [];
  private stepping = false;
  lastHeartbeatMs: number;
  nodeState: NodeState = 'unreachable';

  constructor(
    public info: NodeInfo,
    private readonly clock: Clock,
    private readonly log: Logger,
    /** Reads the secret values of the slots assigned here (SPEC §3.9); none without it. */
    private readonly revealSecrets?: SecretResolver,
  ) {
    this.lastHeartbeatMs = clock.now();
  }

  get name(): string {
    return this.info.name;
  }
  labels(): Record<string, string> {
    return this.info.labels;
  }
  capacity(): { memoryBytes?: number } {
    return this.info.capacity;
  }
  allowHostPaths(): string[] {
    return this.info.allowHostPaths ?? [];
  }
  protocol(): number {
    return this.info.protocol ?? 1;
  }
  state(): NodeState {
    return this.nodeState;
  }
  address(): string {
    return this.info.advertise;
  }
  lastHeartbeat(): string {
    return new Date(this.lastHeartbeatMs).toISOString();
  }
  get attached(): boolean {
    return this.channel !== null;
  }

  /**
   * A session began (after hello): the node gets its full assignment set. The hub never attaches
   * a second session while one is live (the newcomer is refused with 4409).
   */
  attach(channel: Channel, reports: InstanceReport[], endpoints: Endpoint[], o: { more?: boolean; remote?: string; proxy?: boolean; proxyTls?: boolean } = {}): void {
    if (this.channel && this.channel !== channel) this.channel.close(4409, 'replaced by a newer session');
    this.channel = channel;
    this.epoch++;
    this.remote = o.remote ?? null;
    this.feed({ kind: 'attached', reports, endpoints, protocol: this.protocol(), ...(o.more ? { more: true } : {}), ...(o.proxy ? { proxy: true } : {}), ...(o.proxyTls ? { proxyTls: true } : {}) });
  }

  /** The cluster's whole route table: sent to the node when its agent runs a proxy and the table changed (SPEC §3.11). */
  setRoutes(routes: RouteEntry[]): void {
    this.feed({ kind: 'routes', routes });
  }

  /** The certificates and ACME challenges (SPEC §3.12): sent to the node when its agent runs a proxy and they changed. */
  setEdge(edge: EdgeState): void {
    this.feed({ kind: 'edge', edge });
  }

  /** Whether the attached agent runs a proxy (its hello said so). */
  get runsProxy(): boolean {
    return this.channel !== null && this.session.proxy;
  }

  /** The session ended; the node keeps its last known state until the heartbeat deadline says otherwise. */
  detach(channel: Channel): void {
    if (this.channel !== channel) return;
    this.channel = null;
    this.remote = null;
    this.feed({ kind: 'detached' });
  }

  /** Handles a reply or stream message from the agent. Returns true when it was one. */
  handleReply(msg: AgentMessage): boolean {
    switch (msg.type) {
      case 'observed':
      case 'containers-result':
      case 'volumes-result':
      case 'volumes-removed':
      case 'logs-data':
      case 'logs-end':
        this.feed({ kind: 'message', msg });
        return true;
      default:
        return false;
    }
  }

  updateEndpoints(endpoints: Endpoint[]): void {
    this.feed({ kind: 'message', msg: { type: 'endpoints', endpoints } });
  }

  /** A state report (reports replace the last set once complete: a set may come in parts). */
  updateState(reports: InstanceReport[], endpoints: Endpoint[], more?: boolean): void {
    this.feed({ kind: 'message', msg: { type: 'state', reports, endpoints, ...(more ? { more: true } : {}) } });
  }

  /** Whether a service was assigned to this node at some time since the server started. */
  knowsService(service: string): boolean {
    return this.everAssigned.has(service);
  }

  /** Whether the control plane has said what this node runs. */
  get hasAssignments(): boolean {
    return this.session.published;
  }

  /** Whether an endpoint's instance is of a slot assigned to this node now. */
  assigned(e: { service: string; instance: string }): boolean {
    return isAssigned(e, this.assignedSlots);
  }

  /** The node's assignment set, with the values of the secrets its slots use (only those). */
  async setAssignments(list: SlotAssignment[]): Promise<void> {
    this.assignedSlots = new Map(list.map((a) => [`${a.service}/${a.slot}`, a.revision]));
    for (const a of list) this.everAssigned.add(a.service);
    const secrets = this.revealSecrets && list.some((a) => a.secretVersions) ? await this.revealSecrets(list) : [];
    this.feed({ kind: 'assignments', slots: list, secrets });
  }

  assignments(): SlotAssignment[] {
    return this.session.desired;
  }

  /** Ready endpoints the agent reported, of instances assigned to this node now (addresses were checked on receipt). */
  endpoints(): Endpoint[] {
    return this.session.endpoints.filter((e) => isAssigned(e, this.assignedSlots));
  }

  lastReports(): InstanceReport[] {
    return this.session.reports;
  }

  /** The node's instances as its agent reads them from Docker now; the last report if it cannot answer. */
  async observe(): Promise<InstanceReport[]> {
    // A node we cannot hear from cannot be asked: what it last said is all there is.
    if (!this.channel || this.nodeState === 'unreachable' || this.nodeState === 'down') return this.session.reports;
    try {
      const msg = await this.request({ type: 'observe' });
      if (msg.type === 'observed' && msg.error) {
        throw new OrcaError('ORCA_RUNTIME_UNAVAILABLE', `node ${this.name} cannot read its containers: ${msg.error}`);
      }
      // The session took the answer as the node's report set.
      if (msg.type === 'observed') return msg.reports;
    } catch (err) {
      if (err instanceof OrcaError && err.code === 'ORCA_RUNTIME_UNAVAILABLE') throw err;
      this.log.warn({ node: this.name, err }, 'node did not answer observe; using its last report');
    }
    return this.session.reports;
  }

  async containers(service: string): Promise<ObservedContainer[]> {
    if (!this.channel) throw new OrcaError('ORCA_SERVER_UNREACHABLE', `node ${this.name} is not connected`);
    const msg = await this.request({ type: 'containers', service });
    if (msg.type !== 'containers-result') return [];
    if (msg.error) throw new OrcaError('ORCA_RUNTIME_FAILED', msg.error);
    return msg.containers;
  }

  /**
   * The node's named volumes as its agent lists them now; for a node that cannot be asked, what it
   * last listed with `stale: true` (empty when it never did).
   */
  async volumes(): Promise<{ volumes: VolumeRecord[]; stale: boolean }> {
    if (!this.channel || this.nodeState === 'unreachable' || this.nodeState === 'down') return { volumes: this.lastVolumes, stale: true };
    try {
      const msg = await this.request({ type: 'volumes' });
      if (msg.type === 'volumes-result' && !msg.error) {
        this.lastVolumes = msg.volumes;
        return { volumes: msg.volumes, stale: false };
      }
      this.log.warn({ node: this.name, error: 'error' in msg ? msg.error : undefined }, 'node could not list its volumes; using its last list');
    } catch (err) {
      this.log.warn({ node: this.name, err }, 'node did not answer volumes; using its last list');
    }
    return { volumes: this.lastVolumes, stale: true };
  }

  /** Asks the node to remove a service's volumes: what it removed and what it could not. Throws when it cannot be asked or does not answer. */
  async removeVolumes(service: string): Promise<{ removed: string[]; failed: Array<{ name: string; error: string }> }> {
    if (!this.channel || this.nodeState === 'down') throw new OrcaError('ORCA_SERVER_UNREACHABLE', `node ${this.name} is not connected`);
    const msg = await this.request({ type: 'volumes-remove', service });
    if (msg.type !== 'volumes-removed') throw new OrcaError('ORCA_SERVER_UNREACHABLE', `node ${this.name}: ${'error' in msg && msg.error ? msg.error : 'no answer'}`);
    if (msg.error) throw new OrcaError('ORCA_RUNTIME_FAILED', `node ${this.name}: ${msg.error}`);
    this.lastVolumes = this.lastVolumes.filter((v) => !msg.removed.includes(v.name));
    return { removed: msg.removed, failed: msg.failed };
  }

  logs(containerId: string, opts: { tail?: number; follow?: boolean; signal?: AbortSignal }): AsyncIterable<string> {
    const node = this;
    return {
      async *[Symbol.asyncIterator]() {
        if (!node.channel) throw new OrcaError('ORCA_SERVER_UNREACHABLE', `node ${node.name} is not connected`);
        const epoch = node.epoch;
        const id = node.nextId++;
        // Only on the session the stream began on.
        const feed = (input: ServerSessionInput) => {
          if (node.epoch === epoch) node.feed(input);
        };
        // Flow-controlled (server/log-inbox.ts): the agent sends only what this reader has room for.
        const inbox = new LogInbox(LOG_WINDOW_CHARS, (chars) => feed({ kind: 'logs-credit', id, chars }));
        node.logQueues.set(id, inbox);
        const cancel = () => feed({ kind: 'logs-cancel', id });
        opts.signal?.addEventListener('abort', cancel, { once: true });
        node.feed({ kind: 'logs-open', id, containerId, follow: opts.follow ?? false, window: LOG_WINDOW_CHARS, ...(opts.tail !== undefined ? { tail: opts.tail } : {}) });
        try {
          yield* inbox.lines();
        } finally {
          opts.signal?.removeEventListener('abort', cancel);
          node.logQueues.delete(id);
          feed({ kind: 'logs-closed', id });
          // A reader that stopped early (or an inbox that overflowed) stops the agent's stream too.
          if (!inbox.ended && !opts.signal?.aborted) cancel();
        }
      },
    };
  }

  send(msg: ServerMessage): void {
    this.channel?.send(encode(msg));
  }

  private request(request: ServerRequest): Promise<AgentMessage> {
    if (!this.channel) return Promise.reject(new OrcaError('ORCA_SERVER_UNREACHABLE', `node ${this.name} is not connected`));
    const id = this.nextId++;
    return new Promise<AgentMessage>((resolve, reject) => {
      this.pending.set(id, {
        reply: resolve,
        timeout: () => reject(new OrcaError('ORCA_TIMEOUT', `node ${this.name} did not answer within ${RPC_TIMEOUT_MS} ms`, { transient: true })),
      });
      this.feed({ kind: 'request', id, request, timeoutMs: RPC_TIMEOUT_MS });
    });
  }

  /** Feeds one input through the session logic and performs its output (in order, never re-entered). */
  private feed(input: ServerSessionInput): void {
    this.queue.push(input);
    if (this.stepping) return;
    this.stepping = true;
    try {
      for (let next = this.queue.shift(); next; next = this.queue.shift()) {
        const r = stepServerSession(this.session, next, this.clock.now());
        this.session = r.state;
        for (const msg of r.send) this.send(msg);
        for (const e of r.effects) this.perform(e);
      }
    } finally {
      this.stepping = false;
    }
  }

  private perform(e: ServerSessionEffect): void {
    switch (e.kind) {
      case 'timer.set': {
        const old = this.timers.get(e.timer);
        if (old) this.clock.clearTimeout(old);
        this.timers.set(
          e.timer,
          this.clock.setTimeout(() => {
            this.timers.delete(e.timer);
            this.feed({ kind: 'timer', timer: e.timer });
          }, e.ms),
        );
        return;
      }
      case 'timer.clear': {
        const t = this.timers.get(e.timer);
        if (t) this.clock.clearTimeout(t);
        this.timers.delete(e.timer);
        return;
      }
      case 'log':
        this.log[e.level]({ node: this.name, ...e.fields }, e.msg);
        return;
      case 'reply': {
        const p = this.pending.get(e.id);
        this.pending.delete(e.id);
        p?.reply(e.msg);
        return;
      }
      case 'reply-timeout': {
        const p = this.pending.get(e.id);
        this.pending.delete(e.id);
        p?.timeout();
        return;
      }
      case 'log-lines':
        this.logQueues.get(e.id)?.push(e.lines);
        return;
      case 'log-end': {
        const q = this.logQueues.get(e.id);
        this.logQueues.delete(e.id);
        q?.push(e.sessionEnded ? new Error(`the session with node ${this.name} ended`) : e.error ? new Error(e.error) : null);
        return;
      }
    }
  }
}
