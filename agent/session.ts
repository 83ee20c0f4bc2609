import { sleep, type Clock, type Rng, type TimerHandle } from '../core/clock.js';
import { backoffDelayMs, type BackoffPolicy } from '../core/backoff.js';
import { errorMessage, isOrcaError, OrcaError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { EventRecord } from '../store/types.js';
import type { SlotAssignment } from '../controllers/container/types.js';
import type { ObservedContainer } from '../runtime/types.js';
import type { Channel } from '../protocol/channel.js';
import { LogPump } from './log-pump.js';
import { decodeServerMessage, encode, LIMITS, PROTOCOL_VERSION, type AgentMessage, type Endpoint, type ServerMessage } from '../protocol/messages.js';
import type { InstanceReport } from './reports.js';
import { jsonBytes, splitByBytes } from '../protocol/split.js';

export interface SessionIdentity {
  node: string;
  cluster: string;
  advertise: string;
  labels: Record<string, string>;
  capacity: { memoryBytes?: number };
}

export interface AgentSessionDeps {
  clock: Clock;
  rng: Rng;
  log: Logger;
  identity: SessionIdentity;
  /** Opens a channel to the server; throws when it cannot. */
  dial: () => Promise<Channel>;
  /** Reconnect backoff: 5, 10, 20, 40, 60, 60 … s with ±20 % jitter by default. */
  reconnect: BackoffPolicy;
  /** Events kept while cut off, oldest dropped first. */
  maxBufferedEvents?: number;
  // What the session needs of the node, as plain functions (it holds no Agent):
  /** The node's instance reports and its endpoints, read now (hello, state pushes, the server's `observe`). */
  inventory: () => Promise<{ reports: InstanceReport[]; endpoints: Endpoint[] }>;
  /** The server's assignment set for this node (whole, after every full or delta message): apply it. */
  onAssignments: (slots: SlotAssignment[]) => Promise<void>;
  /** This node's containers of one service (the server's `containers` request). */
  containers: (service: string) => Promise<ObservedContainer[]>;
  /** A container's output (the server's `logs` request); ends when the signal aborts. */
  logs: (containerId: string, opts: { tail?: number; follow?: boolean; signal?: AbortSignal }) => AsyncIterable<string>;
}

/**
 * The agent's half of a session with the server. Keeps reconnecting with exponential
 * backoff while the agent goes on healing locally from its cached assignments; on every
 * connect it says hello with its full inventory and takes the server's full assignment set.
 * A session that hears nothing for the server-set deadline is ended and dialled again (no
 * half-open sessions).
 */
/**
 * Refusals (close 4403 before the welcome) that retrying cannot fix: a cluster id or protocol
 * mismatch. A node name held by a live session (close 4409, also ORCA_CONFLICT) is not one of
 * them: that agent waits.
 */
const FATAL_REFUSALS = new Set(['ORCA_CONFLICT', 'ORCA_PROTOCOL']);

export class AgentSession {
  private channel: Channel | null = null;
  private welcomed = false;
  private heartbeatTimer: TimerHandle | null = null;
  private deadlineTimer: TimerHandle | null = null;
  private stateTimer: TimerHandle | null = null;
  private seq = 0;
  private nextId = 1;
  private heartbeat = { intervalMs: 5000, timeoutMs: 15000 };
  private readonly pendingEvents: EventRecord[] = [];
  private readonly drains = new Map<number, () => void>();
  private readonly logStreams = new Map<number, AbortController>();
  private readonly logPumps = new Map<number, LogPump>();
  private assignments: SlotAssignment[] = [];
  private lastEndpoints = '';
  /** The node's endpoints as last pushed (changed) or read (inventory). */
  private endpoints: Endpoint[] = [];
  /** Report parts of the hello that did not fit in it, sent right after the welcome. */
  private helloRest: InstanceReport[][] = [];
  private connectedOnce: (() => void) | null = null;
  /** Resolves at the first welcome (tests, start-up). */
  readonly firstConnect = new Promise<void>((r) => (this.connectedOnce = r));
  private giveUp: ((err: OrcaError) => void) | null = null;
  /**
   * Resolves (never rejects) when retrying cannot help: the server refused the token (401), or
   * refused the session for a reason of configuration (another cluster id, another protocol
   * version). run() ends then; `orca agent` exits 2 with the reason.
   */
  readonly fatal = new Promise<OrcaError>((r) => (this.giveUp = r));
  private refusal: { code: string; message: string } | null = null;
  private lastCloseCode = 0;

  constructor(private readonly deps: AgentSessionDeps) {}

  get connected(): boolean {
    return this.welcomed;
  }

  /** Runs until the signal aborts: dial, serve, and on loss dial again after the backoff. */
  async run(signal: AbortSignal): Promise<void> {
    let attempt = 0;
    while (!signal.aborted) {
      let channel: Channel | null = null;
      try {
        channel = await this.deps.dial();
      } catch (err) {
        if (isOrcaError(err, 'ORCA_UNAUTHORIZED')) return this.stopFor(err);
        this.deps.log.warn({ err: { message: errorMessage(err) }, attempt: attempt + 1 }, 'cannot reach the server');
      }
      if (channel) {
        this.refusal = null;
        const closed = this.serve(channel, signal);
        const welcomed = await closed;
        if (welcomed) attempt = 0;
        else {
          // Set by the server's `error` message during serve() (TS cannot see that).
          const refusal = this.refusal as { code: string; message: string } | null;
          if (this.lastCloseCode === 4403 && refusal && FATAL_REFUSALS.has(refusal.code)) {
            return this.stopFor(new OrcaError(refusal.code === 'ORCA_CONFLICT' ? 'ORCA_CONFLICT' : 'ORCA_USAGE', `the server refused this agent: ${refusal.message}`));
          }
        }
      }
      if (signal.aborted) break;
      const delay = backoffDelayMs(this.deps.reconnect, attempt++, this.deps.rng);
      this.deps.log.info({ inMs: Math.round(delay), attempt }, 'reconnecting to the server');
      try {
        await sleep(this.deps.clock, delay, signal);
      } catch {
        break;
      }
    }
    this.channel?.close(1001, 'agent stopping');
  }

  private stopFor(err: OrcaError): void {
    this.deps.log.error({ code: err.code, message: err.message }, 'giving up: retrying cannot help');
    this.giveUp?.(err);
  }

  // ---- hooks the agent calls --------------------------------------------------------

  /** The node's instances changed and these are its endpoints now: push them, and the state soon (coalesced). */
  changed(endpoints: Endpoint[]): void {
    this.endpoints = endpoints;
    this.sync();
  }

  private sync(): void {
    if (!this.welcomed) return;
    // Endpoints come from memory and go at once: a dead instance must leave the routes within
    // milliseconds, not after a Docker listing (inspecting a dying container can take 400 ms).
    const endpoints = JSON.stringify(this.endpoints);
    if (endpoints !== this.lastEndpoints) {
      this.lastEndpoints = endpoints;
      this.send({ type: 'endpoints', endpoints: JSON.parse(endpoints) as Endpoint[] });
    }
    if (this.stateTimer) return;
    this.stateTimer = this.deps.clock.setTimeout(() => {
      this.stateTimer = null;
      void this.pushState();
    }, 0);
  }

  /** A reconciliation log line: sent now, or kept until the session is back. */
  record(e: EventRecord): void {
    if (this.welcomed) {
      this.send({ type: 'event', records: [e] });
      return;
    }
    this.pendingEvents.push(e);
    const max = this.deps.maxBufferedEvents ?? 5000;
    if (this.pendingEvents.length > max) this.pendingEvents.splice(0, this.pendingEvents.length - max);
  }

  /** Asks the server to take an instance out of its routes and wait for its requests (bounded). */
  drain(instance: string, address: string, maxMs: number): Promise<void> {
    if (!this.welcomed) return Promise.resolve();
    const id = this.nextId++;
    return new Promise<void>((resolve) => {
      const timer = this.deps.clock.setTimeout(() => {
        this.drains.delete(id);
        resolve();
      }, maxMs + 1000);
      this.drains.set(id, () => {
        this.deps.clock.clearTimeout(timer);
        resolve();
      });
      this.send({ type: 'drain', id, instance, address, maxMs });
    });
  }

  // ---- the session ------------------------------------------------------------------

  /** Serves one channel until it closes; resolves whether it was ever welcomed. */
  private serve(channel: Channel, signal: AbortSignal): Promise<boolean> {
    this.channel = channel;
    this.welcomed = false;
    let wasWelcomed = false;
    return new Promise<boolean>((resolve) => {
      const onAbort = () => channel.close(1001, 'agent stopping');
      signal.addEventListener('abort', onAbort, { once: true });
      channel.onClose((code, reason) => {
        this.lastCloseCode = code;
        signal.removeEventListener('abort', onAbort);
        this.teardown();
        if (wasWelcomed) this.deps.log.warn({ code, reason }, 'session with the server ended');
        else if (code === 4409) {
          // Another agent holds this node name: never evict it, never run its slots; wait and retry.
          const from = /from (.*)$/.exec(reason)?.[1] ?? 'another agent';
          this.deps.log.warn(
            { code, node: this.deps.identity.node, remote: from },
            `node name ${this.deps.identity.node} already has a live session from ${from}; waiting`,
          );
        }
        resolve(wasWelcomed);
      });
      channel.onMessage((text) => {
        this.armDeadline();
        const d = decodeServerMessage(text);
        if (!d.ok) {
          this.deps.log.warn({ error: d.error }, 'bad message from the server; closing the session');
          channel.close(4400, d.error.slice(0, 120));
          return;
        }
        if (d.msg.type === 'welcome') wasWelcomed = true;
        void this.handle(d.msg).catch((err) => this.deps.log.error({ err }, 'handling a server message failed'));
      });
      void this.hello().catch((err) => {
        this.deps.log.warn({ err }, 'could not say hello');
        channel.close(1011, 'hello failed');
      });
      this.heartbeat = { intervalMs: 5000, timeoutMs: 15000 };
      this.armDeadline();
    });
  }

  private async hello(): Promise<void> {
    const id = this.deps.identity;
    const { reports, endpoints } = await this.inventory().catch(() => ({ reports: [], endpoints: this.endpoints }));
    const [first = [], ...rest] = this.reportParts(reports, endpoints);
    this.helloRest = rest;
    this.send({
      type: 'hello',
      v: PROTOCOL_VERSION,
      node: id.node,
      cluster: id.cluster,
      advertise: id.advertise,
      labels: id.labels,
      capacity: id.capacity,
      reports: first,
      endpoints,
      ...(rest.length ? { more: true } : {}),
    });
  }

  private async handle(msg: ServerMessage): Promise<void> {
    switch (msg.type) {
      case 'welcome': {
        this.heartbeat = { intervalMs: msg.heartbeatIntervalMs, timeoutMs: msg.heartbeatTimeoutMs };
        this.welcomed = true;
        this.deps.log.info({ heartbeatIntervalMs: msg.heartbeatIntervalMs }, 'session with the server established');
        this.scheduleHeartbeat();
        this.armDeadline();
        const rest = this.helloRest;
        this.helloRest = [];
        rest.forEach((part, i) => this.send({ type: 'state', reports: part, endpoints: this.endpoints, ...(i < rest.length - 1 ? { more: true } : {}) }));
        if (this.pendingEvents.length) this.sendEvents(this.pendingEvents.splice(0));
        this.connectedOnce?.();
        this.connectedOnce = null;
        return;
      }
      case 'assignments': {
        if (msg.full) this.assignments = (msg.slots ?? []) as SlotAssignment[];
        else {
          const changed = msg.services ?? {};
          this.assignments = [
            ...this.assignments.filter((a) => !(a.service in changed)),
            ...(Object.values(changed).flat() as SlotAssignment[]),
          ];
        }
        await this.deps.onAssignments(this.assignments);
        this.sync();
        return;
      }
      case 'heartbeat-ack':
        return;
      case 'drained': {
        const done = this.drains.get(msg.id);
        this.drains.delete(msg.id);
        done?.();
        return;
      }
      case 'containers': {
        try {
          const all = await this.deps.containers(msg.service);
          const containers = splitByBytes(all, LIMITS.agentMessageBudget, LIMITS.containers)[0] ?? [];
          if (containers.length < all.length) this.deps.log.warn({ service: msg.service, containers: all.length, sent: containers.length }, 'container list cut to fit one message');
          this.send({ type: 'containers-result', id: msg.id, containers });
        } catch (err) {
          this.send({ type: 'containers-result', id: msg.id, containers: [], error: errorMessage(err) });
        }
        return;
      }
      case 'observe': {
        try {
          const { reports, endpoints } = await this.inventory();
          const parts = this.reportParts(reports, endpoints);
          parts.forEach((part, i) =>
            this.send(i < parts.length - 1 ? { type: 'observed', id: msg.id, reports: part, more: true } : { type: 'observed', id: msg.id, reports: part, endpoints }),
          );
        } catch (err) {
          this.send({ type: 'observed', id: msg.id, reports: [], error: errorMessage(err) });
        }
        return;
      }
      case 'logs':
        return this.streamLogs(msg.id, msg.containerId, msg.tail, msg.follow, msg.window);
      case 'logs-credit':
        this.logPumps.get(msg.id)?.grant(msg.chars);
        return;
      case 'logs-cancel':
        this.logStreams.get(msg.id)?.abort();
        return;
      case 'error':
        this.refusal = { code: msg.code, message: msg.message };
        this.deps.log.error({ code: msg.code, message: msg.message }, 'the server refused the session');
        return;
    }
  }

  /** Streams a container's log lines, flow-controlled by the server's credit (agent/log-pump.ts). */
  private async streamLogs(id: number, containerId: string, tail: number | undefined, follow: boolean, window: number | undefined): Promise<void> {
    const abort = new AbortController();
    this.logStreams.set(id, abort);
    const pump = new LogPump(window, abort.signal);
    this.logPumps.set(id, pump);
    try {
      await pump.run(this.deps.logs(containerId, { tail, follow, signal: abort.signal }), (lines) => this.send({ type: 'logs-data', id, lines }));
      this.send({ type: 'logs-end', id });
    } catch (err) {
      this.send({ type: 'logs-end', id, ...(abort.signal.aborted ? {} : { error: errorMessage(err) }) });
    } finally {
      this.logStreams.delete(id);
      this.logPumps.delete(id);
    }
  }

  private async pushState(): Promise<void> {
    if (!this.welcomed) return;
    const { reports, endpoints } = await this.inventory().catch((err) => {
      this.deps.log.warn({ err }, 'cannot observe the runtime for a state report');
      return { reports: null, endpoints: this.endpoints };
    });
    this.lastEndpoints = JSON.stringify(endpoints);
    const parts = this.reportParts(reports ?? [], endpoints);
    parts.forEach((part, i) => this.send({ type: 'state', reports: part, endpoints, ...(i < parts.length - 1 ? { more: true } : {}) }));
  }

  /** The node's inventory; its endpoints are the latest known from then on. */
  private async inventory(): Promise<{ reports: InstanceReport[]; endpoints: Endpoint[] }> {
    const got = await this.deps.inventory();
    this.endpoints = got.endpoints;
    return got;
  }

  /** A report set cut into parts that fit one message each, next to the endpoints (sent whole in every part). */
  private reportParts(reports: InstanceReport[], endpoints: Endpoint[]): InstanceReport[][] {
    const room = Math.max(LIMITS.agentMessageBudget / 4, LIMITS.agentMessageBudget - jsonBytes(endpoints));
    return splitByBytes(reports, room, LIMITS.reports);
  }

  /** Events in as many messages as it takes (each within the server's limits). */
  private sendEvents(records: EventRecord[]): void {
    for (const part of splitByBytes(records, LIMITS.agentMessageBudget, LIMITS.events)) if (part.length) this.send({ type: 'event', records: part });
  }

  private send(msg: AgentMessage): void {
    this.channel?.send(encode(msg));
  }

  private scheduleHeartbeat(): void {
    if (this.heartbeatTimer) this.deps.clock.clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = this.deps.clock.setTimeout(() => {
      this.send({ type: 'heartbeat', seq: this.seq++ });
      this.scheduleHeartbeat();
    }, this.heartbeat.intervalMs);
  }

  /** No word from the server for the deadline: the session is dead, whatever TCP thinks. */
  private armDeadline(): void {
    if (this.deadlineTimer) this.deps.clock.clearTimeout(this.deadlineTimer);
    const channel = this.channel;
    this.deadlineTimer = this.deps.clock.setTimeout(() => {
      this.deps.log.warn({ timeoutMs: this.heartbeat.timeoutMs }, 'no word from the server; ending the session');
      channel?.close(4408, 'heartbeat deadline');
    }, this.heartbeat.timeoutMs);
  }

  private teardown(): void {
    this.welcomed = false;
    this.helloRest = [];
    this.lastEndpoints = '';
    this.channel = null;
    for (const t of [this.heartbeatTimer, this.deadlineTimer, this.stateTimer]) if (t) this.deps.clock.clearTimeout(t);
    this.heartbeatTimer = this.deadlineTimer = this.stateTimer = null;
    for (const done of this.drains.values()) done();
    this.drains.clear();
    for (const a of this.logStreams.values()) a.abort();
  }
}
