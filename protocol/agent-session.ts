/**
 * The agent's half of a session with the server, as a pure function:
 * `stepAgentSession(state, input, now) → { state, send, effects }`. No I/O, no clock reads, no
 * timers: the driver (agent/session.ts) dials, feeds what happened in (a channel opened or
 * closed, a message arrived, a timer fired, the node changed, an answer to an effect came back),
 * sends `send` in order on the current channel, then performs `effects` in order.
 *
 *   idle ──connected──▶ connected ──welcome──▶ welcomed
 *     ▲                    │                      │
 *     └───────closed───────┴───────closed─────────┘
 *
 * connected: the hello goes once the node's inventory is read (an `inventory` effect and its
 * answer); a deadline runs from the first moment. welcomed: heartbeats every interval, events
 * go at once, endpoints are pushed when they change and a state report follows (coalesced).
 * Any word from the server re-arms the deadline; silence past it closes the channel (4408): no
 * half-open sessions. A close before the welcome with 4403 and a refusal that retrying cannot
 * fix (ORCA_CONFLICT: another cluster id, ORCA_PROTOCOL, ORCA_FORBIDDEN: a credential of another
 * node) gives up, and so does a close 4401 at any time (the node's credential was revoked);
 * anything else, a 4409 (the
 * node name is held by a live session) included, dials again after the driver's backoff.
 */

import { errorMessage } from '../core/errors.js';
import type { SlotAssignment } from '../controllers/container/types.js';
import type { ObservedContainer } from '../runtime/types.js';
import type { EventRecord } from '../store/types.js';
import { decodeServerMessage, LIMITS, PROTOCOL_VERSION, type AgentMessage, type Endpoint, type SecretValue, type ServerMessage, type VolumeRecord } from './messages.js';
import type { InstanceReport } from './reports.js';
import { jsonBytes, splitByBytes } from './split.js';
import { takeRoutesPart, type RouteEntry, type RoutesInProgress } from './routes.js';
import type { EdgeState } from '../proxy/tls.js';

/** Who the agent says it is in its hello. */
export interface SessionIdentity {
  node: string;
  cluster: string;
  advertise: string;
  labels: Record<string, string>;
  capacity: { memoryBytes?: number };
  /** Directories the node allows host mounts under (`--allow-host-path`); sent when there are any. */
  allowHostPaths?: string[];
  /** The node runs a proxy (`--proxy-listen`): the hello asks for the route table. */
  proxy?: boolean;
  /** Its proxy serves TLS too (`--proxy-listen-tls`): the hello asks for the certificates (SPEC §3.12). */
  proxyTls?: boolean;
}

/** What the node answers to the server's `volumes` and `volumes-remove` requests. */
export type VolumesAnswer =
  | { op: 'list'; ok: true; volumes: VolumeRecord[] }
  | { op: 'remove'; ok: true; removed: string[]; failed: Array<{ name: string; error: string }> }
  | { op: 'list' | 'remove'; ok: false; error: unknown };

/** Heartbeat timing until the server's welcome sets its own. */
export const DEFAULT_SESSION_HEARTBEAT = { intervalMs: 5000, timeoutMs: 15000 } as const;
/** Events kept while cut off, oldest dropped first. */
export const DEFAULT_MAX_BUFFERED_EVENTS = 5000;
/** A drain the server never answers ends this long after its own bound. */
export const DRAIN_GRACE_MS = 1000;

/**
 * Refusals (close 4403 before the welcome) that retrying cannot fix: a cluster id or protocol
 * mismatch. A node name held by a live session (close 4409, also ORCA_CONFLICT) is not one of
 * them: that agent waits.
 */
const FATAL_REFUSALS = new Set(['ORCA_CONFLICT', 'ORCA_PROTOCOL', 'ORCA_FORBIDDEN']);
/**
 * The close code of a session whose credential the server no longer accepts (revoked by
 * `orca nodes rm`): at any time, welcomed or not, the agent stops dialling.
 */
export const CLOSE_REVOKED = 4401;

export type SessionTimer = 'heartbeat' | 'deadline' | 'state' | `drain:${number}`;
export type InventoryPurpose = { for: 'hello' } | { for: 'state' } | { for: 'observe'; id: number };
export type Inventory = { reports: InstanceReport[]; endpoints: Endpoint[] };

