/**
 * The agent ⇄ server protocol (version 2): one module, every message validated on receipt.
 *
 * Flow: the agent connects (bearer token), sends `hello` with its full inventory; the server
 * answers `welcome` (it sets the heartbeat period) then `assignments` with the full set, and
 * later deltas per service. The agent pushes `state` (instances and ready endpoints) on every
 * change and `event` lines of its reconciliation log; it sends `heartbeat` every period and
 * the server acks. Either side ends a session that stays silent past the deadline.
 * Request/response pairs carry an `id`: drain (agent asks); observe, logs, containers, volumes
 * and volumes-remove (server asks: status reads the node's instances from Docker through its
 * agent, not a cache; volumes live on the node).
 */
import { z } from 'zod';

/** Most lines and characters in one logs-data message. */
export const LOG_BATCH_LINES = 200;
export const LOG_BATCH_CHARS = 64 * 1024;
import { MAX_LINE_CHARS } from '../runtime/streams.js';
import type { InstanceReport } from './reports.js';
import type { EventRecord } from '../store/types.js';
import type { ObservedContainer } from '../runtime/types.js';
import type { SlotAssignment } from '../controllers/container/types.js';
import { routesMessageSchema, type RoutesMessage } from './routes.js';
import { edgeMessageSchema, type EdgeMessage } from './edge.js';

/**
 * The version this build speaks. Version 2 added, over version 1: named volumes and host mounts
 * (`volumes`/`volumes-remove` and their answers, `hello.allowHostPaths`), secrets (an
 * assignment's `secretVersions`, the assignments message's `secrets`) and the cluster network
 * kept by the agent, and the route table pushed to agents that run a proxy (`routes`,
 * `hello.proxy`), with the certificates and ACME challenges of HTTPS at the edge (`edge`,
 * `hello.proxyTls`).
 */
export const PROTOCOL_VERSION = 2;
/**
 * The oldest version a server still accepts (one release back), so a cluster is upgraded server
 * first, then agent by agent, with no workload restarted. A session with an older agent speaks
 * its version: the server sends it only what that version knows (see forProtocol) and places on
 * its node no service that needs more (see PROTOCOL_FEATURES).
 */
export const OLDEST_PROTOCOL_VERSION = 1;

/** Whether a server of this build holds a session with an agent speaking `v`. */
export function protocolSupported(v: number): boolean {
  return Number.isInteger(v) && v >= OLDEST_PROTOCOL_VERSION && v <= PROTOCOL_VERSION;
}

/** The protocol version a node's agent needs for a service's features (what it must run). */
export const PROTOCOL_FEATURES = { volumes: 2, mounts: 2, secrets: 2 } as const;

/**
 * A server message as a session of version `v` may receive it, or null when that version has no
 * such message. Version 1: no `secrets` in assignments nor `secretVersions` in a slot (its
 * decoder is strict about the first; the second is never needed, as a service with secrets is not
 * placed on its node), no volume requests, no route table.
 */
export function forProtocol(msg: ServerMessage, v: number): ServerMessage | null {
  if (v >= 2) return msg;
  switch (msg.type) {
    case 'volumes':
    case 'volumes-remove':
    case 'routes':
    case 'edge':
      return null;
    case 'assignments': {
      const strip = (l: SlotAssignment[]) => l.map(({ secretVersions: _drop, ...a }) => a);
      const { secrets: _secrets, ...rest } = msg;
      return {
        ...rest,
        ...(rest.slots ? { slots: strip(rest.slots) } : {}),
        ...(rest.services ? { services: Object.fromEntries(Object.entries(rest.services).map(([k, l]) => [k, strip(l)])) } : {}),
      };
    }
    default:
      return msg;
  }
}

/** Longest log line an agent sends: the cut line and its mark (runtime/streams.ts). */
const LOGS_LINE_MAX_CHARS = MAX_LINE_CHARS + 200;
/** Largest credit of one logs grant (characters). */
const LOGS_MAX_CREDIT = 64 * 1024 * 1024;

const str = z.string();

/**
 * Bounds on what an agent may send (every byte from an agent is hostile). A whole message is at
 * most MAX_MESSAGE_BYTES (the hub's WebSocket maxPayload); the agent splits what would not fit
 * (see agent/split.ts) and keeps each message under AGENT_MESSAGE_BUDGET.
 */
