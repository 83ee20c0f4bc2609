import { describe, expect, it } from 'vitest';
import {
  initialAgentSession,
  stepAgentSession,
  type AgentSessionEffect,
  type AgentSessionInput,
  type AgentSessionState,
  type AgentSessionStep,
} from './agent-session.js';
import { encode, LIMITS, PROTOCOL_VERSION, type AgentMessage, type ServerMessage } from './messages.js';
import type { InstanceReport } from './reports.js';
import type { EventRecord } from '../store/types.js';
import { aSpec, slotsOf } from '../test/builders.js';

const identity = { node: 'n2', cluster: 'c', advertise: '127.0.0.1', labels: { zone: 'a' }, capacity: { memoryBytes: 1024 } };
const msg = (m: ServerMessage): AgentSessionInput => ({ kind: 'message', text: encode(m) });
const welcome = msg({ type: 'welcome', v: PROTOCOL_VERSION, heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 3000 });
const hello = (reports: InstanceReport[] = [], endpoints = [] as { service: string; instance: string; address: string }[]): AgentSessionInput => ({
  kind: 'inventory',
  for: 'hello',
  ok: true,
  inventory: { reports, endpoints },
});
const event = (n: number): EventRecord => ({ time: `t${n}`, reconciler: 'container', service: 'web', instance: null, node: 'n2', action: 'container.create', reason: `r${n}`, outcome: 'ok', durationMs: 1 });
const ep = (instance: string) => ({ service: 'web', instance, address: '127.0.0.1:32768' });
const report = (slot: number): InstanceReport => ({
  id: `web-1-${slot}-aaaa`, service: 'web', slot, revision: 1, specHash: 'h'.repeat(64), node: 'n2', state: 'running', ready: true, restarts: 0,
  lastExit: null, containerId: 'c'.repeat(64), address: '127.0.0.1:32768', nextRetryAt: null, startedAt: '2026-01-01T00:00:00.000Z', current: true, rolloutFailed: 'r'.repeat(200),
});
const connected: AgentSessionInput[] = [{ kind: 'connected' }, hello()];
const welcomed: AgentSessionInput[] = [...connected, welcome];

/** Feeds inputs one by one (at `now`, 10 ms apart) and returns every step; the last one is `.at(-1)`. */
function run(inputs: AgentSessionInput[], state: AgentSessionState = initialAgentSession(identity)): AgentSessionStep[] {
  const steps: AgentSessionStep[] = [];
  inputs.forEach((input, i) => {
    const r = stepAgentSession(state, input, 1000 + 10 * i);
    steps.push(r);
    state = r.state;
  });
  return steps;
}
const last = (inputs: AgentSessionInput[], state?: AgentSessionState) => run(inputs, state).at(-1)!;
const kinds = (effects: AgentSessionEffect[]) => effects.map((e) => e.kind);
const types = (send: AgentMessage[]) => send.map((m) => m.type);