export interface AgentSessionState {
  readonly identity: SessionIdentity;
  readonly maxBufferedEvents: number;
  phase: 'idle' | 'connected' | 'welcomed';
  heartbeat: { intervalMs: number; timeoutMs: number };
  /** The next heartbeat's sequence number (never reset: it counts across sessions). */
  seq: number;
  /** When the server was last heard from (ms on the driver's clock). */
  lastHeardAt: number;
  /** Events recorded while not welcomed, sent after the next welcome. */
  pendingEvents: EventRecord[];
  /** Report parts of the hello that did not fit in it, sent right after the welcome. */
  helloRest: InstanceReport[][];
  /** The node's endpoints as last pushed (`changed`) or read (inventory). */
  endpoints: Endpoint[];
  /** The endpoints last sent in this session (JSON), to send only changes; '' before any. */
  sentEndpoints: string;
  /** A state report is due (its timer is set). */
  statePending: boolean;
  /**
   * A state report's inventory is being read: one at a time (each lists and inspects every
   * container of the node); changes meanwhile make one more report once it is sent.
   */
  stateReading: boolean;
  /** The node changed while a state report's inventory was being read. */
  stateAgain: boolean;
  /** The server's assignment set for this node, as full and delta messages built it. */
  assignments: SlotAssignment[];
  /** Drains asked of the server and not yet answered. */
  drains: number[];
  /** Log streams running for the server. */
  logStreams: number[];
  /** The server's `error` message of this connection, if any (read at the close). */
  refusal: { code: string; message: string } | null;
  /** Parts of a route table that comes in parts, until its last part (null: none under way). */
  partialRoutes: RoutesInProgress | null;
}

export type AgentSessionInput =
  /** A channel to the server opened. */
  | { kind: 'connected' }
  /** Text from the server (hostile until decoded here). */
  | { kind: 'message'; text: string }
  /** The channel closed (either side). */
  | { kind: 'closed'; code: number; reason: string }
  | { kind: 'timer'; timer: SessionTimer }
  /** The node's instances changed; these are its endpoints now. */
  | { kind: 'changed'; endpoints: Endpoint[] }
  /** A reconciliation log line. */
  | { kind: 'event'; record: EventRecord }
  /** The agent wants an instance drained; `id` is the driver's, echoed in `drain.done`. */
  | { kind: 'drain-request'; id: number; instance: string; address: string; maxMs: number }
  /** The answer to an `inventory` effect. */
  | ({ kind: 'inventory' } & InventoryPurpose & ({ ok: true; inventory: Inventory } | { ok: false; error: unknown }))
  /** An `assign` effect was applied. */
  | { kind: 'assigned' }
  /** The answer to a `containers` effect. */
  | ({ kind: 'containers'; id: number; service: string } & ({ ok: true; containers: ObservedContainer[] } | { ok: false; error: unknown }))
  /** The answer to a `volumes` effect. */
  | { kind: 'volumes'; id: number; answer: VolumesAnswer }
  /** A batch of a log stream's lines (within its credit). */
  | { kind: 'log-lines'; id: number; lines: string[] }
  /** A log stream ended; `error` when it failed (not when it was stopped). */
  | { kind: 'log-end'; id: number; error?: string };

