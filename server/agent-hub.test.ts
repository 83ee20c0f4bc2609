import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { ManualClock, flushMicrotasks } from '../core/clock.js';
import { createLogger } from '../core/log.js';
import { memoryStore } from '../store/index.js';
import type { EventRecord } from '../store/types.js';
import { memoryChannelPair, type Channel } from '../protocol/channel.js';
import { decodeServerMessage, LIMITS, PROTOCOL_VERSION, type ServerMessage } from '../protocol/messages.js';
import { aSpec, slotsOf } from '../test/builders.js';
import { AgentHub, type AgentHubDeps } from './agent-hub.js';
import type { Principal } from './access.js';
import { NodeRegistry } from './node-registry.js';
import { planRoutes } from '../controllers/route/planner.js';

const settle = () => flushMicrotasks(20);
const API = { host: '127.0.0.1', port: 6880 };

async function setup(o: { access?: AgentHubDeps['access'] } = {}) {
  const clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z'));
  let logText = '';
  const log = createLogger({ destination: new Writable({ write: (c, _e, cb) => ((logText += c), cb()) }), pretty: false });
  const store = memoryStore();
  await store.open();
  const records: EventRecord[] = [];
  const registry = new NodeRegistry({ store, clock, log });
  await registry.load();
  const hub = new AgentHub({
    clock,
    log,
    token: 't',
    clusterId: 'c',
    heartbeat: { intervalMs: 5000, timeoutMs: 15_000 },
    registry,
    onSession: () => undefined,
    onState: () => undefined,
    record: (e) => records.push(e),
    drain: async () => undefined,
    ownAddresses: () => [API],
    ...(o.access ? { access: o.access } : {}),
  });
  /** A fake agent: raw text in, server messages and the close out. */
  const connect = (remote: string, opts: { sameClock?: boolean; principal?: Principal } = {}) => {
    const [agentEnd, serverEnd] = memoryChannelPair();
    hub.accept(serverEnd, remote, opts);
    const got: ServerMessage[] = [];
    let closed: { code: number; reason: string } | null = null;
    agentEnd.onMessage((t) => {
      const d = decodeServerMessage(t);
      if (d.ok) got.push(d.msg);
    });
    agentEnd.onClose((code, reason) => (closed = { code, reason }));
    return { ch: agentEnd as Channel, got, closed: () => closed, send: (m: unknown) => agentEnd.send(typeof m === 'string' ? m : JSON.stringify(m)) };
  };
  const hello = (node: string, advertise = '127.0.0.1', extra: Record<string, unknown> = {}) => ({
    type: 'hello', v: PROTOCOL_VERSION, node, cluster: 'c', advertise, labels: {}, capacity: {}, reports: [], endpoints: [], ...extra,
  });
  return { clock, hub, registry, records, connect, hello, logs: () => logText };
}

const web = slotsOf(aSpec({ name: 'web', replicas: 2, port: 8080, route: { host: 'web.localhost', path: '/' } } as never));
const routesOf = (registry: NodeRegistry) =>
  planRoutes({
    services: [{ name: 'web', spec: { ...web[0]!.spec, route: { host: 'web.localhost', path: '/' }, port: 8080 }, deletedAt: null } as never],
    endpoints: registry.list().flatMap((n) => n.endpoints().map((e) => ({ ...e, node: n.name }))),
    reachable: () => true,
    current: [],
  }).table;

describe('AgentHub: node identity', () => {
  it('refuses a hello for a node name with a live session (4409 to the newcomer, naming the incumbent); the incumbent keeps its session', async () => {
    const { connect, hello, registry } = await setup();
    const a = connect('127.0.9.1:5000');
    a.send(hello('n2'));
    await settle();
    expect(a.got[0]?.type).toBe('welcome');
    const b = connect('127.0.9.2:6000');
    b.send(hello('n2', '127.0.0.9'));
    await settle();
    expect(b.closed()?.code).toBe(4409);
    expect(b.got).toContainEqual({ type: 'error', code: 'ORCA_CONFLICT', message: 'node name n2 already has a live session from 127.0.9.1:5000' });
    expect(a.closed()).toBeNull();
    // The newcomer changed nothing: the incumbent's facts stay.
    expect(registry.get('n2')?.address()).toBe('127.0.0.1');
    a.send({ type: 'heartbeat', seq: 1 });
    await settle();
    expect(a.got).toContainEqual({ type: 'heartbeat-ack', seq: 1 });
  });

  it('refuses a second hello that arrives while the first is still being welcomed', async () => {
    const { connect, hello } = await setup();
    const a = connect('r1');
    const b = connect('r2');
    a.send(hello('n3'));
    b.send(hello('n3'));
    await settle();
    expect(a.got[0]?.type).toBe('welcome');
    expect(b.closed()?.code).toBe(4409);
  });

  it('welcomes the name again once the live session has ended', async () => {
    const { connect, hello } = await setup();
    const a = connect('r1');
    a.send(hello('n4'));
    await settle();
    a.ch.close(1000, 'bye');
    await settle();
    const b = connect('r2');
    b.send(hello('n4'));
    await settle();
    expect(b.got[0]?.type).toBe('welcome');
  });
});