export const LIMITS = {
  maxMessageBytes: 1024 * 1024,
  /** What the agent aims for: room for the envelope under maxMessageBytes. */
  agentMessageBudget: 768 * 1024,
  name: 253,
  id: 128,
  text: 4096,
  /** host (a name of ≤ 253, or a bracketed IPv6) and a port. */
  address: 300,
  time: 64,
  reports: 4096,
  endpoints: 4096,
  events: 1000,
  containers: 1000,
  labels: 128,
  /** A full report set sent in parts (`more`) may add up to this many reports. */
  reportsTotal: 20_000,
  /** Volumes in one volumes-result or volumes-removed message. */
  volumes: 4096,
  /** Directories an agent allows host mounts under (`--allow-host-path`), and the length of each. */
  hostPaths: 64,
  path: 4096,
  /** Secrets one service (one slot assignment) uses: the manifest's own bound (SPEC §3.9). */
  secretsPerService: 64,
  /** Secret values in one assignments message (each secret version once, whichever services use it). */
  secretValues: 1024,
  /** A secret value in base64: 64 KiB of bytes. */
  secretValueChars: Math.ceil((64 * 1024) / 3) * 4,
} as const;

const name = str.min(1).max(LIMITS.name);
/** Node names: a DNS name (as `--node-name` checks), at most 253 characters. */
export const NODE_NAME_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const id = str.min(1).max(LIMITS.id);
const text = str.max(LIMITS.text);
const time = str.max(LIMITS.time);
const address = str.min(1).max(LIMITS.address);
const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const labels = z.record(str.max(LIMITS.name), str.max(LIMITS.text)).refine((r) => Object.keys(r).length <= LIMITS.labels, {
  message: `at most ${LIMITS.labels} labels`,
});

/** Instance states an agent may report (they become the `state` label of orca_instances). */
export const INSTANCE_STATES = ['pending', 'creating', 'starting', 'running', 'stopping', 'exited', 'removed', 'crashloop'] as const;
/** Reconcilers that run on an agent (an event's `reconciler` is a metric label). */
export const AGENT_RECONCILERS = ['container', 'health', 'network'] as const;
/** Actions an agent records (a metric label): a new kind of action must be added here. */
export const AGENT_ACTIONS = [
  'container.create',
  'container.start',
  'container.stop',
  'container.remove',
  'slot.update',
  'rollout.halt',
  'instance.ready',
  'instance.unready',
  'instance.liveness-failed',
  'image.port-check',
  'volume.create',
  'volume.remove',
  'network.create',
  'network.connect',
] as const;
/** Why a failed instance was replaced (`replace-after-X`: X is the restarts metric's `reason` label). */
const REPLACE_REASONS = new Set(['exited', 'completed', 'oom-killed', 'removed', 'liveness', 'create-failed', 'start-timeout', 'unhealthy', 'failure']);
/** `ok`, `warning`, or `error` with an optional error code (the metric label is `error` either way). */
const OUTCOME_RE = /^(ok|warning|error|error: [A-Z_]{1,64})$/;

const instanceReport = z.object({
  id: id.nullable(),
  service: name,
  slot: count,
  revision: count,
  specHash: id,
  node: name,
  state: z.enum(INSTANCE_STATES),
  ready: z.boolean(),
  restarts: count,
  lastExit: z.object({ code: z.number().int().nullable(), reason: str.max(LIMITS.id), at: time }).nullable(),
  containerId: id.nullable(),
  address: address.nullable(),
  nextRetryAt: time.nullable(),
  startedAt: time.nullable(),
  current: z.boolean(),
  rolloutFailed: text.nullable(),
  /** A terminal error keeping the slot from its desired spec (image not found on the node). */
  error: text.nullable().optional(),
  /** The last readiness check's answer. */
  probe: text.nullable().optional(),
});
const endpoint = z.strictObject({ service: name, instance: id, address });
/** A secret's name: a DNS label, as `orca secret set` checks. */
const secretName = str.min(1).max(63).regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
const secretVersion = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);
const slotAssignment = z.looseObject({
  service: str,
  slot: z.number().int().nonnegative(),
  revision: z.number().int().positive(),
  specHash: str,
  spec: z.looseObject({ name: str, image: str, replicas: z.number().int().nonnegative() }),
  secretVersions: z
    .record(secretName, secretVersion)
    .refine((r) => Object.keys(r).length <= LIMITS.secretsPerService, { message: `at most ${LIMITS.secretsPerService} secrets` })
    .optional(),
});
/** One version of a secret, for the agent whose instances use it (SPEC §3.9): the bytes in base64. */
const secretValue = z.strictObject({
  name: secretName,
  version: secretVersion,
  value: str.max(LIMITS.secretValueChars).regex(/^[A-Za-z0-9+/]*={0,2}$/),
});
const eventRecord = z
  .object({
    time,
    reconciler: z.enum(AGENT_RECONCILERS),
    service: name.nullable(),
    instance: id.nullable(),
    node: name.nullable(),
    action: z.enum(AGENT_ACTIONS),
    reason: str.max(1024),
    outcome: str.max(80).regex(OUTCOME_RE),
    durationMs: z.number().nonnegative().max(1e9),
    message: text.optional(),
  })
  .refine((e) => !e.reason.startsWith('replace-after-') || REPLACE_REASONS.has(e.reason.slice('replace-after-'.length)), {
    message: 'unknown replace-after- reason',
    path: ['reason'],
  });
