import { sleep, type Clock, type Rng, type TimerHandle } from '../core/clock.js';
import type { EdgeState } from '../proxy/tls.js';
import { backoffDelayMs, type BackoffPolicy } from '../core/backoff.js';
import { errorMessage, isOrcaError, OrcaError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { EventRecord } from '../store/types.js';
import type { SlotAssignment } from '../controllers/container/types.js';
import type { ObservedContainer } from '../runtime/types.js';
import type { Channel } from '../protocol/channel.js';
import { LogPump } from './log-pump.js';
import { encode, type Endpoint, type SecretValue, type VolumeRecord } from '../protocol/messages.js';
import type { InstanceReport } from '../protocol/reports.js';
import type { RouteEntry } from '../protocol/routes.js';
import {
  initialAgentSession,
  stepAgentSession,
  type AgentSessionEffect,
  type AgentSessionInput,
  type AgentSessionState,
  type SessionIdentity,
  type SessionTimer,
} from '../protocol/agent-session.js';

export type { SessionIdentity };

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
  /**
   * The server's assignment set for this node (whole, after every full or delta message): apply
   * it. `secrets`: the secret values that came with the message (never log them).
   */
  onAssignments: (slots: SlotAssignment[], secrets: SecretValue[]) => Promise<void>;
  /** This node's containers of one service (the server's `containers` request). */
  containers: (service: string) => Promise<ObservedContainer[]>;
  /** This node's named volumes (the server's `volumes` request); absent: answered with an error. */
  volumes?: () => Promise<VolumeRecord[]>;
  /** Removes this node's volumes of a service (the server's `volumes-remove` request). */
  removeVolumes?: (service: string) => Promise<{ removed: string[]; failed: Array<{ name: string; error: string }> }>;
  /** A container's output (the server's `logs` request); ends when the signal aborts. */
  logs: (containerId: string, opts: { tail?: number; follow?: boolean; signal?: AbortSignal }) => AsyncIterable<string>;
  /** The cluster's whole route table as the server pushed it (an agent with a proxy: identity.proxy). */
  onRoutes?: (routes: RouteEntry[]) => void;
  /** The certificates and ACME challenges as the server pushed them (SPEC §3.12). */
  onEdge?: (edge: EdgeState) => void;
}

/**
 * The agent's half of a session with the server, as a transport: it dials, keeps reconnecting
 * with exponential backoff while the agent goes on healing locally from its cached
 * assignments, and performs what the session logic (protocol/agent-session.ts) decides —
 * timers, sends, the node's inventory, assignments, log streams. On every connect the agent
 * says hello with its full inventory and takes the server's full assignment set; a session
 * that hears nothing for the server-set deadline is ended and dialled again.
 */
export class AgentSession {
  private state: AgentSessionState;
  private channel: Channel | null = null;
  /** Counts connections: answers to effects of an earlier connection are dropped. */
  private epoch = 0;
  private readonly timers = new Map<SessionTimer, TimerHandle>();
  private readonly drains = new Map<number, () => void>();
  private nextDrainId = 1;
  private readonly logStreams = new Map<number, { abort: AbortController; pump: LogPump }>();
  /** Inputs fed while a step's output is being performed wait their turn. */
  private readonly queue: AgentSessionInput[] = [];
  private stepping = false;
  private ended: ((outcome: { welcomed: boolean } | OrcaError) => void) | null = null;
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

  constructor(private readonly deps: AgentSessionDeps) {
    this.state = initialAgentSession(deps.identity, deps.maxBufferedEvents);
  }