describe('stepAgentSession: the table', () => {
  const cases: Array<{ name: string; inputs: AgentSessionInput[]; send?: unknown[]; effects?: unknown[]; phase?: AgentSessionState['phase'] }> = [
    {
      name: 'a new channel: read the inventory for the hello, and a deadline from the first moment',
      inputs: [{ kind: 'connected' }],
      send: [],
      effects: [{ kind: 'inventory', for: 'hello' }, { kind: 'timer.set', timer: 'deadline', ms: 15000 }],
      phase: 'connected',
    },
    {
      name: 'the inventory: the hello says who the agent is, with its reports and endpoints',
      inputs: [{ kind: 'connected' }, hello([report(0)], [ep('web-1-0-aaaa')])],
      send: [{ type: 'hello', v: PROTOCOL_VERSION, node: 'n2', cluster: 'c', advertise: '127.0.0.1', labels: { zone: 'a' }, capacity: { memoryBytes: 1024 }, reports: [report(0)], endpoints: [ep('web-1-0-aaaa')] }],
      effects: [],
    },
    {
      name: 'welcome: heartbeats on its interval, the deadline on its timeout, start-up released',
      inputs: welcomed,
      send: [],
      effects: [
        { kind: 'timer.set', timer: 'deadline', ms: 15000 },
        { kind: 'log', level: 'info' },
        { kind: 'timer.set', timer: 'heartbeat', ms: 1000 },
        { kind: 'timer.set', timer: 'deadline', ms: 3000 },
        { kind: 'welcomed' },
      ],
      phase: 'welcomed',
    },
    {
      name: 'heartbeat timer: a heartbeat, and the next one',
      inputs: [...welcomed, { kind: 'timer', timer: 'heartbeat' }],
      send: [{ type: 'heartbeat', seq: 0 }],
      effects: [{ kind: 'timer.set', timer: 'heartbeat', ms: 1000 }],
    },
    {
      name: 'any word from the server re-arms the deadline',
      inputs: [...welcomed, msg({ type: 'heartbeat-ack', seq: 0 })],
      send: [],
      effects: [{ kind: 'timer.set', timer: 'deadline', ms: 3000 }],
    },
    {
      name: 'heartbeat deadline: the session is closed (4408)',
      inputs: [...welcomed, { kind: 'timer', timer: 'deadline' }],
      send: [],
      effects: [{ kind: 'log', level: 'warn', fields: { timeoutMs: 3000, silentMs: 10 } }, { kind: 'close', code: 4408, reason: 'heartbeat deadline' }],
    },
    {
      name: 'heartbeat deadline before the welcome: closed too',
      inputs: [...connected, { kind: 'timer', timer: 'deadline' }],
      effects: [{ kind: 'log' }, { kind: 'close', code: 4408 }],
    },
    {
      name: 'a message that is not the protocol: closed (4400)',
      inputs: [...welcomed, { kind: 'message', text: '{"type":"welcome"}' }],
      send: [],
      effects: [{ kind: 'timer.set', timer: 'deadline' }, { kind: 'log', level: 'warn' }, { kind: 'close', code: 4400 }],
    },
    {
      name: 'an event while welcomed goes at once',
      inputs: [...welcomed, { kind: 'event', record: event(1) }],
      send: [{ type: 'event', records: [event(1)] }],
      effects: [],
    },
    {
      name: 'an event while cut off is kept',
      inputs: [{ kind: 'event', record: event(1) }],
      send: [],
      effects: [],
    },
    {
      name: 'full assignments: applied whole',
      inputs: [...welcomed, msg({ type: 'assignments', full: true, slots: slotsOf(aSpec({ replicas: 2 })) })],
      effects: [{ kind: 'timer.set', timer: 'deadline' }, { kind: 'assign', slots: slotsOf(aSpec({ replicas: 2 })) }],
    },
    {
      name: 'delta assignments replace only the services they name (an empty list removes)',
      inputs: [
        ...welcomed,
        msg({ type: 'assignments', full: true, slots: [...slotsOf(aSpec({ replicas: 2 })), ...slotsOf(aSpec({ name: 'api' }))] }),
        msg({ type: 'assignments', full: false, services: { web: [] } }),
      ],
      effects: [{ kind: 'timer.set', timer: 'deadline' }, { kind: 'assign', slots: slotsOf(aSpec({ name: 'api' })) }],
    },
    {
      name: 'the server asks for containers, logs, credit and a cancel: handed to the node',
      inputs: [
        ...welcomed,
        msg({ type: 'containers', id: 1, service: 'web' }),
        msg({ type: 'logs', id: 2, containerId: 'abc', follow: true, window: 100 }),
        msg({ type: 'logs-credit', id: 2, chars: 50 }),
        msg({ type: 'logs-cancel', id: 2 }),
      ],
      effects: [{ kind: 'timer.set', timer: 'deadline' }, { kind: 'logs.stop', id: 2 }],
    },
    {
      name: 'a drain asked while cut off is over at once',
      inputs: [{ kind: 'drain-request', id: 7, instance: 'web-1-0-aaaa', address: '127.0.0.1:1', maxMs: 5000 }],
      send: [],
      effects: [{ kind: 'drain.done', id: 7 }],
    },
    {
      name: 'a drain asked while welcomed goes to the server, bounded by its own maxMs + 1 s',
      inputs: [...welcomed, { kind: 'drain-request', id: 7, instance: 'web-1-0-aaaa', address: '127.0.0.1:1', maxMs: 5000 }],
      send: [{ type: 'drain', id: 7, instance: 'web-1-0-aaaa', address: '127.0.0.1:1', maxMs: 5000 }],
      effects: [{ kind: 'timer.set', timer: 'drain:7', ms: 6000 }],
    },
    {
      name: 'drain timeout: the drain is over without the server',
      inputs: [...welcomed, { kind: 'drain-request', id: 7, instance: 'i', address: '127.0.0.1:1', maxMs: 5000 }, { kind: 'timer', timer: 'drain:7' }],
      send: [],
      effects: [{ kind: 'drain.done', id: 7 }],
    },
    {
      name: 'drained: the drain is over and its timer cleared',
      inputs: [...welcomed, { kind: 'drain-request', id: 7, instance: 'i', address: '127.0.0.1:1', maxMs: 5000 }, msg({ type: 'drained', id: 7 })],
      effects: [{ kind: 'timer.set', timer: 'deadline' }, { kind: 'timer.clear', timer: 'drain:7' }, { kind: 'drain.done', id: 7 }],
    },
    {
      name: 'drained for a drain never asked (or already over): nothing',
      inputs: [...welcomed, msg({ type: 'drained', id: 99 })],
      effects: [{ kind: 'timer.set', timer: 'deadline' }],
    },
    {
      name: 'a welcomed session ends: timers cleared, drains over, log streams stopped, dial again afresh',
      inputs: [...welcomed, { kind: 'drain-request', id: 7, instance: 'i', address: '127.0.0.1:1', maxMs: 5000 }, msg({ type: 'logs', id: 2, containerId: 'abc', follow: true }), { kind: 'closed', code: 1006, reason: '' }],
      send: [],
      effects: [
        { kind: 'timer.clear', timer: 'heartbeat' },
        { kind: 'timer.clear', timer: 'deadline' },
        { kind: 'timer.clear', timer: 'state' },
        { kind: 'timer.clear', timer: 'drain:7' },
        { kind: 'drain.done', id: 7 },
        { kind: 'logs.stop', id: 2 },
        { kind: 'log', level: 'warn', msg: 'session with the server ended' },
        { kind: 'ended', welcomed: true },
      ],
      phase: 'idle',
    },
    {
      name: '4409 (the node name has a live session): says so and waits, never gives up',
      inputs: [...connected, msg({ type: 'error', code: 'ORCA_CONFLICT', message: 'held' }), { kind: 'closed', code: 4409, reason: 'node name n2 already has a live session from 127.0.0.7:41000' }],
      effects: [
        { kind: 'timer.clear', timer: 'heartbeat' },
        { kind: 'timer.clear', timer: 'deadline' },
        { kind: 'timer.clear', timer: 'state' },
        { kind: 'log', level: 'warn', fields: { code: 4409, node: 'n2', remote: '127.0.0.7:41000' }, msg: 'node name n2 already has a live session from 127.0.0.7:41000; waiting' },
        { kind: 'ended', welcomed: false },
      ],
    },
    {
      name: '4403 with ORCA_CONFLICT (another cluster id): gives up',
      inputs: [...connected, msg({ type: 'error', code: 'ORCA_CONFLICT', message: 'cluster id x is not this cluster' }), { kind: 'closed', code: 4403, reason: 'refused' }],
      effects: [{ kind: 'timer.clear' }, { kind: 'timer.clear' }, { kind: 'timer.clear' }, { kind: 'give-up', code: 'ORCA_CONFLICT', message: 'the server refused this agent: cluster id x is not this cluster' }],
    },
    {
      name: '4403 with ORCA_PROTOCOL (another protocol version): gives up as a usage error',
      inputs: [...connected, msg({ type: 'error', code: 'ORCA_PROTOCOL', message: 'protocol 2 is not 1' }), { kind: 'closed', code: 4403, reason: 'refused' }],
      effects: [{ kind: 'timer.clear' }, { kind: 'timer.clear' }, { kind: 'timer.clear' }, { kind: 'give-up', code: 'ORCA_USAGE', message: 'the server refused this agent: protocol 2 is not 1' }],
    },
    {
      name: '4403 with ORCA_FORBIDDEN (a credential of another node): gives up',
      inputs: [...connected, msg({ type: 'error', code: 'ORCA_FORBIDDEN', message: 'this node credential is for node n3, not n2' }), { kind: 'closed', code: 4403, reason: 'refused' }],
      effects: [{ kind: 'timer.clear' }, { kind: 'timer.clear' }, { kind: 'timer.clear' }, { kind: 'give-up', code: 'ORCA_USAGE', message: 'the server refused this agent: this node credential is for node n3, not n2' }],
    },
    {
      name: '4401 on a welcomed session (credential revoked): gives up at once, saying a new join token is needed',
      inputs: [...welcomed, msg({ type: 'error', code: 'ORCA_UNAUTHORIZED', message: 'the node credential of n2 was revoked (orca nodes rm n2)' }), { kind: 'closed', code: 4401, reason: 'revoked' }],
      effects: [
        { kind: 'timer.clear' },
        { kind: 'timer.clear' },
        { kind: 'timer.clear' },
        { kind: 'log' },
        { kind: 'give-up', code: 'ORCA_UNAUTHORIZED', message: 'the node credential of n2 was revoked (orca nodes rm n2): this agent needs a new join token (orca token create on the server, then orca agent --token-file)' },
      ],
      phase: 'idle',
    },
    {
      name: '4401 before the welcome with only a close reason: gives up with it',
      inputs: [...connected, { kind: 'closed', code: 4401, reason: 'credential revoked' }],
      effects: [{ kind: 'timer.clear' }, { kind: 'timer.clear' }, { kind: 'timer.clear' }, { kind: 'give-up', code: 'ORCA_UNAUTHORIZED', message: 'credential revoked: this agent needs a new join token (orca token create on the server, then orca agent --token-file)' }],
    },
    {
      name: '4403 with another refusal: retried',
      inputs: [...connected, msg({ type: 'error', code: 'ORCA_INVALID', message: 'bad hello' }), { kind: 'closed', code: 4403, reason: 'refused' }],
      effects: [{ kind: 'timer.clear' }, { kind: 'timer.clear' }, { kind: 'timer.clear' }, { kind: 'ended', welcomed: false }],
    },
    {
      name: '4403 with no refusal said: retried',
      inputs: [...connected, { kind: 'closed', code: 4403, reason: 'refused' }],
      effects: [{ kind: 'timer.clear' }, { kind: 'timer.clear' }, { kind: 'timer.clear' }, { kind: 'ended', welcomed: false }],
    },
    {
      name: 'a refusal of an earlier connection does not count against this one',
      inputs: [...connected, msg({ type: 'error', code: 'ORCA_CONFLICT', message: 'x' }), { kind: 'closed', code: 1006, reason: '' }, { kind: 'connected' }, { kind: 'closed', code: 4403, reason: '' }],
      effects: [{ kind: 'timer.clear' }, { kind: 'timer.clear' }, { kind: 'timer.clear' }, { kind: 'ended', welcomed: false }],
    },
    {
      name: 'a timer of an ended session does nothing',
      inputs: [...welcomed, { kind: 'closed', code: 1006, reason: '' }, { kind: 'timer', timer: 'heartbeat' }],
      send: [],
      effects: [],
    },
  ];

  it.each(cases)('$name', ({ inputs, send, effects, phase }) => {
    const r = last(inputs);
    if (send) expect(r.send).toMatchObject(send);
    if (send) expect(r.send).toHaveLength(send.length);
    if (effects) expect(r.effects).toMatchObject(effects);
    if (effects) expect(r.effects).toHaveLength(effects.length);
    if (phase) expect(r.state.phase).toBe(phase);
  });
});