const container = z.looseObject({ id, name, labels, status: str.max(LIMITS.id) });
/** One named volume of the node (SPEC §3.8): the server adds the node's name. */
const volumeRecord = z.strictObject({
  name,
  service: name,
  volume: name,
  slot: count,
  /** A container of that slot (in any state) exists on the node: it mounts the volume. */
  inUse: z.boolean(),
  sizeBytes: count.nullable(),
});
const volumeFailure = z.strictObject({ name, error: text });

/** Arrays of records: the envelope bounds their length; each record is validated on its own. */
const records = (max: number) => z.array(z.unknown()).max(max);
/** Which fields of which message are record arrays, and each record's schema. */
const RECORD_FIELDS: Record<string, Record<string, z.ZodType>> = {
  hello: { reports: instanceReport, endpoints: endpoint },
  state: { reports: instanceReport, endpoints: endpoint },
  endpoints: { endpoints: endpoint },
  event: { records: eventRecord },
  observed: { reports: instanceReport, endpoints: endpoint },
  'containers-result': { containers: container },
  'volumes-result': { volumes: volumeRecord },
  'volumes-removed': { failed: volumeFailure },
};

export const agentMessage = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('hello'),
    v: z.number().int(),
    node: name.regex(NODE_NAME_RE),
    cluster: str.min(1).max(63),
    advertise: str.min(1).max(LIMITS.name),
    labels,
    capacity: z.strictObject({ memoryBytes: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional() }),
    reports: records(LIMITS.reports),
    endpoints: records(LIMITS.endpoints),
    /** The report set continues in the next `state` message(s) (it did not fit in one). */
    more: z.boolean().optional(),
    /** Directories the node allows host mounts under (`--allow-host-path`); absent: none. */
    allowHostPaths: z.array(str.min(1).max(LIMITS.path)).max(LIMITS.hostPaths).optional(),
    /** The agent runs a proxy (`--proxy-listen`): the server pushes it the route table (`routes`). */
    proxy: z.boolean().optional(),
    /** The agent's proxy also serves TLS (`--proxy-listen-tls`): the `edge` messages carry the certificates and keys. */
    proxyTls: z.boolean().optional(),
  }),
  z.strictObject({ type: z.literal('state'), reports: records(LIMITS.reports), endpoints: records(LIMITS.endpoints), more: z.boolean().optional() }),
  /** Ready endpoints only, sent the moment they change (routes follow within milliseconds). */
  z.strictObject({ type: z.literal('endpoints'), endpoints: records(LIMITS.endpoints) }),
  z.strictObject({ type: z.literal('event'), records: records(LIMITS.events) }),
  z.strictObject({ type: z.literal('heartbeat'), seq: count }),
  z.strictObject({ type: z.literal('drain'), id: count, instance: id, address, maxMs: z.number().nonnegative().max(3_600_000) }),
  /** Log lines (cut at 16 KiB by the agent), within the credit the server granted (agent/log-pump.ts). */
  z.strictObject({ type: z.literal('logs-data'), id: z.number().int(), lines: z.array(str.max(LOGS_LINE_MAX_CHARS)).max(LOG_BATCH_LINES) }),
  z.strictObject({ type: z.literal('logs-end'), id: z.number().int(), error: str.max(4096).optional() }),
  z.strictObject({ type: z.literal('containers-result'), id: count, containers: records(LIMITS.containers), error: text.optional() }),
  z.strictObject({ type: z.literal('observed'), id: count, reports: records(LIMITS.reports), endpoints: records(LIMITS.endpoints).optional(), error: text.optional(), more: z.boolean().optional() }),
  /** The node's named volumes of this cluster (answer to `volumes`). */
  z.strictObject({ type: z.literal('volumes-result'), id: count, volumes: records(LIMITS.volumes), error: text.optional() }),
  /** What a `volumes-remove` removed (gone already counts as removed) and what it could not. */
  z.strictObject({ type: z.literal('volumes-removed'), id: count, removed: z.array(name).max(LIMITS.volumes), failed: records(LIMITS.volumes), error: text.optional() }),
]);