export type AgentSessionEffect =
  /** Sets (or resets) the named timer; when it fires, feed `{ kind: 'timer', timer }`. */
  | { kind: 'timer.set'; timer: SessionTimer; ms: number }
  | { kind: 'timer.clear'; timer: SessionTimer }
  | { kind: 'close'; code: number; reason: string }
  | { kind: 'log'; level: 'info' | 'warn' | 'error'; fields: Record<string, unknown>; msg: string }
  /** Read the node's reports and endpoints; feed the answer back as an `inventory` input. */
  | ({ kind: 'inventory' } & InventoryPurpose)
  /**
   * Apply this assignment set (the whole of it); feed `assigned` when done. `secrets`: the
   * secret values that came with this message (the agent keeps those its slots use).
   */
  | { kind: 'assign'; slots: SlotAssignment[]; secrets: SecretValue[] }
  /** List the node's containers of a service; feed the answer back as a `containers` input. */
  | { kind: 'containers'; id: number; service: string }
  /** List the node's volumes (no `remove`), or remove a service's; feed the answer back as a `volumes` input. */
  | { kind: 'volumes'; id: number; remove?: string }
  /** Stream a container's output as `log-lines` inputs, within `window` characters of credit, then `log-end`. */
  | { kind: 'logs.start'; id: number; containerId: string; tail?: number; follow: boolean; window?: number }
  | { kind: 'logs.credit'; id: number; chars: number }
  | { kind: 'logs.stop'; id: number }
  /** A drain the agent asked for is over (answered, timed out, or the session ended). */
  | { kind: 'drain.done'; id: number }
  /** The server welcomed this session. */
  | { kind: 'welcomed' }
  /** The cluster's whole route table, as the server pushed it (SPEC §3.11): serve it. */
  | { kind: 'routes'; routes: RouteEntry[] }
  /** The certificates and ACME challenges, as the server pushed them (SPEC §3.12): serve them. */
  | { kind: 'edge'; edge: EdgeState }
  /** The connection is over: dial again (the backoff starts afresh when it was welcomed). */
  | { kind: 'ended'; welcomed: boolean }
  /** Retrying cannot help: stop dialling. */
  | { kind: 'give-up'; code: 'ORCA_CONFLICT' | 'ORCA_USAGE' | 'ORCA_UNAUTHORIZED'; message: string };

export interface AgentSessionStep {
  state: AgentSessionState;
  /** Messages for the server, in order, sent before the effects are performed. */
  send: AgentMessage[];
  effects: AgentSessionEffect[];
}

export function initialAgentSession(identity: SessionIdentity, maxBufferedEvents = DEFAULT_MAX_BUFFERED_EVENTS): AgentSessionState {
  return {
    identity,
    maxBufferedEvents,
    phase: 'idle',
    heartbeat: { ...DEFAULT_SESSION_HEARTBEAT },
    seq: 0,
    lastHeardAt: 0,
    pendingEvents: [],
    helloRest: [],
    endpoints: [],
    sentEndpoints: '',
    statePending: false,
    stateReading: false,
    stateAgain: false,
    assignments: [],
    drains: [],
    logStreams: [],
    refusal: null,
    partialRoutes: null,
  };
}