describe('stepAgentSession: events kept while cut off', () => {
  it('sends them after the next welcome, in order, and keeps no copy', () => {
    const steps = run([{ kind: 'event', record: event(1) }, { kind: 'event', record: event(2) }, ...welcomed]);
    const w = steps.at(-1)!;
    expect(w.send).toEqual([{ type: 'event', records: [event(1), event(2)] }]);
    expect(w.state.pendingEvents).toEqual([]);
  });

  it('keeps at most maxBufferedEvents, the oldest dropped first', () => {
    const inputs: AgentSessionInput[] = [1, 2, 3, 4, 5].map((n) => ({ kind: 'event', record: event(n) }));
    const w = last([...inputs, ...welcomed], initialAgentSession(identity, 3));
    expect(w.send).toEqual([{ type: 'event', records: [event(3), event(4), event(5)] }]);
  });

  it('sends many in messages within the server’s limits', () => {
    const inputs: AgentSessionInput[] = Array.from({ length: 5000 }, (_, n) => ({ kind: 'event', record: { ...event(n), reason: 'x'.repeat(300) } }));
    const w = last([...inputs, ...welcomed]);
    expect(w.send.length).toBeGreaterThan(1);
    for (const m of w.send) expect(Buffer.byteLength(encode(m))).toBeLessThanOrEqual(LIMITS.maxMessageBytes);
    expect(w.send.flatMap((m) => (m.type === 'event' ? m.records : [])).map((e) => e.time)).toEqual(inputs.map((i) => (i.kind === 'event' ? i.record.time : '')));
  });
});