export const serverMessage = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('welcome'), v: z.number().int(), heartbeatIntervalMs: z.number().positive(), heartbeatTimeoutMs: z.number().positive() }),
  /**
   * full: `slots` is the node's whole set; else `services` replaces those services' slots (an
   * empty list removes). `secrets`: the values of the secret versions the slots of this message
   * use (only those: an agent gets no secret its node does not need).
   */
  z.strictObject({
    type: z.literal('assignments'),
    full: z.boolean(),
    slots: z.array(slotAssignment).optional(),
    services: z.record(str, z.array(slotAssignment)).optional(),
    secrets: z.array(secretValue).max(LIMITS.secretValues).optional(),
  }),
  z.strictObject({ type: z.literal('heartbeat-ack'), seq: z.number().int().nonnegative() }),
  z.strictObject({ type: z.literal('drained'), id: z.number().int() }),
  /** window: the first credit in characters (absent: no flow control); logs-credit grants more as the reader reads. */
  z.strictObject({ type: z.literal('logs'), id: z.number().int(), containerId: str, tail: z.number().int().nonnegative().optional(), follow: z.boolean(), window: z.number().int().positive().max(LOGS_MAX_CREDIT).optional() }),
  z.strictObject({ type: z.literal('logs-credit'), id: z.number().int(), chars: z.number().int().positive().max(LOGS_MAX_CREDIT) }),
  z.strictObject({ type: z.literal('logs-cancel'), id: z.number().int() }),
  z.strictObject({ type: z.literal('containers'), id: z.number().int(), service: str }),
  z.strictObject({ type: z.literal('observe'), id: z.number().int() }),
  /** List the node's named volumes of this cluster. */
  z.strictObject({ type: z.literal('volumes'), id: z.number().int() }),
  /** Remove the node's named volumes of this service (labels orca.cluster and orca.service). */
  z.strictObject({ type: z.literal('volumes-remove'), id: z.number().int(), service: str.min(1).max(LIMITS.name) }),
  z.strictObject({ type: z.literal('error'), code: str, message: str }),
  /** The whole route table, for an agent whose hello said `proxy` (protocol/routes.ts; in parts when large). */
  routesMessageSchema,
  /** Certificates (to a proxyTls agent) and ACME challenges, for an agent whose hello said `proxy` (protocol/edge.ts). */
  edgeMessageSchema,
]);

/** The messages in domain types (the schemas above check their shape on receipt). */
export type AgentMessage =
  | {
      type: 'hello';
      v: number;
      node: string;
      cluster: string;
      advertise: string;
      labels: Record<string, string>;
      capacity: { memoryBytes?: number };
      reports: InstanceReport[];
      endpoints: Endpoint[];
      more?: boolean;
      allowHostPaths?: string[];
      proxy?: boolean;
      proxyTls?: boolean;
    }
  | { type: 'state'; reports: InstanceReport[]; endpoints: Endpoint[]; more?: boolean }
  | { type: 'endpoints'; endpoints: Endpoint[] }
  | { type: 'event'; records: EventRecord[] }
  | { type: 'heartbeat'; seq: number }
  | { type: 'drain'; id: number; instance: string; address: string; maxMs: number }
  | { type: 'logs-data'; id: number; lines: string[] }
  | { type: 'logs-end'; id: number; error?: string }
  | { type: 'containers-result'; id: number; containers: ObservedContainer[]; error?: string }
  | { type: 'observed'; id: number; reports: InstanceReport[]; endpoints?: Endpoint[]; error?: string; more?: boolean }
  | { type: 'volumes-result'; id: number; volumes: VolumeRecord[]; error?: string }
  | { type: 'volumes-removed'; id: number; removed: string[]; failed: Array<{ name: string; error: string }>; error?: string };

/** One named volume as its node's agent reports it. */
export interface VolumeRecord {
  name: string;
  service: string;
  volume: string;
  slot: number;
  inUse: boolean;
  sizeBytes: number | null;
}

/** One version of a secret on its way to an agent: `value` is the bytes in base64. Never log one. */
export interface SecretValue {
  name: string;
  version: number;
  value: string;
}

