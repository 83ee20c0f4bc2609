/**
 * The agent ⇄ server protocol (version 1): one module, every message validated on receipt.
 *
 * Flow: the agent connects (bearer token), sends `hello` with its full inventory; the server
 * answers `welcome` (it sets the heartbeat period) then `assignments` with the full set, and
 * later deltas per service. The agent pushes `state` (instances and ready endpoints) on every
 * change and `event` lines of its reconciliation log; it sends `heartbeat` every period and
 * the server acks. Either side ends a session that stays silent past the deadline.
 * Request/response pairs carry an `id`: drain (agent asks); observe, logs and containers
 * (server asks: status reads the node's instances from Docker through its agent, not a cache).
 */
import { z } from 'zod';
import { MAX_LINE_CHARS } from '../runtime/streams.js';
import { LOG_BATCH_LINES } from './log-pump.js';
import type { InstanceReport } from './reports.js';
import type { EventRecord } from '../store/types.js';
import type { ObservedContainer } from '../runtime/types.js';
import type { SlotAssignment } from '../controllers/container/types.js';

export const PROTOCOL_VERSION = 1;

/** Longest log line an agent sends: the cut line and its mark (runtime/streams.ts). */
const LOGS_LINE_MAX_CHARS = MAX_LINE_CHARS + 200;
/** Largest credit of one logs grant (characters). */
const LOGS_MAX_CREDIT = 64 * 1024 * 1024;

const str = z.string();
const instanceReport = z.looseObject({
  id: str.nullable(),
  service: str,
  slot: z.number().int().nonnegative(),
  revision: z.number().int(),
  specHash: str,
  node: str,
  state: str,
  ready: z.boolean(),
  restarts: z.number().int().nonnegative(),
  containerId: str.nullable(),
  address: str.nullable(),
});
const endpoint = z.strictObject({ service: str, instance: str, address: str });
const slotAssignment = z.looseObject({
  service: str,
  slot: z.number().int().nonnegative(),
  revision: z.number().int().positive(),
  specHash: str,
  spec: z.looseObject({ name: str, image: str, replicas: z.number().int().nonnegative() }),
});
const eventRecord = z.looseObject({
  time: str,
  reconciler: str,
  service: str.nullable(),
  instance: str.nullable(),
  node: str.nullable(),
  action: str,
  reason: str,
  outcome: str,
  durationMs: z.number(),
});
const container = z.looseObject({ id: str, name: str, labels: z.record(str, str), status: str });

export const agentMessage = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('hello'),
    v: z.number().int(),
    node: str.min(1),
    cluster: str.min(1),
    advertise: str.min(1),
    labels: z.record(str, str),
    capacity: z.strictObject({ memoryBytes: z.number().int().positive().optional() }),
    reports: z.array(instanceReport),
    endpoints: z.array(endpoint),
  }),
  z.strictObject({ type: z.literal('state'), reports: z.array(instanceReport), endpoints: z.array(endpoint) }),
  /** Ready endpoints only, sent the moment they change (routes follow within milliseconds). */
  z.strictObject({ type: z.literal('endpoints'), endpoints: z.array(endpoint) }),
  z.strictObject({ type: z.literal('event'), records: z.array(eventRecord).max(10_000) }),
  z.strictObject({ type: z.literal('heartbeat'), seq: z.number().int().nonnegative() }),
  z.strictObject({ type: z.literal('drain'), id: z.number().int(), instance: str, address: str, maxMs: z.number().nonnegative() }),
  /** Log lines (cut at 16 KiB by the agent), within the credit the server granted (agent/log-pump.ts). */
  z.strictObject({ type: z.literal('logs-data'), id: z.number().int(), lines: z.array(str.max(LOGS_LINE_MAX_CHARS)).max(LOG_BATCH_LINES) }),
  z.strictObject({ type: z.literal('logs-end'), id: z.number().int(), error: str.max(4096).optional() }),
  z.strictObject({ type: z.literal('containers-result'), id: z.number().int(), containers: z.array(container), error: str.optional() }),
  z.strictObject({ type: z.literal('observed'), id: z.number().int(), reports: z.array(instanceReport), endpoints: z.array(endpoint).optional(), error: str.optional() }),
]);

