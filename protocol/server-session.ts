/**
 * The server's half of a session with one node's agent, as a pure function:
 * `stepServerSession(state, input, now) → { state, send, effects }`. No I/O, no clock reads, no
 * timers: the driver (server/remote-node.ts) feeds what happened in — a session attached or
 * detached, the control plane's assignment set, a (decoded and checked) agent message, a
 * request of its own, a timer — sends `send` in order on the live channel, then performs
 * `effects` in order.
 *
 * Assignments: nothing is sent before the control plane has published a set (an agent handed
 * an empty full set would remove all it runs); a new session gets the full set, later changes
 * go as per-service deltas (an empty list removes a service), and an unchanged set sends
 * nothing. Reports: a set may come in parts (`more`); the last complete set stays until the
 * next is complete, and a set over LIMITS.reportsTotal is dropped. Requests (observe,
 * containers, volumes, volumes-remove) are answered by id or time out; a session that ends fails those in flight and
 * ends its log streams. Routes: an agent whose hello said it runs a proxy gets the cluster's
 * whole route table at the start of its session and whenever it changes (never a version 1 one).
 */

import type { SlotAssignment } from '../controllers/container/types.js';
import { forProtocol, LIMITS, PROTOCOL_VERSION, type AgentMessage, type Endpoint, type SecretValue, type ServerMessage } from './messages.js';
import type { InstanceReport } from './reports.js';
import { routeMessages, type RouteEntry } from './routes.js';
import { edgeMessage } from './edge.js';
import type { EdgeState } from '../proxy/tls.js';

export type ServerTimer = `rpc:${number}`;
export type ServerRequest = { type: 'observe' } | { type: 'containers'; service: string } | { type: 'volumes' } | { type: 'volumes-remove'; service: string };

export interface ServerSessionState {
  /** Whether a session is attached (messages can be sent). */
  attached: boolean;
  /** The protocol version of the attached session (its hello's): what is sent is cut to it. */
  protocol: number;
  /** False until the control plane has said what this node runs. */
  published: boolean;
  /** The node's assignment set, as the control plane last published it. */
  desired: SlotAssignment[];
  /** The values of the secret versions `desired` uses, as far as the control plane could read them. */
  secrets: SecretValue[];
  /** Whether this session has had its full set yet. */
  sentFull: boolean;
  /** Per service, the assignment list (JSON, and which secret versions went with it) this session was last sent. */
  sent: Record<string, string>;
  /** The node's last complete report set. */
  reports: InstanceReport[];
  /** Reports of a set that arrives in parts (`more`), until its last part. */
  partialReports: InstanceReport[] | null;
  /** The node's endpoints as it last reported them (unfiltered). */
  endpoints: Endpoint[];
  /** Requests in flight, by id. */
  pending: Record<number, ServerRequest['type']>;
  /** Parts of an `observed` answer that comes in parts, by request id. */
  observedParts: Record<number, InstanceReport[]>;
  /** Log streams open, by id. */
  logStreams: number[];
  /** The attached agent runs a proxy (its hello said so): it gets the route table. */
  proxy: boolean;
  /** The cluster's route table as last given (null before any); pushed whole to a proxy agent. */
  routes: RouteEntry[] | null;
  /** The table (JSON) this session was last sent; '' before any. */
  sentRoutes: string;
  /** The attached agent's proxy serves TLS too (hello.proxyTls): the edge messages carry keys. */
  proxyTls: boolean;
  /** Certificates and ACME challenges as last given (null before any; SPEC §3.12). */
  edge: EdgeState | null;
  /** The edge message (JSON) this session was last sent; '' before any. */
  sentEdge: string;
}

export type ServerSessionInput =
  /** A session began (after its hello): its reports and endpoints. */
  | { kind: 'attached'; reports: InstanceReport[]; endpoints: Endpoint[]; more?: boolean; protocol?: number; proxy?: boolean; proxyTls?: boolean }
  /** The session ended. */
  | { kind: 'detached' }
  /** The control plane's assignment set for this node. */
  | { kind: 'assignments'; slots: SlotAssignment[]; secrets?: SecretValue[] }
  /** The cluster's whole route table now (SPEC §3.11): sent to an agent with a proxy when it changed. */
  | { kind: 'routes'; routes: RouteEntry[] }
  /** The certificates and ACME challenges now (SPEC §3.12): sent to an agent with a proxy when they changed. */
  | { kind: 'edge'; edge: EdgeState }
  /** A message from the agent, already decoded and checked by the hub. */
  | { kind: 'message'; msg: AgentMessage }
  /** Ask the agent; `id` is the driver's, echoed in `reply` or `reply-timeout`. */
  | { kind: 'request'; id: number; request: ServerRequest; timeoutMs: number }
  /** Open a log stream with `window` characters of credit. */
  | { kind: 'logs-open'; id: number; containerId: string; follow: boolean; tail?: number; window: number }
  | { kind: 'logs-credit'; id: number; chars: number }
  | { kind: 'logs-cancel'; id: number }
  /** The reader of a log stream is gone. */
  | { kind: 'logs-closed'; id: number }
  | { kind: 'timer'; timer: ServerTimer };