/** One step of the agent's session. Pure: the state given is not changed. */
export function stepAgentSession(state: AgentSessionState, input: AgentSessionInput, now: number): AgentSessionStep {
  const s: AgentSessionState = { ...state };
  const send: AgentMessage[] = [];
  const effects: AgentSessionEffect[] = [];
  const out = (): AgentSessionStep => ({ state: s, send, effects });
  const log = (level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, msg: string) => effects.push({ kind: 'log', level, fields, msg });

  switch (input.kind) {
    case 'connected':
      s.phase = 'connected';
      s.refusal = null;
      s.heartbeat = { ...DEFAULT_SESSION_HEARTBEAT };
      s.lastHeardAt = now;
      s.helloRest = [];
      s.sentEndpoints = '';
      s.partialRoutes = null;
      effects.push({ kind: 'inventory', for: 'hello' }, { kind: 'timer.set', timer: 'deadline', ms: s.heartbeat.timeoutMs });
      return out();

    case 'message': {
      if (s.phase === 'idle') return out();
      s.lastHeardAt = now;
      effects.push({ kind: 'timer.set', timer: 'deadline', ms: s.heartbeat.timeoutMs });
      const d = decodeServerMessage(input.text);
      if (!d.ok) {
        log('warn', { error: d.error }, 'bad message from the server; closing the session');
        effects.push({ kind: 'close', code: 4400, reason: d.error.slice(0, 120) });
        return out();
      }
      onMessage(s, d.msg, send, effects, log);
      return out();
    }

    case 'closed': {
      const welcomed = s.phase === 'welcomed';
      s.phase = 'idle';
      s.helloRest = [];
      s.sentEndpoints = '';
      s.statePending = false;
      s.stateReading = false;
      s.stateAgain = false;
      s.partialRoutes = null;
      for (const timer of ['heartbeat', 'deadline', 'state'] as const) effects.push({ kind: 'timer.clear', timer });
      for (const id of s.drains) effects.push({ kind: 'timer.clear', timer: `drain:${id}` }, { kind: 'drain.done', id });
      for (const id of s.logStreams) effects.push({ kind: 'logs.stop', id });
      s.drains = [];
      s.logStreams = [];
      if (welcomed) log('warn', { code: input.code, reason: input.reason }, 'session with the server ended');
      else if (input.code === 4409) {
        // Another agent holds this node name: never evict it, never run its slots; wait and retry.
        const node = s.identity.node;
        const from = /from (.*)$/.exec(input.reason)?.[1] ?? 'another agent';
        log('warn', { code: input.code, node, remote: from }, `node name ${node} already has a live session from ${from}; waiting`);
      }
      const refusal = s.refusal;
      if (input.code === CLOSE_REVOKED) {
        const why = refusal?.message ?? (input.reason || 'the server no longer accepts this node\'s credential');
        effects.push({ kind: 'give-up', code: 'ORCA_UNAUTHORIZED', message: `${why}: this agent needs a new join token (orca token create on the server, then orca agent --token-file)` });
      } else if (!welcomed && input.code === 4403 && refusal && FATAL_REFUSALS.has(refusal.code)) {
        effects.push({ kind: 'give-up', code: refusal.code === 'ORCA_CONFLICT' ? 'ORCA_CONFLICT' : 'ORCA_USAGE', message: `the server refused this agent: ${refusal.message}` });
      } else effects.push({ kind: 'ended', welcomed });
      return out();
    }

    case 'timer':
      onTimer(s, input.timer, now, send, effects, log);
      return out();

    case 'changed':
      s.endpoints = input.endpoints;
      sync(s, send, effects);
      return out();

    case 'assigned':
      sync(s, send, effects);
      return out();

    case 'event':
      if (s.phase === 'welcomed') send.push({ type: 'event', records: [input.record] });
      else {
        const kept = [...s.pendingEvents, input.record];
        s.pendingEvents = kept.length > s.maxBufferedEvents ? kept.slice(kept.length - s.maxBufferedEvents) : kept;
      }
      return out();

    case 'drain-request':
      if (s.phase !== 'welcomed') {
        effects.push({ kind: 'drain.done', id: input.id });
        return out();
      }
      s.drains = [...s.drains, input.id];
      send.push({ type: 'drain', id: input.id, instance: input.instance, address: input.address, maxMs: input.maxMs });
      effects.push({ kind: 'timer.set', timer: `drain:${input.id}`, ms: input.maxMs + DRAIN_GRACE_MS });
      return out();

    case 'inventory':
      onInventory(s, input, send, effects, log);
      return out();

    case 'containers': {
      if (s.phase === 'idle') return out();
      if (!input.ok) {
        send.push({ type: 'containers-result', id: input.id, containers: [], error: errorMessage(input.error) });
        return out();
      }
      const all = input.containers;
      const containers = splitByBytes(all, LIMITS.agentMessageBudget, LIMITS.containers)[0] ?? [];
      if (containers.length < all.length) log('warn', { service: input.service, containers: all.length, sent: containers.length }, 'container list cut to fit one message');
      send.push({ type: 'containers-result', id: input.id, containers });
      return out();
    }

    case 'volumes': {
      if (s.phase === 'idle') return out();
      const a = input.answer;
      if (!a.ok) {
        const error = errorMessage(a.error).slice(0, LIMITS.text);
        send.push(a.op === 'list' ? { type: 'volumes-result', id: input.id, volumes: [], error } : { type: 'volumes-removed', id: input.id, removed: [], failed: [], error });
      } else if (a.op === 'list') {
        send.push({ type: 'volumes-result', id: input.id, volumes: a.volumes.slice(0, LIMITS.volumes) });
      } else {
        send.push({ type: 'volumes-removed', id: input.id, removed: a.removed.slice(0, LIMITS.volumes), failed: a.failed.slice(0, LIMITS.volumes).map((f) => ({ name: f.name, error: f.error.slice(0, LIMITS.text) })) });
      }
      return out();
    }

    case 'log-lines':
      if (s.phase !== 'idle') send.push({ type: 'logs-data', id: input.id, lines: input.lines });
      return out();

    case 'log-end':
      s.logStreams = s.logStreams.filter((id) => id !== input.id);
      if (s.phase !== 'idle') send.push({ type: 'logs-end', id: input.id, ...(input.error !== undefined ? { error: input.error } : {}) });
      return out();
  }
}

