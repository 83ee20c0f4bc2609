import { describe, expect, it } from 'vitest';
import { ManualClock, flushMicrotasks, seededRng } from '../core/clock.js';
import { silentLogger } from '../core/log.js';
import { AgentSession } from './session.js';
import { memoryChannelPair, type Channel } from '../protocol/channel.js';
import { decodeAgentMessage, encode, PROTOCOL_VERSION, type AgentMessage } from '../protocol/messages.js';
import { aSpec, slotsOf } from '../test/builders.js';

/** What the session needs of the node, as the plain functions it takes. */
function fakeNode() {
  const assigned: unknown[][] = [];
  const node = {
    inventory: async () => ({ reports: [], endpoints: [] }),
    onAssignments: async (l: unknown[]) => {
      assigned.push(l);
    },
    containers: async () => [],
    logs: () => ({ async *[Symbol.asyncIterator]() {} }),
  };
  return { node, assigned };
}

const identity = { node: 'n2', cluster: 'c', advertise: '127.0.0.1', labels: {}, capacity: {} };

describe('AgentSession', () => {
  it('reconnects with backoff 5, 10, 20, 40, 60, 60 s, each within ±20 %', async () => {
    const clock = new ManualClock();
    const dials: number[] = [];
    const s = new AgentSession({
      clock,
      rng: seededRng(42),
      log: silentLogger(),
      identity,
      dial: async () => {
        dials.push(clock.now());
        throw new Error('ECONNREFUSED');
      },
      reconnect: { initialMs: 5000, maxMs: 60_000, jitter: 0.2 },
      ...fakeNode().node,
    });
    const abort = new AbortController();
    void s.run(abort.signal);
    for (let i = 0; i < 300; i++) await clock.advanceAsync(1000);
    abort.abort();
    const gaps = dials.slice(1, 8).map((t, i) => t - dials[i]!);
    const base = [5000, 10_000, 20_000, 40_000, 60_000, 60_000, 60_000];
    gaps.forEach((g, i) => {
      expect(g).toBeGreaterThanOrEqual(base[i]! * 0.8 - 1000);
      expect(g).toBeLessThanOrEqual(base[i]! * 1.2 + 1000);
    });
    // Jitter really varies the delays.
    expect(new Set(gaps.slice(4).map((g) => Math.round(g / 1000))).size).toBeGreaterThan(1);
  });

  it('says hello with its inventory, takes full and delta assignments, heartbeats, and ends a silent session', async () => {
    const clock = new ManualClock();
    const { node, assigned } = fakeNode();
    let server!: Channel;
    const fromAgent: AgentMessage[] = [];
    let dialled = 0;
    const s = new AgentSession({
      clock,
      rng: seededRng(1),
      log: silentLogger(),
      identity,
      dial: async () => {
        dialled++;
        const [a, b] = memoryChannelPair();
        server = b;
        b.onMessage((t) => {
          const d = decodeAgentMessage(t);
          if (d.ok) fromAgent.push(d.msg);
        });
        return a;
      },
      reconnect: { initialMs: 1000, maxMs: 1000, jitter: 0 },
      ...node,
    });
    const abort = new AbortController();
    void s.run(abort.signal);
    await flushMicrotasks(10);
    expect(fromAgent[0]).toMatchObject({ type: 'hello', node: 'n2', v: PROTOCOL_VERSION });
    server.send(encode({ type: 'welcome', v: PROTOCOL_VERSION, heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 3000 }));
    const web = slotsOf(aSpec({ replicas: 2 }));
    const api = slotsOf(aSpec({ name: 'api' }));
    server.send(encode({ type: 'assignments', full: true, slots: [...web, ...api] }));
    await flushMicrotasks(10);
    expect(assigned.at(-1)).toHaveLength(3);
    server.send(encode({ type: 'assignments', full: false, services: { web: [] } }));
    await flushMicrotasks(10);
    expect(assigned.at(-1)).toEqual(api);
    expect(s.connected).toBe(true);

    await clock.advanceAsync(1000);
    expect(fromAgent.some((m) => m.type === 'heartbeat')).toBe(true);
    // The server goes silent: after the deadline the agent ends the session and dials again.
    await clock.advanceAsync(3500, 100);
    expect(s.connected).toBe(false);
    await clock.advanceAsync(1500, 100);
    expect(dialled).toBe(2);
    abort.abort();
  });

  it('dials again within 250 ms when a session that was up ends (a failover), then backs off by rounds', async () => {
    const clock = new ManualClock();
    const dials: number[] = [];
    let server: Channel | null = null;
    const s = new AgentSession({
      clock,
      rng: seededRng(7),
      log: silentLogger(),
      identity,
      dial: async () => {
        dials.push(clock.now());
        if (dials.length > 1) throw new Error('ECONNREFUSED');
        const [a, b] = memoryChannelPair();
        server = b;
        return a;
      },
      reconnect: { initialMs: 5000, maxMs: 60_000, jitter: 0 },
      ...fakeNode().node,
    });
    const abort = new AbortController();
    void s.run(abort.signal);
    await flushMicrotasks(10);
    server!.send(encode({ type: 'welcome', v: PROTOCOL_VERSION, heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 3000 }));
    await flushMicrotasks(10);
    expect(s.connected).toBe(true);
    const lostAt = clock.now();
    server!.close(1012, 'leader changed');
    for (let i = 0; i < 80; i++) await clock.advanceAsync(100);
    abort.abort();
    expect(dials.length).toBeGreaterThanOrEqual(3);
    expect(dials[1]! - lostAt).toBeLessThanOrEqual(250);
    // The first failure after that waits the backoff's first step.
    expect(dials[2]! - dials[1]!).toBeGreaterThanOrEqual(5000);
  });

  it('keeps events while cut off and sends them after the next welcome', async () => {
    const clock = new ManualClock();
    const { node } = fakeNode();
    let server!: Channel;
    const got: AgentMessage[] = [];
    const s = new AgentSession({
      clock,
      rng: seededRng(1),
      log: silentLogger(),
      identity,
      dial: async () => {
        const [a, b] = memoryChannelPair();
        server = b;
        b.onMessage((t) => {
          const d = decodeAgentMessage(t);
          if (d.ok) got.push(d.msg);
        });
        return a;
      },
      reconnect: { initialMs: 1000, maxMs: 1000, jitter: 0 },
      ...node,
    });
    s.record({ time: 't', reconciler: 'container', service: 'web', instance: null, node: 'n2', action: 'container.create', reason: 'r', outcome: 'ok', durationMs: 1 });
    const abort = new AbortController();
    void s.run(abort.signal);
    await flushMicrotasks(10);
    expect(got.some((m) => m.type === 'event')).toBe(false);
    server.send(encode({ type: 'welcome', v: PROTOCOL_VERSION, heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 3000 }));
    await flushMicrotasks(10);
    expect(got.find((m) => m.type === 'event')).toMatchObject({ records: [{ action: 'container.create' }] });
    abort.abort();
  });
});