describe('stepAgentSession: endpoints and state', () => {
  it('sends endpoints when they change, never the same twice, and one state report for a burst of changes', () => {
    const steps = run([
      ...welcomed,
      { kind: 'changed', endpoints: [ep('a')] },
      { kind: 'changed', endpoints: [ep('a')] },
      { kind: 'changed', endpoints: [ep('a'), ep('b')] },
    ]);
    const [first, same, more] = steps.slice(-3);
    expect(first!.send).toEqual([{ type: 'endpoints', endpoints: [ep('a')] }]);
    expect(first!.effects).toEqual([{ kind: 'timer.set', timer: 'state', ms: 0 }]);
    expect(same!.send).toEqual([]);
    expect(same!.effects).toEqual([]);
    expect(more!.send).toEqual([{ type: 'endpoints', endpoints: [ep('a'), ep('b')] }]);
    expect(more!.effects).toEqual([]);
  });

  it('the state timer reads the inventory; its report carries the endpoints, which then count as sent', () => {
    const steps = run([
      ...welcomed,
      { kind: 'changed', endpoints: [ep('a')] },
      { kind: 'timer', timer: 'state' },
      { kind: 'inventory', for: 'state', ok: true, inventory: { reports: [report(0)], endpoints: [ep('b')] } },
      { kind: 'changed', endpoints: [ep('b')] },
    ]);
    const [timer, inv, again] = steps.slice(-3);
    expect(timer!.effects).toEqual([{ kind: 'inventory', for: 'state' }]);
    expect(inv!.send).toEqual([{ type: 'state', reports: [report(0)], endpoints: [ep('b')] }]);
    expect(again!.send).toEqual([]);
    expect(again!.effects).toEqual([{ kind: 'timer.set', timer: 'state', ms: 0 }]);
  });

  it('reads one state inventory at a time: changes while one is read make exactly one more report after it', () => {
    const steps = run([
      ...welcomed,
      { kind: 'changed', endpoints: [ep('a')] },
      { kind: 'timer', timer: 'state' },
      { kind: 'changed', endpoints: [ep('b')] },
      { kind: 'changed', endpoints: [ep('c')] },
      { kind: 'inventory', for: 'state', ok: true, inventory: { reports: [report(0)], endpoints: [ep('b')] } },
      { kind: 'timer', timer: 'state' },
      { kind: 'inventory', for: 'state', ok: true, inventory: { reports: [report(1)], endpoints: [ep('c')] } },
      { kind: 'changed', endpoints: [ep('c')] },
    ]);
    const [timer, b, c, inv, timer2, inv2, after] = steps.slice(-7);
    expect(timer!.effects).toEqual([{ kind: 'inventory', for: 'state' }]);
    // Endpoints still go at once; no second inventory while the first is read.
    expect(b!.send).toEqual([{ type: 'endpoints', endpoints: [ep('b')] }]);
    expect(b!.effects).toEqual([]);
    expect(c!.effects).toEqual([]);
    expect(inv!.send).toEqual([{ type: 'state', reports: [report(0)], endpoints: [ep('b')] }]);
    expect(inv!.effects).toEqual([{ kind: 'timer.set', timer: 'state', ms: 0 }]);
    expect(timer2!.effects).toEqual([{ kind: 'inventory', for: 'state' }]);
    expect(inv2!.send).toEqual([{ type: 'state', reports: [report(1)], endpoints: [ep('c')] }]);
    expect(inv2!.effects).toEqual([]);
    // Nothing in flight any more: the next change asks for a report again.
    expect(after!.effects).toEqual([{ kind: 'timer.set', timer: 'state', ms: 0 }]);
  });

  it('a session that ends while a state inventory is read starts the next one afresh', () => {
    const steps = run([
      ...welcomed,
      { kind: 'changed', endpoints: [ep('a')] },
      { kind: 'timer', timer: 'state' },
      { kind: 'closed', code: 1006, reason: '' },
      ...welcomed,
      { kind: 'changed', endpoints: [ep('b')] },
    ]);
    expect(steps.at(-1)!.effects).toEqual([{ kind: 'timer.set', timer: 'state', ms: 0 }]);
  });

  it('a state report whose inventory failed says so and sends the endpoints known', () => {
    const r = last([...welcomed, { kind: 'changed', endpoints: [ep('a')] }, { kind: 'timer', timer: 'state' }, { kind: 'inventory', for: 'state', ok: false, error: new Error('docker down') }]);
    expect(r.send).toEqual([{ type: 'state', reports: [], endpoints: [ep('a')] }]);
    expect(kinds(r.effects)).toEqual(['log']);
  });

  it('changes while cut off are kept for the hello (when its inventory fails) and sent first thing after the welcome', () => {
    const steps = run([
      { kind: 'changed', endpoints: [ep('a')] },
      { kind: 'connected' },
      { kind: 'inventory', for: 'hello', ok: false, error: new Error('docker down') },
      welcome,
      { kind: 'assigned' },
    ]);
    expect(steps[0]!.send).toEqual([]);
    expect(steps[2]!.send).toMatchObject([{ type: 'hello', reports: [], endpoints: [ep('a')] }]);
    expect(steps[4]!.send).toEqual([{ type: 'endpoints', endpoints: [ep('a')] }]);
  });

  it('an applied assignment set pushes a state report', () => {
    const r = last([...welcomed, msg({ type: 'assignments', full: true, slots: [] }), { kind: 'assigned' }]);
    expect(r.effects).toContainEqual({ kind: 'timer.set', timer: 'state', ms: 0 });
  });
});