type Log = (level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, msg: string) => void;

function onMessage(s: AgentSessionState, msg: ServerMessage, send: AgentMessage[], effects: AgentSessionEffect[], log: Log): void {
  switch (msg.type) {
    case 'welcome': {
      s.phase = 'welcomed';
      s.heartbeat = { intervalMs: msg.heartbeatIntervalMs, timeoutMs: msg.heartbeatTimeoutMs };
      log('info', { heartbeatIntervalMs: msg.heartbeatIntervalMs }, 'session with the server established');
      effects.push({ kind: 'timer.set', timer: 'heartbeat', ms: s.heartbeat.intervalMs }, { kind: 'timer.set', timer: 'deadline', ms: s.heartbeat.timeoutMs });
      const rest = s.helloRest;
      s.helloRest = [];
      rest.forEach((part, i) => send.push({ type: 'state', reports: part, endpoints: s.endpoints, ...(i < rest.length - 1 ? { more: true } : {}) }));
      if (s.pendingEvents.length) {
        for (const part of splitByBytes(s.pendingEvents, LIMITS.agentMessageBudget, LIMITS.events)) if (part.length) send.push({ type: 'event', records: part });
        s.pendingEvents = [];
      }
      effects.push({ kind: 'welcomed' });
      return;
    }
    case 'assignments': {
      if (msg.full) s.assignments = msg.slots ?? [];
      else {
        const changed = msg.services ?? {};
        s.assignments = [...s.assignments.filter((a) => !(a.service in changed)), ...Object.values(changed).flat()];
      }
      effects.push({ kind: 'assign', slots: s.assignments, secrets: msg.secrets ?? [] });
      return;
    }
    case 'heartbeat-ack':
      return;
    case 'drained':
      if (!s.drains.includes(msg.id)) return;
      s.drains = s.drains.filter((id) => id !== msg.id);
      effects.push({ kind: 'timer.clear', timer: `drain:${msg.id}` }, { kind: 'drain.done', id: msg.id });
      return;
    case 'containers':
      effects.push({ kind: 'containers', id: msg.id, service: msg.service });
      return;
    case 'observe':
      effects.push({ kind: 'inventory', for: 'observe', id: msg.id });
      return;
    case 'volumes':
      effects.push({ kind: 'volumes', id: msg.id });
      return;
    case 'volumes-remove':
      effects.push({ kind: 'volumes', id: msg.id, remove: msg.service });
      return;
    case 'logs':
      s.logStreams = [...s.logStreams, msg.id];
      effects.push({
        kind: 'logs.start',
        id: msg.id,
        containerId: msg.containerId,
        follow: msg.follow,
        ...(msg.tail !== undefined ? { tail: msg.tail } : {}),
        ...(msg.window !== undefined ? { window: msg.window } : {}),
      });
      return;
    case 'logs-credit':
      effects.push({ kind: 'logs.credit', id: msg.id, chars: msg.chars });
      return;
    case 'logs-cancel':
      effects.push({ kind: 'logs.stop', id: msg.id });
      return;
    case 'routes': {
      const r = takeRoutesPart(s.partialRoutes, msg);
      s.partialRoutes = r.partial;
      if (r.dropped) log('warn', { reason: r.dropped }, 'route table from the server dropped; the last one is kept');
      if (r.table) effects.push({ kind: 'routes', routes: r.table });
      return;
    }
    case 'edge':
      effects.push({ kind: 'edge', edge: { certs: msg.certs, challenges: msg.challenges } });
      return;
    case 'error':
      s.refusal = { code: msg.code, message: msg.message };
      log('error', { code: msg.code, message: msg.message }, 'the server refused the session');
      return;
  }
}