export type ServerMessage =
  | { type: 'welcome'; v: number; heartbeatIntervalMs: number; heartbeatTimeoutMs: number }
  | { type: 'assignments'; full: boolean; slots?: SlotAssignment[]; services?: Record<string, SlotAssignment[]>; secrets?: SecretValue[] }
  | { type: 'heartbeat-ack'; seq: number }
  | { type: 'drained'; id: number }
  | { type: 'logs'; id: number; containerId: string; tail?: number; follow: boolean; window?: number }
  | { type: 'logs-credit'; id: number; chars: number }
  | { type: 'logs-cancel'; id: number }
  | { type: 'containers'; id: number; service: string }
  | { type: 'observe'; id: number }
  | { type: 'volumes'; id: number }
  | { type: 'volumes-remove'; id: number; service: string }
  | { type: 'error'; code: string; message: string }
  | RoutesMessage
  | EdgeMessage;

import type { Endpoint } from '../core/endpoint.js';
export type { Endpoint };

export type Decoded<T> = { ok: true; msg: T } | { ok: false; error: string };
/** A valid envelope; `dropped` says which of its records were invalid and left out (at most a few, then a count). */
export type DecodedAgent = { ok: true; msg: AgentMessage; dropped: string[] } | { ok: false; error: string };

const MAX_ERROR_CHARS = 300;
const MAX_DROPPED_LISTED = 5;

function issueText(error: z.ZodError, prefix = ''): string {
  const first = error.issues[0];
  const where = first ? [prefix, ...first.path.map(String)].filter(Boolean).join('.') || '(root)' : '(root)';
  return `${where}: ${first ? first.message : 'invalid'}`.slice(0, MAX_ERROR_CHARS);
}

function parseJson(raw: string): { ok: true; data: unknown } | { ok: false; error: string } {
  if (typeof raw !== 'string') return { ok: false, error: 'not text' };
  if (raw.length > LIMITS.maxMessageBytes) return { ok: false, error: `message of ${raw.length} characters is over the ${LIMITS.maxMessageBytes} limit` };
  try {
    return { ok: true, data: JSON.parse(raw) };
  } catch {
    return { ok: false, error: 'not JSON' };
  }
}

function typeOf(data: unknown): string {
  const t = typeof data === 'object' && data !== null && !Array.isArray(data) ? (data as { type?: unknown }).type : undefined;
  return typeof t === 'string' ? t.slice(0, 40) : '?';
}

function decode<T>(schema: z.ZodType, raw: string): Decoded<T> {
  const j = parseJson(raw);
  if (!j.ok) return j;
  try {
    const r = schema.safeParse(j.data);
    if (r.success) return { ok: true, msg: r.data as T };
    return { ok: false, error: `bad "${typeOf(j.data)}" message: ${issueText(r.error)}` };
  } catch (err) {
    return { ok: false, error: `bad "${typeOf(j.data)}" message: ${String((err as Error)?.message ?? err).slice(0, MAX_ERROR_CHARS)}` };
  }
}

/**
 * Parses and validates a message from an agent. Never throws. The envelope is checked strictly
 * (type, bounds, array lengths, total size); then each record of its batches (reports,
 * endpoints, events, containers) on its own: an invalid record is left out and named in
 * `dropped`, never the whole message.
 */
export function decodeAgentMessage(raw: string): DecodedAgent {
  const d = decode<AgentMessage>(agentMessage, raw);
  if (!d.ok) return d;
  const msg = d.msg as unknown as Record<string, unknown>;
  const dropped: string[] = [];
  let droppedCount = 0;
  const fields = RECORD_FIELDS[msg.type as string] ?? {};
  for (const [field, schema] of Object.entries(fields)) {
    const list = msg[field];
    if (!Array.isArray(list)) continue;
    const kept: unknown[] = [];
    list.forEach((rec, i) => {
      let r: ReturnType<z.ZodType['safeParse']>;
      try {
        r = schema.safeParse(rec);
      } catch (err) {
        droppedCount++;
        if (dropped.length < MAX_DROPPED_LISTED) dropped.push(`${field}.${i}: ${String((err as Error)?.message ?? err).slice(0, MAX_ERROR_CHARS)}`);
        return;
      }
      if (r.success) kept.push(r.data);
      else {
        droppedCount++;
        if (dropped.length < MAX_DROPPED_LISTED) dropped.push(issueText(r.error, `${field}.${i}`));
      }
    });
    msg[field] = kept;
  }
  if (droppedCount > dropped.length) dropped.push(`and ${droppedCount - dropped.length} more`);
  return { ok: true, msg: msg as unknown as AgentMessage, dropped };
}
/** Parses and validates a message from the server. Never throws. */
export const decodeServerMessage = (raw: string) => decode<ServerMessage>(serverMessage, raw);
export const encode = (msg: AgentMessage | ServerMessage): string => JSON.stringify(msg);