describe('stepAgentSession: reports too large for one message', () => {
  const all = Array.from({ length: 3000 }, (_, i) => report(i));

  it('splits the hello into parts: the hello says more, the rest go as state after the welcome', () => {
    const steps = run([{ kind: 'connected' }, hello(all), welcome]);
    const parts = [...steps[1]!.send, ...steps[2]!.send] as Array<AgentMessage & { reports: InstanceReport[]; more?: boolean }>;
    expect(types(parts)[0]).toBe('hello');
    expect(types(parts).slice(1).every((t) => t === 'state')).toBe(true);
    expect(parts.length).toBeGreaterThan(1);
    expect(parts.slice(0, -1).every((p) => p.more === true)).toBe(true);
    expect(parts.at(-1)!.more).toBeUndefined();
    expect(parts.flatMap((p) => p.reports).map((r) => r.slot)).toEqual(all.map((r) => r.slot));
    for (const p of parts) expect(Buffer.byteLength(encode(p))).toBeLessThanOrEqual(LIMITS.maxMessageBytes);
  });

  it('answers an observe in parts, the endpoints in the last', () => {
    const r = last([...welcomed, msg({ type: 'observe', id: 4 }), { kind: 'inventory', for: 'observe', id: 4, ok: true, inventory: { reports: all, endpoints: [ep('a')] } }]);
    expect(r.send.length).toBeGreaterThan(1);
    expect(r.send.every((m) => m.type === 'observed' && m.id === 4)).toBe(true);
    expect(r.send.at(-1)).toMatchObject({ endpoints: [ep('a')] });
    expect(r.send.at(-1)).not.toHaveProperty('more');
  });

  it('answers a failed observe with its error', () => {
    const r = last([...welcomed, { kind: 'inventory', for: 'observe', id: 4, ok: false, error: new Error('docker down') }]);
    expect(r.send).toEqual([{ type: 'observed', id: 4, reports: [], error: 'docker down' }]);
  });
});