function onTimer(s: AgentSessionState, timer: SessionTimer, now: number, send: AgentMessage[], effects: AgentSessionEffect[], log: Log): void {
  if (s.phase === 'idle') return;
  if (timer === 'heartbeat') {
    if (s.phase !== 'welcomed') return;
    send.push({ type: 'heartbeat', seq: s.seq++ });
    effects.push({ kind: 'timer.set', timer: 'heartbeat', ms: s.heartbeat.intervalMs });
  } else if (timer === 'deadline') {
    // No word from the server for the deadline: the session is dead, whatever TCP thinks.
    log('warn', { timeoutMs: s.heartbeat.timeoutMs, silentMs: now - s.lastHeardAt }, 'no word from the server; ending the session');
    effects.push({ kind: 'close', code: 4408, reason: 'heartbeat deadline' });
  } else if (timer === 'state') {
    s.statePending = false;
    if (s.phase !== 'welcomed') return;
    s.stateReading = true;
    effects.push({ kind: 'inventory', for: 'state' });
  } else {
    const id = Number(timer.slice('drain:'.length));
    if (!s.drains.includes(id)) return;
    s.drains = s.drains.filter((d) => d !== id);
    effects.push({ kind: 'drain.done', id });
  }
}

/** The node changed: its endpoints go at once when they differ from the last sent, a state report soon (coalesced). */
function sync(s: AgentSessionState, send: AgentMessage[], effects: AgentSessionEffect[]): void {
  if (s.phase !== 'welcomed') return;
  // Endpoints come from memory and go at once: a dead instance must leave the routes within
  // milliseconds, not after a Docker listing (inspecting a dying container can take 400 ms).
  const endpoints = JSON.stringify(s.endpoints);
  if (endpoints !== s.sentEndpoints) {
    s.sentEndpoints = endpoints;
    send.push({ type: 'endpoints', endpoints: s.endpoints });
  }
  if (s.statePending) return;
  if (s.stateReading) {
    s.stateAgain = true;
    return;
  }
  s.statePending = true;
  effects.push({ kind: 'timer.set', timer: 'state', ms: 0 });
}

function onInventory(s: AgentSessionState, input: Extract<AgentSessionInput, { kind: 'inventory' }>, send: AgentMessage[], effects: AgentSessionEffect[], log: Log): void {
  if (input.ok) s.endpoints = input.inventory.endpoints;
  const reports = input.ok ? input.inventory.reports : [];
  const endpoints = s.endpoints;
  switch (input.for) {
    case 'hello': {
      if (s.phase !== 'connected') return;
      const id = s.identity;
      const [first = [], ...rest] = reportParts(reports, endpoints);
      s.helloRest = rest;
      send.push({
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
        ...(id.allowHostPaths && id.allowHostPaths.length > 0 ? { allowHostPaths: id.allowHostPaths } : {}),
        ...(id.proxy ? { proxy: true } : {}),
        ...(id.proxyTls ? { proxyTls: true } : {}),
      });
      return;
    }
    case 'state': {
      if (s.phase !== 'welcomed') return;
      if (!input.ok) log('warn', { err: input.error }, 'cannot observe the runtime for a state report');
      s.sentEndpoints = JSON.stringify(endpoints);
      const parts = reportParts(reports, endpoints);
      parts.forEach((part, i) => send.push({ type: 'state', reports: part, endpoints, ...(i < parts.length - 1 ? { more: true } : {}) }));
      s.stateReading = false;
      if (s.stateAgain) {
        // What changed while this inventory was read may be missing from it: one more report.
        s.stateAgain = false;
        s.statePending = true;
        effects.push({ kind: 'timer.set', timer: 'state', ms: 0 });
      }
      return;
    }
    case 'observe': {
      if (s.phase === 'idle') return;
      if (!input.ok) {
        send.push({ type: 'observed', id: input.id, reports: [], error: errorMessage(input.error) });
        return;
      }
      const parts = reportParts(reports, endpoints);
      parts.forEach((part, i) =>
        send.push(i < parts.length - 1 ? { type: 'observed', id: input.id, reports: part, more: true } : { type: 'observed', id: input.id, reports: part, endpoints }),
      );
      return;
    }
  }
}

/** A report set cut into parts that fit one message each, next to the endpoints (sent whole in every part). */
function reportParts(reports: InstanceReport[], endpoints: Endpoint[]): InstanceReport[][] {
  const room = Math.max(LIMITS.agentMessageBudget / 4, LIMITS.agentMessageBudget - jsonBytes(endpoints));
  return splitByBytes(reports, room, LIMITS.reports);
}