export type ServerSessionEffect =
  | { kind: 'timer.set'; timer: ServerTimer; ms: number }
  | { kind: 'timer.clear'; timer: ServerTimer }
  | { kind: 'log'; level: 'info' | 'warn'; fields: Record<string, unknown>; msg: string }
  /** The answer to a request (whole, when it came in parts). */
  | { kind: 'reply'; id: number; msg: AgentMessage }
  | { kind: 'reply-timeout'; id: number }
  | { kind: 'log-lines'; id: number; lines: string[] }
  /** A log stream ended: `error` when the agent said it failed; `sessionEnded` when the session did. */
  | { kind: 'log-end'; id: number; error?: string; sessionEnded?: true };

export interface ServerSessionStep {
  state: ServerSessionState;
  /** Messages for the agent, in order, sent before the effects are performed. */
  send: ServerMessage[];
  effects: ServerSessionEffect[];
}

export function initialServerSession(): ServerSessionState {
  return { attached: false, protocol: PROTOCOL_VERSION, published: false, desired: [], secrets: [], sentFull: false, sent: {}, reports: [], partialReports: null, endpoints: [], pending: {}, observedParts: {}, logStreams: [], proxy: false, routes: null, sentRoutes: '', proxyTls: false, edge: null, sentEdge: '' };
}

/** One step of the server's session with a node. Pure: the state given is not changed. `now` is unused today (timers are relative). */
export function stepServerSession(state: ServerSessionState, input: ServerSessionInput, _now: number): ServerSessionStep {
  const s: ServerSessionState = { ...state };
  const send: ServerMessage[] = [];
  const effects: ServerSessionEffect[] = [];
  // Every message goes out as the session's protocol version has it (an older agent's decoder is strict).
  const out = (): ServerSessionStep => ({ state: s, send: send.flatMap((m) => forProtocol(m, s.protocol) ?? []), effects });

  switch (input.kind) {
    case 'attached':
      s.attached = true;
      s.protocol = input.protocol ?? PROTOCOL_VERSION;
      s.partialReports = null;
      takeReports(s, input.reports, input.more, effects);
      s.endpoints = input.endpoints;
      s.sent = {};
      s.sentFull = false;
      s.proxy = input.proxy === true;
      s.sentRoutes = '';
      s.proxyTls = input.proxyTls === true;
      s.sentEdge = '';
      // Never an empty full set by default: an agent would remove what it runs.
      if (s.published) sendAssignments(s, true, send);
      sendRoutes(s, send, effects);
      sendEdge(s, send, effects);
      return out();

    case 'detached':
      s.attached = false;
      s.partialReports = null;
      s.observedParts = {};
      for (const id of Object.keys(s.pending).map(Number)) {
        effects.push({ kind: 'timer.clear', timer: `rpc:${id}` }, { kind: 'reply', id, msg: { type: 'observed', id: -1, reports: [], error: 'session ended' } });
      }
      s.pending = {};
      for (const id of s.logStreams) effects.push({ kind: 'log-end', id, sessionEnded: true });
      s.logStreams = [];
      return out();

    case 'assignments':
      s.desired = input.slots;
      s.secrets = input.secrets ?? [];
      s.published = true;
      sendAssignments(s, !s.sentFull, send);
      return out();

    case 'routes':
      s.routes = input.routes;
      sendRoutes(s, send, effects);
      return out();

    case 'edge':
      s.edge = input.edge;
      sendEdge(s, send, effects);
      return out();

    case 'message':
      onMessage(s, input.msg, effects);
      return out();

    case 'request':
      if (!s.attached) {
        effects.push({ kind: 'reply', id: input.id, msg: { type: 'observed', id: -1, reports: [], error: 'session ended' } });
        return out();
      }
      if (forProtocol({ ...input.request, id: input.id }, s.protocol) === null) {
        // An agent of an older protocol has no such request: it has nothing of the kind (no volumes).
        effects.push({ kind: 'reply', id: input.id, msg: emptyAnswer(input.request, input.id) });
        return out();
      }
      s.pending = { ...s.pending, [input.id]: input.request.type };
      send.push({ ...input.request, id: input.id });
      effects.push({ kind: 'timer.set', timer: `rpc:${input.id}`, ms: input.timeoutMs });
      return out();

    case 'timer': {
      const id = Number(input.timer.slice('rpc:'.length));
      if (!(id in s.pending)) return out();
      s.pending = without(s.pending, id);
      effects.push({ kind: 'reply-timeout', id });
      return out();
    }

    case 'logs-open':
      if (!s.attached) {
        effects.push({ kind: 'log-end', id: input.id, sessionEnded: true });
        return out();
      }
      s.logStreams = [...s.logStreams, input.id];
      send.push({ type: 'logs', id: input.id, containerId: input.containerId, follow: input.follow, window: input.window, ...(input.tail !== undefined ? { tail: input.tail } : {}) });
      return out();

    case 'logs-credit':
      if (s.attached) send.push({ type: 'logs-credit', id: input.id, chars: input.chars });
      return out();

    case 'logs-cancel':
      if (s.attached) send.push({ type: 'logs-cancel', id: input.id });
      return out();

    case 'logs-closed':
      s.logStreams = s.logStreams.filter((id) => id !== input.id);
      return out();
  }
}

