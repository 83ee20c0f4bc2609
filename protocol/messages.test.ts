import { describe, expect, it } from 'vitest';
import { AGENT_ACTIONS, decodeAgentMessage, decodeServerMessage, encode, PROTOCOL_VERSION, type AgentMessage, type ServerMessage } from './messages.js';
import type { Action } from '../controllers/actions.js';
import type { NetworkAction } from '../controllers/network/actions.js';
import type { HealthAction } from '../controllers/health/actions.js';
import { aContainer, aSpec, slotsOf } from '../test/builders.js';

describe('protocol', () => {
  const agentMessages: AgentMessage[] = [
    { type: 'hello', v: PROTOCOL_VERSION, node: 'n2', cluster: 'c', advertise: '127.0.0.1', labels: { zone: 'a' }, capacity: { memoryBytes: 1 << 30 }, reports: [], endpoints: [] },
    {
      type: 'state',
      reports: [
        {
          id: 'web-1-0-aaaa',
          service: 'web',
          slot: 0,
          revision: 1,
          specHash: 'h',
          node: 'n2',
          state: 'running',
          ready: true,
          restarts: 0,
          lastExit: null,
          containerId: 'c1',
          address: '127.0.0.1:1',
          nextRetryAt: null,
          startedAt: null,
          current: true,
          rolloutFailed: null,
        },
      ],
      endpoints: [{ service: 'web', instance: 'web-1-0-aaaa', address: '127.0.0.1:1' }],
    },
    { type: 'endpoints', endpoints: [{ service: 'web', instance: 'web-1-0-aaaa', address: '127.0.0.1:1' }] },
    { type: 'event', records: [{ time: 't', reconciler: 'container', service: 'web', instance: null, node: 'n2', action: 'container.create', reason: 'r', outcome: 'ok', durationMs: 1 }] },
    { type: 'heartbeat', seq: 3 },
    { type: 'drain', id: 1, instance: 'i', address: '127.0.0.1:1', maxMs: 1000 },
    { type: 'logs-data', id: 2, lines: ['a', 'b'] },
    { type: 'logs-end', id: 2 },
    { type: 'containers-result', id: 4, containers: [aContainer()] },
  ];
  const serverMessages: ServerMessage[] = [
    { type: 'welcome', v: PROTOCOL_VERSION, heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 3000 },
    { type: 'assignments', full: true, slots: slotsOf(aSpec({ replicas: 2 })) },
    { type: 'assignments', full: false, services: { web: [], api: slotsOf(aSpec({ name: 'api' })) } },
    { type: 'heartbeat-ack', seq: 3 },
    { type: 'drained', id: 1 },
    { type: 'logs', id: 2, containerId: 'c', tail: 10, follow: true },
    { type: 'logs-cancel', id: 2 },
    { type: 'containers', id: 4, service: 'web' },
    { type: 'error', code: 'ORCA_UNAUTHORIZED', message: 'no' },
  ];

  it.each(agentMessages.map((m) => [m.type, m] as const))('round-trips agent message %s', (_t, m) => {
    expect(decodeAgentMessage(encode(m))).toEqual({ ok: true, msg: JSON.parse(encode(m)), dropped: [] });
  });

  it.each(serverMessages.map((m, i) => [`${m.type}#${i}`, m] as const))('round-trips server message %s', (_t, m) => {
    expect(decodeServerMessage(encode(m))).toEqual({ ok: true, msg: JSON.parse(encode(m)) });
  });

  it.each([
    ['not json', '{', 'not JSON'],
    ['unknown type', '{"type":"explode"}', 'bad "explode" message'],
    ['missing field', '{"type":"heartbeat"}', 'bad "heartbeat" message: seq'],
    ['wrong type', '{"type":"heartbeat","seq":"x"}', 'bad "heartbeat" message: seq'],
    ['extra field', '{"type":"heartbeat","seq":1,"evil":true}', 'bad "heartbeat" message'],
    ['negative', '{"type":"heartbeat","seq":-1}', 'seq'],
  ])('rejects %s with a reason', (_n, raw, want) => {
    const r = decodeAgentMessage(raw);
    expect(r.ok).toBe(false);
    expect(r.ok ? '' : r.error).toContain(want);
  });

  it('rejects a server message an agent must not act on', () => {
    expect(decodeServerMessage('{"type":"assignments","full":true,"slots":[{"service":"web"}]}').ok).toBe(false);
    expect(decodeServerMessage('{"type":"hello"}').ok).toBe(false);
  });
});

// Every action an agent's reconcilers record must be an AGENT_ACTIONS label, or the server drops the
// event ("records from an agent dropped"): network.create/connect once were. Checked by the compiler.
type RecordedOnAgent = Action['kind'] | NetworkAction['kind'] | Exclude<HealthAction['kind'], 'probe.start' | 'probe.stop'>;
type NotListed = Exclude<RecordedOnAgent, (typeof AGENT_ACTIONS)[number]>;
const everyRecordedActionListed: [NotListed] extends [never] ? true : NotListed = true;

describe('protocol: events of every agent reconciler', () => {
  it.each([...AGENT_ACTIONS])('an event of %s is accepted', (action) => {
    expect(everyRecordedActionListed).toBe(true);
    const ev = { time: '2026-01-01T00:00:00.000Z', reconciler: 'network', service: null, instance: null, node: 'n1', action, reason: 'missing', outcome: 'ok', durationMs: 1 };
    const d = decodeAgentMessage(encode({ type: 'event', records: [ev] } as AgentMessage));
    expect(d.ok && d.msg.type === 'event' && d.msg.records.length).toBe(1);
  });
});
