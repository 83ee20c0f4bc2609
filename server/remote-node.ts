import type { Clock } from '../core/clock.js';
import { OrcaError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { DEFAULTS } from '../core/defaults.js';
import type { InstanceReport } from '../protocol/reports.js';
import type { Channel } from '../protocol/channel.js';
import { encode, LIMITS, type AgentMessage, type Endpoint, type ServerMessage } from '../protocol/messages.js';
import { isAssigned } from './endpoint-check.js';
import type { SlotAssignment } from '../controllers/container/types.js';
import type { ObservedContainer } from '../runtime/types.js';
import type { NodeLink, NodeState } from './nodes.js';
import { LogInbox, LOG_WINDOW_CHARS } from './log-inbox.js';

/** What a node told the server about itself (kept across server restarts). */
export interface NodeInfo {
  name: string;
  advertise: string;
  labels: Record<string, string>;
  capacity: { memoryBytes?: number };
  /** Set by `orca drain`, cleared by `orca uncordon`. */
  drained: boolean;
}

const RPC_TIMEOUT_MS = DEFAULTS.nodeRpcTimeoutMs;

/**
 * The server's handle on one agent, over its session (a WebSocket, or the embedded agent's
 * in-memory channel: the same protocol either way). Assignments are sent in full when a
 * session starts and as per-service deltas after; instance state is what the agent pushed
 * (routes) or, for status, asked of it now.
 */
export class RemoteNode implements NodeLink {
  private channel: Channel | null = null;
  private desired: SlotAssignment[] = [];
  /** False until the control plane has said what this node runs: nothing is sent before that. */
  private published = false;
  /** Whether this session has had its full set yet. */
  private sentFull = false;
  private sent = new Map<string, string>();
  private reports: InstanceReport[] = [];
  private endpointList: Endpoint[] = [];
  /** Reports of a set that arrives in parts (`more`), until its last part. */
  private partialReports: InstanceReport[] | null = null;
  private readonly observedParts = new Map<number, InstanceReport[]>();
  /** `service/slot` → revision, of the slots assigned to this node now. */
  private assignedSlots = new Map<string, number>();
  /** Every service ever assigned to this node since the server started (bounded by the cluster's services). */
  private readonly everAssigned = new Set<string>();
  /** Where the live session comes from (for the message to a refused duplicate). */
  remote: string | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, (msg: AgentMessage) => void>();
  private readonly logQueues = new Map<number, LogInbox>();
  lastHeartbeatMs: number;
  nodeState: NodeState = 'unreachable';

  constructor(
    public info: NodeInfo,
    private readonly clock: Clock,
    private readonly log: Logger,
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
  attach(channel: Channel, reports: InstanceReport[], endpoints: Endpoint[], o: { more?: boolean; remote?: string } = {}): void {
    if (this.channel && this.channel !== channel) this.channel.close(4409, 'replaced by a newer session');
    this.channel = channel;
    this.remote = o.remote ?? null;
    this.partialReports = null;
    this.takeReports(reports, o.more);
    this.endpointList = endpoints;
    this.sent.clear();
    this.sentFull = false;
    // Never an empty full set by default: an agent would remove what it runs.
    if (this.published) this.sendAssignments(true);
  }

  /** The session ended; the node keeps its last known state until the heartbeat deadline says otherwise. */
  detach(channel: Channel): void {
    if (this.channel !== channel) return;
    this.channel = null;
    this.remote = null;
    this.partialReports = null;
    this.observedParts.clear();
    for (const fn of this.pending.values()) fn({ type: 'observed', id: -1, reports: [], error: 'session ended' });
    this.pending.clear();
    for (const q of this.logQueues.values()) q.push(new Error(`the session with node ${this.name} ended`));
    this.logQueues.clear();
  }

  /** Handles a reply or stream message from the agent. Returns true when it was one. */
  handleReply(msg: AgentMessage): boolean {
    switch (msg.type) {
      case 'observed':
        if (msg.more) {
          if (!this.pending.has(msg.id)) return true;
          const parts = (this.observedParts.get(msg.id) ?? []).concat(msg.reports);
          if (parts.length > LIMITS.reportsTotal) {
            this.observedParts.delete(msg.id);
            this.log.warn({ node: this.name, reports: parts.length }, 'observed reply over the report limit; ignored');
          } else this.observedParts.set(msg.id, parts);
          return true;
        } else {
          const parts = this.observedParts.get(msg.id);
          this.observedParts.delete(msg.id);
          const fn = this.pending.get(msg.id);
          this.pending.delete(msg.id);
          fn?.(parts ? { ...msg, reports: parts.concat(msg.reports) } : msg);
          return true;
        }
      case 'containers-result': {
        const fn = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        fn?.(msg);
        return true;
      }
      case 'logs-data':
        this.logQueues.get(msg.id)?.push(msg.lines);
        return true;
      case 'logs-end': {
        const q = this.logQueues.get(msg.id);
        this.logQueues.delete(msg.id);
        q?.push(msg.error ? new Error(msg.error) : null);
        return true;
      }
      default:
        return false;
    }
  }

  updateEndpoints(endpoints: Endpoint[]): void {
    this.endpointList = endpoints;
  }

  /** A state report (reports replace the last set once complete: a set may come in parts). */
  updateState(reports: InstanceReport[], endpoints: Endpoint[], more?: boolean): void {
    this.takeReports(reports, more);
    this.endpointList = endpoints;
  }

  private takeReports(reports: InstanceReport[], more: boolean | undefined): void {
    const all = this.partialReports ? this.partialReports.concat(reports) : reports;
    if (!more) {
      this.partialReports = null;
      this.reports = all;
      return;
    }
    if (all.length > LIMITS.reportsTotal) {
      this.log.warn({ node: this.name, reports: all.length }, 'report set over the limit; the last complete one is kept');
      this.partialReports = null;
      return;
    }
    this.partialReports = all;
  }

  /** Whether a service was assigned to this node at some time since the server started. */
  knowsService(service: string): boolean {
    return this.everAssigned.has(service);
  }

  /** Whether the control plane has said what this node runs. */
  get hasAssignments(): boolean {
    return this.published;
  }

  /** Whether an endpoint's instance is of a slot assigned to this node now. */
  assigned(e: { service: string; instance: string }): boolean {
    return isAssigned(e, this.assignedSlots);
  }

  setAssignments(list: SlotAssignment[]): Promise<void> {
    this.desired = list;
    this.assignedSlots = new Map(list.map((a) => [`${a.service}/${a.slot}`, a.revision]));
    for (const a of list) this.everAssigned.add(a.service);
    this.published = true;
    this.sendAssignments(!this.sentFull);
    return Promise.resolve();
  }

  assignments(): SlotAssignment[] {
    return this.desired;
  }

  /** Ready endpoints the agent reported, of instances assigned to this node now (addresses were checked on receipt). */
  endpoints(): Endpoint[] {
    return this.endpointList.filter((e) => isAssigned(e, this.assignedSlots));
  }

  lastReports(): InstanceReport[] {
    return this.reports;
  }

  /** The node's instances as its agent reads them from Docker now; the last report if it cannot answer. */
  async observe(): Promise<InstanceReport[]> {
    // A node we cannot hear from cannot be asked: what it last said is all there is.
    if (!this.channel || this.nodeState === 'unreachable' || this.nodeState === 'down') return this.reports;
    try {
      const msg = await this.request({ type: 'observe', id: 0 });
      if (msg.type === 'observed' && msg.error) {
        throw new OrcaError('ORCA_RUNTIME_UNAVAILABLE', `node ${this.name} cannot read its containers: ${msg.error}`);
      }
      if (msg.type === 'observed') {
        this.reports = msg.reports;
        if (msg.endpoints) this.endpointList = msg.endpoints;
        return msg.reports;
      }
    } catch (err) {
      if (err instanceof OrcaError && err.code === 'ORCA_RUNTIME_UNAVAILABLE') throw err;
      this.log.warn({ node: this.name, err }, 'node did not answer observe; using its last report');
    }
    return this.reports;
  }

  async containers(service: string): Promise<ObservedContainer[]> {
    if (!this.channel) throw new OrcaError('ORCA_SERVER_UNREACHABLE', `node ${this.name} is not connected`);
    const msg = await this.request({ type: 'containers', id: 0, service });
    if (msg.type !== 'containers-result') return [];
    if (msg.error) throw new OrcaError('ORCA_RUNTIME_FAILED', msg.error);
    return msg.containers;
  }

  logs(containerId: string, opts: { tail?: number; follow?: boolean; signal?: AbortSignal }): AsyncIterable<string> {
    const node = this;
    return {
      async *[Symbol.asyncIterator]() {
        const channel = node.channel;
        if (!channel) throw new OrcaError('ORCA_SERVER_UNREACHABLE', `node ${node.name} is not connected`);
        const id = node.nextId++;
        // Flow-controlled (server/log-inbox.ts): the agent sends only what this reader has room for.
        const inbox = new LogInbox(LOG_WINDOW_CHARS, (chars) => channel.send(encode({ type: 'logs-credit', id, chars })));
        node.logQueues.set(id, inbox);
        const cancel = () => channel.send(encode({ type: 'logs-cancel', id }));
        opts.signal?.addEventListener('abort', cancel, { once: true });
        channel.send(encode({ type: 'logs', id, containerId, follow: opts.follow ?? false, window: LOG_WINDOW_CHARS, ...(opts.tail !== undefined ? { tail: opts.tail } : {}) }));
        try {
          yield* inbox.lines();
        } finally {
          opts.signal?.removeEventListener('abort', cancel);
          node.logQueues.delete(id);
          // A reader that stopped early (or an inbox that overflowed) stops the agent's stream too.
          if (!inbox.ended && !opts.signal?.aborted) cancel();
        }
      },
    };
  }

  send(msg: ServerMessage): void {
    this.channel?.send(encode(msg));
  }

  private sendAssignments(full: boolean): void {
    if (!this.channel) return;
    const byService = new Map<string, SlotAssignment[]>();
    for (const a of this.desired) {
      const l = byService.get(a.service) ?? [];
      l.push(a);
      byService.set(a.service, l);
    }
    if (full) {
      this.sentFull = true;
      this.sent = new Map([...byService].map(([s, l]) => [s, JSON.stringify(l)]));
      this.send({ type: 'assignments', full: true, slots: this.desired });
      return;
    }
    const changed: Record<string, SlotAssignment[]> = {};
    for (const [svc, list] of byService) {
      const text = JSON.stringify(list);
      if (this.sent.get(svc) !== text) {
        changed[svc] = list;
        this.sent.set(svc, text);
      }
    }
    for (const svc of [...this.sent.keys()]) {
      if (!byService.has(svc)) {
        changed[svc] = [];
        this.sent.delete(svc);
      }
    }
    if (Object.keys(changed).length > 0) this.send({ type: 'assignments', full: false, services: changed });
  }

  private request(msg: Extract<ServerMessage, { id: number }>): Promise<AgentMessage> {
    const channel = this.channel;
    if (!channel) return Promise.reject(new OrcaError('ORCA_SERVER_UNREACHABLE', `node ${this.name} is not connected`));
    const id = this.nextId++;
    return new Promise<AgentMessage>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.pending.delete(id);
        reject(new OrcaError('ORCA_TIMEOUT', `node ${this.name} did not answer within ${RPC_TIMEOUT_MS} ms`, { transient: true }));
      }, RPC_TIMEOUT_MS);
      this.pending.set(id, (reply) => {
        this.clock.clearTimeout(timer);
        resolve(reply);
      });
      channel.send(encode({ ...msg, id } as ServerMessage));
    });
  }
}