  get connected(): boolean {
    return this.state.phase === 'welcomed';
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
      let lost = false;
      if (channel) {
        const outcome = await this.serve(channel, signal);
        if (outcome instanceof OrcaError) return this.stopFor(outcome);
        if (outcome.welcomed) {
          attempt = 0;
          lost = true;
        }
      }
      if (signal.aborted) break;
      // A session that was up is dialled again at once (every listed server: a failover finds
      // the new leader within a round, SPEC §3.11), after at most 250 ms of jitter so that a
      // server's agents do not all come back in the same millisecond; then the backoff counts rounds.
      const delay = lost ? this.deps.rng.next() * 250 : backoffDelayMs(this.deps.reconnect, attempt++, this.deps.rng);
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

  // ---- what the agent pushes in -----------------------------------------------------

  /** The node's instances changed and these are its endpoints now: push them, and the state soon (coalesced). */
  changed(endpoints: Endpoint[]): void {
    this.feed({ kind: 'changed', endpoints });
  }

  /** A reconciliation log line: sent now, or kept until the session is back. */
  record(record: EventRecord): void {
    this.feed({ kind: 'event', record });
  }

  /** Asks the server to take an instance out of its routes and wait for its requests (bounded). */
  drain(instance: string, address: string, maxMs: number): Promise<void> {
    const id = this.nextDrainId++;
    return new Promise<void>((resolve) => {
      this.drains.set(id, resolve);
      this.feed({ kind: 'drain-request', id, instance, address, maxMs });
    });
  }

  // ---- the transport ----------------------------------------------------------------

  /** Serves one channel until it closes; resolves with whether it was welcomed, or the refusal that ends all. */
  private serve(channel: Channel, signal: AbortSignal): Promise<{ welcomed: boolean } | OrcaError> {
    const epoch = ++this.epoch;
    this.channel = channel;
    return new Promise((resolve) => {
      const onAbort = () => channel.close(1001, 'agent stopping');
      signal.addEventListener('abort', onAbort, { once: true });
      this.ended = (outcome) => {
        signal.removeEventListener('abort', onAbort);
        resolve(outcome);
      };
      channel.onClose((code, reason) => {
        if (epoch !== this.epoch) return;
        this.feed({ kind: 'closed', code, reason });
        this.channel = null;
      });
      channel.onMessage((text) => {
        if (epoch === this.epoch) this.feed({ kind: 'message', text });
      });
      this.feed({ kind: 'connected' });
    });
  }

  /** Feeds one input through the session logic and performs its output (in order, never re-entered). */
  private feed(input: AgentSessionInput): void {
    this.queue.push(input);
    if (this.stepping) return;
    this.stepping = true;
    try {
      for (let next = this.queue.shift(); next; next = this.queue.shift()) {
        const r = stepAgentSession(this.state, next, this.deps.clock.now());
        this.state = r.state;
        for (const msg of r.send) this.channel?.send(encode(msg));
        for (const e of r.effects) this.perform(e);
      }
    } finally {
      this.stepping = false;
    }
  }

  /** Feeds the answer of an effect unless its connection has ended meanwhile. */
  private answer(epoch: number, input: AgentSessionInput): void {
    if (epoch === this.epoch && this.channel) this.feed(input);
  }

  private perform(e: AgentSessionEffect): void {
    const epoch = this.epoch;
    switch (e.kind) {
      case 'timer.set': {
        const old = this.timers.get(e.timer);
        if (old) this.deps.clock.clearTimeout(old);
        this.timers.set(
          e.timer,
          this.deps.clock.setTimeout(() => {
            this.timers.delete(e.timer);
            this.feed({ kind: 'timer', timer: e.timer });
          }, e.ms),
        );
        return;
      }
      case 'timer.clear': {
        const t = this.timers.get(e.timer);
        if (t) this.deps.clock.clearTimeout(t);
        this.timers.delete(e.timer);
        return;
      }
      case 'close':
        this.channel?.close(e.code, e.reason);
        return;
      case 'log':
        this.deps.log[e.level](e.fields, e.msg);
        return;
      case 'inventory': {
        const purpose = e.for === 'observe' ? { for: e.for, id: e.id } : { for: e.for };
        this.deps.inventory().then(
          (inventory) => this.answer(epoch, { kind: 'inventory', ...purpose, ok: true, inventory }),
          (error: unknown) => this.answer(epoch, { kind: 'inventory', ...purpose, ok: false, error }),
        );
        return;
      }
      case 'assign':
        this.deps.onAssignments(e.slots, e.secrets).then(
          () => this.answer(epoch, { kind: 'assigned' }),
          (err: unknown) => this.deps.log.error({ err }, 'handling a server message failed'),
        );
        return;
      case 'containers':
        this.deps.containers(e.service).then(
          (containers) => this.answer(epoch, { kind: 'containers', id: e.id, service: e.service, ok: true, containers }),
          (error: unknown) => this.answer(epoch, { kind: 'containers', id: e.id, service: e.service, ok: false, error }),
        );
        return;
      case 'volumes': {
        const op = e.remove === undefined ? ('list' as const) : ('remove' as const);
        const unsupported = () => Promise.reject(new OrcaError('ORCA_INTERNAL', 'this agent does not handle volumes'));
        const work =
          e.remove === undefined
            ? (this.deps.volumes?.() ?? unsupported()).then((volumes) => ({ op: 'list' as const, ok: true as const, volumes }))
            : (this.deps.removeVolumes?.(e.remove) ?? unsupported()).then((r) => ({ op: 'remove' as const, ok: true as const, ...r }));
        work.then(
          (answer) => this.answer(epoch, { kind: 'volumes', id: e.id, answer }),
          (error: unknown) => this.answer(epoch, { kind: 'volumes', id: e.id, answer: { op, ok: false, error } }),
        );
        return;
      }
      case 'logs.start':
        void this.streamLogs(epoch, e);
        return;
      case 'logs.credit':
        this.logStreams.get(e.id)?.pump.grant(e.chars);
        return;
      case 'logs.stop':
        this.logStreams.get(e.id)?.abort.abort();
        return;
      case 'drain.done': {
        const done = this.drains.get(e.id);
        this.drains.delete(e.id);
        done?.();
        return;
      }
      case 'routes':
        this.deps.onRoutes?.(e.routes);
        return;
      case 'edge':
        this.deps.onEdge?.(e.edge);
        return;
      case 'welcomed':
        this.connectedOnce?.();
        this.connectedOnce = null;
        return;
      case 'ended':
        this.ended?.({ welcomed: e.welcomed });
        this.ended = null;
        return;
      case 'give-up':
        this.ended?.(new OrcaError(e.code, e.message));
        this.ended = null;
        return;
    }
  }

  /** Streams a container's log lines, flow-controlled by the server's credit (agent/log-pump.ts). */
  private async streamLogs(epoch: number, e: Extract<AgentSessionEffect, { kind: 'logs.start' }>): Promise<void> {
    const abort = new AbortController();
    const pump = new LogPump(e.window, abort.signal);
    this.logStreams.set(e.id, { abort, pump });
    try {
      const lines = this.deps.logs(e.containerId, { tail: e.tail, follow: e.follow, signal: abort.signal });
      await pump.run(lines, (batch) => this.answer(epoch, { kind: 'log-lines', id: e.id, lines: batch }));
      this.answer(epoch, { kind: 'log-end', id: e.id });
    } catch (err) {
      this.answer(epoch, { kind: 'log-end', id: e.id, ...(abort.signal.aborted ? {} : { error: errorMessage(err) }) });
    } finally {
      if (this.logStreams.get(e.id)?.abort === abort) this.logStreams.delete(e.id);
    }
  }
}
