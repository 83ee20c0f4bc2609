import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { ManualClock, flushMicrotasks, seededRng } from '../core/clock.js';
import { createLogger } from '../core/log.js';
import { AgentSession } from './session.js';
import { memoryChannelPair, type Channel } from '../protocol/channel.js';
import { decodeAgentMessage, encode, LIMITS, type AgentMessage } from '../protocol/messages.js';
import type { InstanceReport } from './reports.js';
import { agentUrl } from './main.js';

const identity = { node: 'n2', cluster: 'c', advertise: '127.0.0.1', labels: {}, capacity: {} };

function report(slot: number): InstanceReport {
  return {
    id: `web-1-${slot}-aaaa`, service: 'web', slot, revision: 1, specHash: 'h'.repeat(64), node: 'n2', state: 'running', ready: true, restarts: 0,
    lastExit: { code: 1, reason: 'Error', at: '2026-01-01T00:00:00.000Z' }, containerId: 'c'.repeat(64), address: '127.0.0.1:32768',
    nextRetryAt: null, startedAt: '2026-01-01T00:00:00.000Z', current: true, rolloutFailed: 'r'.repeat(200),
  };
}

function harness(reports: InstanceReport[]) {
  const clock = new ManualClock();
  let logText = '';
  const log = createLogger({ destination: new Writable({ write: (c, _e, cb) => ((logText += c), cb()) }), pretty: false });
  const assigned: unknown[][] = [];
  const node = {
    inventory: async () => ({ reports, endpoints: [] }),
    onAssignments: async (l: unknown[]) => void assigned.push(l),
    containers: async () => [],
    logs: () => ({ async *[Symbol.asyncIterator]() {} }),
  };
  const servers: Channel[] = [];
  const raw: string[] = [];
  const s = new AgentSession({
    clock,
    rng: seededRng(1),
    log,
    identity,
    dial: async () => {
      const [a, b] = memoryChannelPair();
      servers.push(b);
      b.onMessage((t) => raw.push(t));
      return a;
    },
    reconnect: { initialMs: 1000, maxMs: 1000, jitter: 0 },
    ...node,
  });
  const msgs = () => raw.map((t) => decodeAgentMessage(t)).map((d) => (d.ok ? d.msg : ({ type: 'BAD', error: d.error } as unknown as AgentMessage)));
  return { clock, s, servers, raw, msgs, assigned, logs: () => logText };
}

describe('AgentSession within the server’s limits', () => {
  it('splits a report set too large for one message into a hello and state parts, each under the limit', async () => {
    const all = Array.from({ length: 3000 }, (_, i) => report(i));
    expect(encode({ type: 'state', reports: all, endpoints: [] }).length).toBeGreaterThan(LIMITS.maxMessageBytes);
    const h = harness(all);
    const abort = new AbortController();
    void h.s.run(abort.signal);
    await flushMicrotasks(10);
    h.servers[0]!.send(encode({ type: 'welcome', v: 1, heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 3000 }));
    await flushMicrotasks(10);
    abort.abort();
    for (const t of h.raw) expect(Buffer.byteLength(t)).toBeLessThanOrEqual(LIMITS.maxMessageBytes);
    const m = h.msgs();
    expect(m.map((x) => x.type)).not.toContain('BAD');
    const parts = m.filter((x) => x.type === 'hello' || x.type === 'state') as Array<{ reports: InstanceReport[]; more?: boolean }>;
    expect(parts.length).toBeGreaterThan(1);
    expect(parts.slice(0, -1).every((p) => p.more === true)).toBe(true);
    expect(parts.at(-1)?.more).toBeUndefined();
    expect(parts.flatMap((p) => p.reports).map((r) => r.slot)).toEqual(all.map((r) => r.slot));
  });

  it('sends events kept while cut off in messages within the limits', async () => {
    const h = harness([]);
    for (let i = 0; i < 5000; i++) {
      h.s.record({ time: 't', reconciler: 'container', service: 'web', instance: null, node: 'n2', action: 'container.create', reason: 'x'.repeat(300), outcome: 'ok', durationMs: 1 });
    }
    const abort = new AbortController();
    void h.s.run(abort.signal);
    await flushMicrotasks(10);
    h.servers[0]!.send(encode({ type: 'welcome', v: 1, heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 3000 }));
    await flushMicrotasks(10);
    abort.abort();
    const events = h.msgs().filter((x) => x.type === 'event') as Array<{ records: unknown[] }>;
    expect(events.length).toBeGreaterThanOrEqual(5);
    expect(events.reduce((n, e) => n + e.records.length, 0)).toBe(5000);
    for (const t of h.raw) expect(Buffer.byteLength(t)).toBeLessThanOrEqual(LIMITS.maxMessageBytes);
  });

  it('refused with 4409, says why and waits (retrying on its backoff) without running anything', async () => {
    const h = harness([]);
    const abort = new AbortController();
    void h.s.run(abort.signal);
    await flushMicrotasks(10);
    const refuse = (c: Channel) => {
      c.send(encode({ type: 'error', code: 'ORCA_CONFLICT', message: 'node name n2 already has a live session from 127.0.0.7:41000' }));
      c.close(4409, 'node name n2 already has a live session from 127.0.0.7:41000');
    };
    refuse(h.servers[0]!);
    await flushMicrotasks(10);
    expect(h.logs()).toContain('node name n2 already has a live session from 127.0.0.7:41000; waiting');
    expect(h.s.connected).toBe(false);
    await h.clock.advanceAsync(1100, 100);
    expect(h.servers).toHaveLength(2);
    refuse(h.servers[1]!);
    await flushMicrotasks(10);
    expect(h.assigned).toEqual([]);
    abort.abort();
  });
});

describe('agentUrl (--join)', () => {
  it.each([
    ['http://s:6880', 'ws://s:6880/v1/agent'],
    ['https://s:6880/', 'wss://s:6880/v1/agent'],
    ['ws://s:6880', 'ws://s:6880/v1/agent'],
    ['wss://s', 'wss://s/v1/agent'],
    ['http://[::1]:6880', 'ws://[::1]:6880/v1/agent'],
  ])('%s → %s', (join, want) => expect(agentUrl(join)?.toString()).toBe(want));

  it.each(['ftp://s', 'file:///x', 's:6880', '', 'http//s'])('refuses %j', (join) => expect(agentUrl(join)).toBeNull());
});