describe('stepAgentSession: volumes', () => {
  const vol = { name: 'orca-c-db-data-0', service: 'db', volume: 'data', slot: 0, inUse: false, sizeBytes: 4096 };
  it('hands the server\'s volumes and volumes-remove to the node and sends its answers', () => {
    const steps = run([
      ...welcomed,
      msg({ type: 'volumes', id: 3 }),
      msg({ type: 'volumes-remove', id: 4, service: 'db' }),
      { kind: 'volumes', id: 3, answer: { op: 'list', ok: true, volumes: [vol] } },
      { kind: 'volumes', id: 4, answer: { op: 'remove', ok: true, removed: [], failed: [{ name: vol.name, error: 'volume is in use' }] } },
      { kind: 'volumes', id: 5, answer: { op: 'remove', ok: false, error: new Error('service db is assigned to node n2') } },
    ]);
    const n = welcomed.length;
    expect(steps[n]!.effects).toEqual([{ kind: 'timer.set', timer: 'deadline', ms: 3000 }, { kind: 'volumes', id: 3 }]);
    expect(steps[n + 1]!.effects).toContainEqual({ kind: 'volumes', id: 4, remove: 'db' });
    expect(steps[n + 2]!.send).toEqual([{ type: 'volumes-result', id: 3, volumes: [vol] }]);
    expect(steps[n + 3]!.send).toEqual([{ type: 'volumes-removed', id: 4, removed: [], failed: [{ name: vol.name, error: 'volume is in use' }] }]);
    expect(steps[n + 4]!.send).toEqual([{ type: 'volumes-removed', id: 5, removed: [], failed: [], error: 'service db is assigned to node n2' }]);
  });

  it('says which host paths the node allows in its hello, only when there are some', () => {
    const withPaths = last([{ kind: 'connected' }, hello()], initialAgentSession({ ...identity, allowHostPaths: ['/srv'] }));
    expect(withPaths.send[0]).toMatchObject({ type: 'hello', allowHostPaths: ['/srv'] });
    expect(last([{ kind: 'connected' }, hello()]).send[0]).not.toHaveProperty('allowHostPaths');
  });
});