describe('AgentHub: node credentials (SPEC §3.10)', () => {
  const bound = new Set(['n1', 'n2']);
  const access = { authenticate: () => null, bound: (n: string) => bound.has(n) };
  const as = (node: string) => ({ principal: { role: 'node', node } as Principal });

  it('a credential opens a session for its own node only: another bound name is 4409, an unbound one 4403 (fatal); the incumbent is untouched', async () => {
    const { connect, hello, registry } = await setup({ access });
    const n1 = connect('127.0.9.1:5000', as('n1'));
    n1.send(hello('n1'));
    await settle();
    expect(n1.got[0]?.type).toBe('welcome');
    // n2's credential claims n1 (live, bound to another credential).
    const thief = connect('127.0.9.2:6000', as('n2'));
    thief.send(hello('n1', '127.0.0.9'));
    await settle();
    expect(thief.closed()?.code).toBe(4409);
    expect(thief.got).toContainEqual({ type: 'error', code: 'ORCA_CONFLICT', message: 'node name n1 is bound to another credential' });
    expect(n1.closed()).toBeNull();
    expect(registry.get('n1')?.address()).toBe('127.0.0.1');
    // Even with n1's session gone, n2's credential cannot take the name.
    n1.ch.close(1000, 'bye');
    await settle();
    const again = connect('127.0.9.2:6001', as('n2'));
    again.send(hello('n1', '127.0.0.9'));
    await settle();
    expect(again.closed()?.code).toBe(4409);
    expect(registry.get('n1')?.address()).toBe('127.0.0.1');
    // A name bound to nobody: this credential is simply not for it.
    const stray = connect('127.0.9.2:6002', as('n2'));
    stray.send(hello('n9'));
    await settle();
    expect(stray.closed()?.code).toBe(4403);
    expect(stray.got).toContainEqual({ type: 'error', code: 'ORCA_FORBIDDEN', message: 'this node credential is for node n2, not n9' });
    expect(registry.get('n9')).toBeUndefined();
  });

  it('the admin token may hold any node’s session, as before', async () => {
    const { connect, hello } = await setup({ access });
    const a = connect('127.0.9.1:5000', { principal: { role: 'admin' } });
    a.send(hello('n2'));
    await settle();
    expect(a.got[0]?.type).toBe('welcome');
  });

  it('disconnect (orca nodes rm) ends the node’s session and a not yet welcomed one of its credential with 4401 and the reason; others stay', async () => {
    const { connect, hello, hub } = await setup({ access });
    const n2 = connect('127.0.9.1:5000', as('n2'));
    n2.send(hello('n2'));
    const n1 = connect('127.0.9.3:5000', as('n1'));
    n1.send(hello('n1'));
    await settle();
    const early = connect('127.0.9.2:5000', as('n2'));
    expect(hub.disconnect('n2', 'the node credential of n2 was revoked (orca nodes rm n2)')).toBe(2);
    await settle();
    for (const c of [n2, early]) {
      expect(c.closed()?.code).toBe(4401);
      expect(c.got).toContainEqual({ type: 'error', code: 'ORCA_UNAUTHORIZED', message: 'the node credential of n2 was revoked (orca nodes rm n2)' });
    }
    expect(n1.closed()).toBeNull();
    expect(hub.disconnect('n2', 'again')).toBe(0);
  });
});