function onMessage(s: ServerSessionState, msg: AgentMessage, effects: ServerSessionEffect[]): void {
  switch (msg.type) {
    case 'observed': {
      if (!(msg.id in s.pending)) {
        if (!msg.more) s.observedParts = without(s.observedParts, msg.id);
        return;
      }
      const parts = (s.observedParts[msg.id] ?? []).concat(msg.reports);
      if (msg.more) {
        s.observedParts = { ...s.observedParts };
        if (parts.length > LIMITS.reportsTotal) {
          delete s.observedParts[msg.id];
          effects.push({ kind: 'log', level: 'warn', fields: { reports: parts.length }, msg: 'observed reply over the report limit; ignored' });
        } else s.observedParts[msg.id] = parts;
        return;
      }
      const whole = s.observedParts[msg.id] ? { ...msg, reports: parts } : msg;
      s.observedParts = without(s.observedParts, msg.id);
      const kind = s.pending[msg.id];
      s.pending = without(s.pending, msg.id);
      // An observe's answer is the node's report set now (a containers request answered with one is not).
      if (kind === 'observe' && !whole.error) {
        s.reports = whole.reports;
        if (whole.endpoints) s.endpoints = whole.endpoints;
      }
      effects.push({ kind: 'timer.clear', timer: `rpc:${msg.id}` }, { kind: 'reply', id: msg.id, msg: whole });
      return;
    }
    case 'containers-result':
    case 'volumes-result':
    case 'volumes-removed':
      if (!(msg.id in s.pending)) return;
      s.pending = without(s.pending, msg.id);
      effects.push({ kind: 'timer.clear', timer: `rpc:${msg.id}` }, { kind: 'reply', id: msg.id, msg });
      return;
    case 'logs-data':
      if (s.logStreams.includes(msg.id)) effects.push({ kind: 'log-lines', id: msg.id, lines: msg.lines });
      return;
    case 'logs-end':
      if (!s.logStreams.includes(msg.id)) return;
      s.logStreams = s.logStreams.filter((id) => id !== msg.id);
      effects.push({ kind: 'log-end', id: msg.id, ...(msg.error ? { error: msg.error } : {}) });
      return;
    case 'state':
      takeReports(s, msg.reports, msg.more, effects);
      s.endpoints = msg.endpoints;
      return;
    case 'endpoints':
      s.endpoints = msg.endpoints;
      return;
    default:
      return;
  }
}

/** Reports replace the last set once complete (a set may come in parts). */
function takeReports(s: ServerSessionState, reports: InstanceReport[], more: boolean | undefined, effects: ServerSessionEffect[]): void {
  const all = s.partialReports ? s.partialReports.concat(reports) : reports;
  if (!more) {
    s.partialReports = null;
    s.reports = all;
    return;
  }
  if (all.length > LIMITS.reportsTotal) {
    effects.push({ kind: 'log', level: 'warn', fields: { reports: all.length }, msg: 'report set over the limit; the last complete one is kept' });
    s.partialReports = null;
    return;
  }
  s.partialReports = all;
}