describe('stepAgentSession: answers of an ended connection are dropped', () => {
  it.each<[string, AgentSessionInput]>([
    ['hello inventory', hello([report(0)])],
    ['state inventory', { kind: 'inventory', for: 'state', ok: true, inventory: { reports: [], endpoints: [] } }],
    ['observe inventory', { kind: 'inventory', for: 'observe', id: 1, ok: true, inventory: { reports: [], endpoints: [] } }],
    ['containers', { kind: 'containers', id: 1, service: 'web', ok: true, containers: [] }],
    ['log lines', { kind: 'log-lines', id: 1, lines: ['x'] }],
    ['log end', { kind: 'log-end', id: 1 }],
    ['volumes', { kind: 'volumes', id: 1, answer: { op: 'list', ok: true, volumes: [] } }],
  ])('%s', (_name, input) => {
    const r = last([...welcomed, { kind: 'closed', code: 1006, reason: '' }, input]);
    expect(r.send).toEqual([]);
  });
});

describe('stepAgentSession: purity', () => {
  it('never changes the state it is given', () => {
    let state = initialAgentSession(identity);
    const inputs: AgentSessionInput[] = [
      { kind: 'event', record: event(1) },
      ...welcomed,
      { kind: 'changed', endpoints: [ep('a')] },
      { kind: 'timer', timer: 'heartbeat' },
      msg({ type: 'assignments', full: true, slots: slotsOf(aSpec({})) }),
      { kind: 'drain-request', id: 1, instance: 'i', address: '127.0.0.1:1', maxMs: 10 },
      msg({ type: 'logs', id: 2, containerId: 'c', follow: false }),
      { kind: 'closed', code: 1006, reason: '' },
    ];
    for (const input of inputs) {
      const before = structuredClone(state);
      const r = stepAgentSession(state, input, 5);
      expect(state).toEqual(before);
      state = r.state;
    }
  });
});