describe('AgentHub: a fake agent sending wrong messages', () => {
  async function welcomed() {
    const s = await setup();
    const agent = s.connect('evil');
    agent.send(s.hello('evil', '127.0.0.2'));
    await settle();
    expect(agent.got[0]?.type).toBe('welcome');
    const node = s.registry.get('evil')!;
    await node.setAssignments(web.map((a) => ({ ...a })));
    // n1 is another node, with its own instances on 127.0.0.1.
    const n1 = s.connect('n1');
    n1.send(s.hello('n1', '127.0.0.1'));
    await settle();
    return { ...s, agent, node };
  }

  it('routes only endpoints on its own advertise address, of its assigned instances, never the server itself', async () => {
    const { agent, registry, logs } = await welcomed();
    const rev = web[0]!.revision;
    agent.send({
      type: 'endpoints',
      endpoints: [
        { service: 'web', instance: `web-${rev}-0-good`, address: '127.0.0.2:32768' },
        { service: 'web', instance: `web-${rev}-1-for1`, address: '127.0.0.1:32769' }, // another node's address
        { service: 'web', instance: `web-${rev}-1-ssrf`, address: '127.0.0.2:0' }, // port 0
        { service: 'web', instance: `web-${rev}-1-bigp`, address: '127.0.0.2:65536' },
        { service: 'web', instance: `web-${rev}-7-nota`, address: '127.0.0.2:32770' }, // slot 7 is not assigned
        { service: 'web', instance: `web-${rev + 1}-1-futr`, address: '127.0.0.2:32771' }, // a revision never assigned
        { service: 'web', instance: 'api-1-0-xxxx', address: '127.0.0.2:32772' }, // not an instance of web
        { service: 'web', instance: `web-${rev}-1-v6xx`, address: '::1:32773' }, // unbracketed IPv6
      ],
    });
    await settle();
    const backends = routesOf(registry).flatMap((r) => r.backends);
    expect(backends).toEqual([{ instance: `web-${rev}-0-good`, address: '127.0.0.2:32768' }]);
    expect(logs()).toContain('records from an agent dropped');
    expect(logs()).toContain('not on the node’s advertise address');
  });

  it('never routes to the server’s own API port, even for an assigned instance on a loopback advertise address', async () => {
    const s = await setup();
    const agent = s.connect('evil');
    agent.send(s.hello('evil', '127.0.0.1'));
    await settle();
    await s.registry.get('evil')!.setAssignments(web);
    const rev = web[0]!.revision;
    agent.send({ type: 'endpoints', endpoints: [{ service: 'web', instance: `web-${rev}-0-ssrf`, address: `127.0.0.1:${API.port}` }] });
    await settle();
    expect(routesOf(s.registry).flatMap((r) => r.backends)).toEqual([]);
    expect(s.logs()).toContain('one of the server’s own addresses');
  });

  it('stamps events with the server’s receive time and the node, drops unknown services and labels one by one, and keeps the session', async () => {
    const { agent, records, clock } = await welcomed();
    records.length = 0;
    const yearAhead = new Date(clock.now() + 365 * 24 * 3600_000).toISOString();
    const good = { time: yearAhead, reconciler: 'container', service: 'web', instance: 'web-1-0-aaaa', node: 'n1', action: 'container.create', reason: 'replace-after-exited', outcome: 'ok', durationMs: 3 };
    const junk = Array.from({ length: 999 }, (_, i) => ({ ...good, action: `label-${i}` }));
    agent.send({
      type: 'event',
      records: [good, ...junk.slice(0, 300), { ...good, reconciler: 'x'.repeat(10) }, { ...good, outcome: 'weird-1' }, { ...good, service: 'never-assigned' }, { ...good, reason: 'replace-after-x1' }, 42, null, 'str'],
    });
    await settle();
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ action: 'container.create', node: 'evil', time: new Date(clock.now()).toISOString() });
    agent.send({ type: 'heartbeat', seq: 9 });
    await settle();
    expect(agent.got).toContainEqual({ type: 'heartbeat-ack', seq: 9 });
  });

  it('the embedded agent (same process, same clock) keeps its events’ own time; a remote one gets the receive time', async () => {
    const { connect, hello, records, clock } = await setup();
    const embedded = connect('embedded', { sameClock: true });
    embedded.send(hello('n1'));
    await settle();
    const at = new Date(clock.now() - 1500).toISOString();
    embedded.send({ type: 'event', records: [{ time: at, reconciler: 'health', service: null, instance: null, node: 'n1', action: 'instance.ready', reason: 'r', outcome: 'ok', durationMs: 0 }] });
    await settle();
    expect(records.at(-1)).toMatchObject({ time: at, node: 'n1' });
    const remote = connect('127.0.0.9:5000');
    remote.send(hello('n2'));
    await settle();
    remote.send({ type: 'event', records: [{ time: at, reconciler: 'health', service: null, instance: null, node: 'n2', action: 'instance.ready', reason: 'r', outcome: 'ok', durationMs: 0 }] });
    await settle();
    expect(records.at(-1)).toMatchObject({ time: new Date(clock.now()).toISOString(), node: 'n2' });
  });

  it('caps the rate of events a node may add (the server’s own stay in the ring)', async () => {
    const { agent, records } = await welcomed();
    records.length = 0;
    const e = { time: 't', reconciler: 'health', service: null, instance: null, node: null, action: 'instance.ready', reason: 'r', outcome: 'ok', durationMs: 0 };
    for (let i = 0; i < 20; i++) agent.send({ type: 'event', records: Array.from({ length: LIMITS.events }, () => e) });
    await settle();
    expect(records.length).toBeLessThanOrEqual(5000);
    expect(records.length).toBeGreaterThan(0);
  });

  it('drops non-JSON, wrong types, unknown messages, oversized payloads and over-long arrays, and goes on serving', async () => {
    const { agent, logs, records } = await welcomed();
    records.length = 0;
    agent.send('not json {');
    agent.send({ type: 'heartbeat', seq: 'x' });
    agent.send({ type: 'explode' });
    agent.send([1, 2, 3]);
    agent.send(`{"type":"event","records":[${'1,'.repeat(LIMITS.events)}1]}`);
    agent.send('x'.repeat(LIMITS.maxMessageBytes + 1));
    agent.send({ type: 'state', reports: [{ nonsense: true }], endpoints: [] });
    await settle();
    agent.send({ type: 'heartbeat', seq: 2 });
    await settle();
    expect(agent.closed()).toBeNull();
    expect(agent.got).toContainEqual({ type: 'heartbeat-ack', seq: 2 });
    expect(logs()).toContain('bad message from an agent; dropped');
    expect(records).toEqual([]);
  });

  it('logs a flood of bad records at a bounded rate, not one line per record or message', async () => {
    const { agent, logs } = await welcomed();
    const before = logs().split('\n').length;
    for (let i = 0; i < 200; i++) agent.send({ type: 'endpoints', endpoints: [{ service: 'web', instance: `web-1-0-x${i}`, address: `127.0.0.1:${1000 + i}` }] });
    await settle();
    expect(logs().split('\n').length - before).toBeLessThanOrEqual(2);
  });

  it('keeps reports of its own node only, and ignores unknown instance states', async () => {
    const { agent, node } = await welcomed();
    const r = {
      id: 'web-1-0-aaaa', service: 'web', slot: 0, revision: 1, specHash: 'h', node: 'evil', state: 'running', ready: true, restarts: 0,
      lastExit: null, containerId: 'c1', address: '127.0.0.2:1', nextRetryAt: null, startedAt: null, current: true, rolloutFailed: null,
    };
    agent.send({ type: 'state', reports: [r, { ...r, node: 'n1' }, { ...r, state: 'label-123' }], endpoints: [] });
    await settle();
    expect(node.lastReports()).toEqual([r]);
  });

  it('assembles a report set sent in parts, and keeps the last complete set meanwhile', async () => {
    const { agent, node } = await welcomed();
    const r = (slot: number) => ({
      id: `web-1-${slot}-aaaa`, service: 'web', slot, revision: 1, specHash: 'h', node: 'evil', state: 'running', ready: true, restarts: 0,
      lastExit: null, containerId: null, address: null, nextRetryAt: null, startedAt: null, current: true, rolloutFailed: null,
    });
    agent.send({ type: 'state', reports: [r(9)], endpoints: [] });
    await settle();
    agent.send({ type: 'state', reports: [r(0)], endpoints: [], more: true });
    await settle();
    expect(node.lastReports().map((x) => x.slot)).toEqual([9]);
    agent.send({ type: 'state', reports: [r(1)], endpoints: [] });
    await settle();
    expect(node.lastReports().map((x) => x.slot)).toEqual([0, 1]);
  });
});