export const serverMessage = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('welcome'), v: z.number().int(), heartbeatIntervalMs: z.number().positive(), heartbeatTimeoutMs: z.number().positive() }),
  /** full: `slots` is the node's whole set; else `services` replaces those services' slots (an empty list removes). */
  z.strictObject({
    type: z.literal('assignments'),
    full: z.boolean(),
    slots: z.array(slotAssignment).optional(),
    services: z.record(str, z.array(slotAssignment)).optional(),
  }),
  z.strictObject({ type: z.literal('heartbeat-ack'), seq: z.number().int().nonnegative() }),
  z.strictObject({ type: z.literal('drained'), id: z.number().int() }),
  /** window: the first credit in characters (absent: no flow control); logs-credit grants more as the reader reads. */
  z.strictObject({ type: z.literal('logs'), id: z.number().int(), containerId: str, tail: z.number().int().nonnegative().optional(), follow: z.boolean(), window: z.number().int().positive().max(LOGS_MAX_CREDIT).optional() }),
  z.strictObject({ type: z.literal('logs-credit'), id: z.number().int(), chars: z.number().int().positive().max(LOGS_MAX_CREDIT) }),
  z.strictObject({ type: z.literal('logs-cancel'), id: z.number().int() }),
  z.strictObject({ type: z.literal('containers'), id: z.number().int(), service: str }),
  z.strictObject({ type: z.literal('observe'), id: z.number().int() }),
  z.strictObject({ type: z.literal('error'), code: str, message: str }),
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
    }
  | { type: 'state'; reports: InstanceReport[]; endpoints: Endpoint[] }
  | { type: 'endpoints'; endpoints: Endpoint[] }
  | { type: 'event'; records: EventRecord[] }
  | { type: 'heartbeat'; seq: number }
  | { type: 'drain'; id: number; instance: string; address: string; maxMs: number }
  | { type: 'logs-data'; id: number; lines: string[] }
  | { type: 'logs-end'; id: number; error?: string }
  | { type: 'containers-result'; id: number; containers: ObservedContainer[]; error?: string }
  | { type: 'observed'; id: number; reports: InstanceReport[]; endpoints?: Endpoint[]; error?: string };

export type ServerMessage =
  | { type: 'welcome'; v: number; heartbeatIntervalMs: number; heartbeatTimeoutMs: number }
  | { type: 'assignments'; full: boolean; slots?: SlotAssignment[]; services?: Record<string, SlotAssignment[]> }
  | { type: 'heartbeat-ack'; seq: number }
  | { type: 'drained'; id: number }
  | { type: 'logs'; id: number; containerId: string; tail?: number; follow: boolean; window?: number }
  | { type: 'logs-credit'; id: number; chars: number }
  | { type: 'logs-cancel'; id: number }
  | { type: 'containers'; id: number; service: string }
  | { type: 'observe'; id: number }
  | { type: 'error'; code: string; message: string };

export interface Endpoint {
  service: string;
  instance: string;
  address: string;
}

export type Decoded<T> = { ok: true; msg: T } | { ok: false; error: string };

function decode<T>(schema: z.ZodType, raw: string): Decoded<T> {
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch {
    return { ok: false, error: 'not JSON' };
  }
  const r = schema.safeParse(data);
  if (r.success) return { ok: true, msg: r.data as T };
  const first = r.error.issues[0];
  const type = typeof data === 'object' && data !== null && 'type' in data ? String((data as { type: unknown }).type) : '?';
  return { ok: false, error: `bad "${type}" message: ${first ? `${first.path.join('.') || '(root)'}: ${first.message}` : 'invalid'}` };
}

/** Parses and validates a message from an agent. Never throws. */
export const decodeAgentMessage = (raw: string) => decode<AgentMessage>(agentMessage, raw);
/** Parses and validates a message from the server. Never throws. */
export const decodeServerMessage = (raw: string) => decode<ServerMessage>(serverMessage, raw);
export const encode = (msg: AgentMessage | ServerMessage): string => JSON.stringify(msg);