/** What an agent that has no such request would answer: none of it. */
function emptyAnswer(r: ServerRequest, id: number): AgentMessage {
  switch (r.type) {
    case 'volumes':
      return { type: 'volumes-result', id, volumes: [] };
    case 'volumes-remove':
      return { type: 'volumes-removed', id, removed: [], failed: [] };
    case 'containers':
      return { type: 'containers-result', id, containers: [] };
    case 'observe':
      return { type: 'observed', id, reports: [] };
  }
}

/** The route table to an attached agent with a proxy, when it differs from what it was last sent (in parts when large). */
function sendRoutes(s: ServerSessionState, send: ServerMessage[], effects: ServerSessionEffect[]): void {
  if (!s.attached || !s.proxy || s.routes === null) return;
  const text = JSON.stringify(s.routes);
  if (text === s.sentRoutes) return;
  s.sentRoutes = text;
  const { messages, cut } = routeMessages(s.routes);
  if (cut > 0) effects.push({ kind: 'log', level: 'warn', fields: { backendsLeftOut: cut }, msg: 'route table over the limit for an agent; the backends past it are left out' });
  send.push(...messages);
}

/** Certificates (with keys only to a TLS proxy) and challenges to an attached agent with a proxy, when they differ from what it was last sent. */
function sendEdge(s: ServerSessionState, send: ServerMessage[], effects: ServerSessionEffect[]): void {
  if (!s.attached || !s.proxy || s.edge === null) return;
  const { message, left } = edgeMessage(s.edge, s.proxyTls);
  const text = JSON.stringify(message);
  if (text === s.sentEdge) return;
  s.sentEdge = text;
  if (left > 0) effects.push({ kind: 'log', level: 'warn', fields: { certificatesLeftOut: left }, msg: 'certificates over the message limit for an agent; those past it are left out' });
  send.push(message);
}

function sendAssignments(s: ServerSessionState, full: boolean, send: ServerMessage[]): void {
  if (!s.attached) return;
  const byService = new Map<string, SlotAssignment[]>();
  for (const a of s.desired) {
    const l = byService.get(a.service) ?? [];
    l.push(a);
    byService.set(a.service, l);
  }
  // A service's entry changes when its slots do or when a value it lacked can now be read.
  const textOf = (list: SlotAssignment[]) => JSON.stringify([list, secretsOf(list, s.secrets).map((v) => `${v.name}@${v.version}`)]);
  if (full) {
    s.sentFull = true;
    s.sent = Object.fromEntries([...byService].map(([svc, l]) => [svc, textOf(l)]));
    const secrets = secretsOf(s.desired, s.secrets);
    send.push({ type: 'assignments', full: true, slots: s.desired, ...(secrets.length > 0 ? { secrets } : {}) });
    return;
  }
  const sent = { ...s.sent };
  const changed: Record<string, SlotAssignment[]> = {};
  for (const [svc, list] of byService) {
    const text = textOf(list);
    if (sent[svc] !== text) {
      changed[svc] = list;
      sent[svc] = text;
    }
  }
  for (const svc of Object.keys(sent)) {
    if (!byService.has(svc)) {
      changed[svc] = [];
      delete sent[svc];
    }
  }
  s.sent = sent;
  if (Object.keys(changed).length === 0) return;
  const secrets = secretsOf(Object.values(changed).flat(), s.secrets);
  send.push({ type: 'assignments', full: false, services: changed, ...(secrets.length > 0 ? { secrets } : {}) });
}

/**
 * The values among `values` of the secret versions these slots use, each once: what goes to a
 * node with them, and nothing else (an agent never gets a secret its instances do not use).
 */
export function secretsOf(slots: readonly SlotAssignment[], values: readonly SecretValue[]): SecretValue[] {
  const wanted = new Set<string>();
  for (const a of slots) for (const [name, version] of Object.entries(a.secretVersions ?? {})) wanted.add(`${name}@${version}`);
  const out = new Map<string, SecretValue>();
  for (const v of values) {
    const k = `${v.name}@${v.version}`;
    if (wanted.has(k) && !out.has(k)) out.set(k, v);
  }
  return [...out.values()];
}

function without<T>(record: Record<number, T>, id: number): Record<number, T> {
  const copy = { ...record };
  delete copy[id];
  return copy;
}