describe('AgentHub: protocol versions (upgrades)', () => {
  it('welcomes an agent one version behind in its own version and records it; the session serves as before', async () => {
    const { connect, hello, registry, logs } = await setup();
    const a = connect('r1');
    a.send(hello('old', '127.0.0.1', { v: PROTOCOL_VERSION - 1 }));
    await settle();
    expect(a.got[0]).toMatchObject({ type: 'welcome', v: PROTOCOL_VERSION - 1 });
    expect(registry.get('old')?.protocol()).toBe(PROTOCOL_VERSION - 1);
    expect(logs()).toContain('agent speaks an older protocol');
    a.send({ type: 'heartbeat', seq: 1 });
    await settle();
    expect(a.got).toContainEqual({ type: 'heartbeat-ack', seq: 1 });
    expect(a.closed()).toBeNull();
    const b = connect('r2');
    b.send(hello('new'));
    await settle();
    expect(b.got[0]).toMatchObject({ type: 'welcome', v: PROTOCOL_VERSION });
    expect(registry.get('new')?.protocol()).toBe(PROTOCOL_VERSION);
  });

  it.each([
    [PROTOCOL_VERSION - 2, 'upgrade orca agent on this node'],
    [PROTOCOL_VERSION + 1, 'upgrade the server first'],
  ])('refuses version %s (4403 ORCA_PROTOCOL, saying what to upgrade) and records no node', async (v, hint) => {
    const { connect, hello, registry } = await setup();
    const a = connect('r1');
    a.send(hello('x', '127.0.0.1', { v }));
    await settle();
    expect(a.closed()?.code).toBe(4403);
    const err = a.got.find((m) => m.type === 'error');
    expect(err).toMatchObject({ code: 'ORCA_PROTOCOL' });
    expect((err as { message: string }).message).toContain(hint);
    expect(registry.get('x')).toBeUndefined();
  });
});
