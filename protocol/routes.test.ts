import { describe, expect, it } from 'vitest';
import { ROUTE_LIMITS, routeMessages, takeRoutesPart, type RouteEntry, type RoutesInProgress, type RoutesMessage } from './routes.js';
import { decodeServerMessage, encode, LIMITS, PROTOCOL_VERSION, type ServerMessage } from './messages.js';
import { initialServerSession, stepServerSession, type ServerSessionInput, type ServerSessionState, type ServerSessionStep } from './server-session.js';
import { initialAgentSession, stepAgentSession, type AgentSessionInput, type AgentSessionState, type AgentSessionStep } from './agent-session.js';
import { decodeServerMessage as decodeV1 } from '../test/fixtures/protocol-v1.js';

const backend = (i: number, node = `n${i % 3}`) => ({ instance: `web-1-${i}-abcd`, address: `10.0.${Math.floor(i / 250) % 250}.${i % 250}:${30000 + (i % 30000)}`, node });
const route = (service: string, n: number, host = `${service}.example.com`): RouteEntry => ({ service, host, path: '/', backends: Array.from({ length: n }, (_, i) => backend(i)) });
// A TLS route (SPEC §3.12) keeps its tls through parts and joins.
const table: RouteEntry[] = [route('web', 2), { ...route('api', 1), tls: 'acme' }, { service: 'idle', host: 'idle.example.com', path: '/x', backends: [] }];

/** Feeds the parts one by one as an agent would; returns the tables it applied. */
function assemble(messages: RoutesMessage[]): RouteEntry[][] {
  let partial: RoutesInProgress | null = null;
  const tables: RouteEntry[][] = [];
  for (const m of messages) {
    const r = takeRoutesPart(partial, m);
    partial = r.partial;
    if (r.table) tables.push(r.table);
  }
  return tables;
}

describe('routeMessages / takeRoutesPart', () => {
  it('a small table is one message; an empty table is one message too', () => {
    expect(routeMessages(table).messages).toEqual([{ type: 'routes', routes: table }]);
    expect(routeMessages([]).messages).toEqual([{ type: 'routes', routes: [] }]);
  });

  it('a table over the message budget goes in parts, each valid and under the 1 MiB limit, and comes back whole', () => {
    // 3 routes, one with 20,000 backends: about 1.6 MB of JSON.
    const big = [route('web', 20_000), route('api', 3), { service: 'idle', host: 'idle.example.com', path: '/', backends: [] }];
    const { messages, cut } = routeMessages(big);
    expect(cut).toBe(0);
    expect(messages.length).toBeGreaterThan(1);
    messages.forEach((m, i) => {
      const text = encode(m);
      expect(text.length).toBeLessThanOrEqual(LIMITS.maxMessageBytes);
      expect(decodeServerMessage(text).ok).toBe(true);
      expect(m.more).toBe(i < messages.length - 1 ? true : undefined);
    });
    expect(assemble(messages)).toEqual([big]);
  });

  it('a tiny budget cuts between and inside routes; the agent joins the entries of a route again', () => {
    const { messages } = routeMessages(table, 150);
    expect(messages.length).toBeGreaterThan(2);
    expect(assemble(messages)).toEqual([table]);
  });

  it('backends past the table bound are left out by the server (counted), and a table over it is dropped by the agent', () => {
    const over = [route('web', ROUTE_LIMITS.totalBackends - 1), route('api', 5)];
    const { messages, cut } = routeMessages(over);
    expect(cut).toBe(4);
    const [t] = assemble(messages);
    expect(t?.flatMap((r) => r.backends)).toHaveLength(ROUTE_LIMITS.totalBackends);
    // A server that does not cut (hostile, or a bug): the agent drops the set and keeps its last table.
    const parts: RoutesMessage[] = [
      { type: 'routes', routes: [route('web', ROUTE_LIMITS.totalBackends)], more: true },
      { type: 'routes', routes: [route('api', 1)] },
    ];
    const first = takeRoutesPart(null, parts[0]!);
    expect(first.partial).toMatchObject({ over: false });
    const second = takeRoutesPart(first.partial, parts[1]!);
    expect(second).toEqual({ partial: null, dropped: expect.stringContaining('over') });
  });

  it('the schema refuses what is out of bounds', () => {
    const bad = (m: unknown) => decodeServerMessage(JSON.stringify(m)).ok;
    expect(bad({ type: 'routes', routes: table })).toBe(true);
    expect(bad({ type: 'routes', routes: [{ ...table[0], backends: [{ instance: 'x', address: 'a'.repeat(301), node: 'n1' }] }] })).toBe(false);
    expect(bad({ type: 'routes', routes: [{ ...table[0], host: '' }] })).toBe(false);
    expect(bad({ type: 'routes', routes: [{ ...table[0], extra: 1 }] })).toBe(false);
    expect(bad({ type: 'routes', routes: [], more: 'yes' })).toBe(false);
  });
});

// ---- the server's session -----------------------------------------------------------------

const attached: ServerSessionInput = { kind: 'attached', reports: [], endpoints: [] };
const withProxy: ServerSessionInput = { ...attached, proxy: true };
function runServer(inputs: ServerSessionInput[], state: ServerSessionState = initialServerSession()): ServerSessionStep[] {
  return inputs.map((input, i) => {
    const r = stepServerSession(state, input, 1000 + i);
    state = r.state;
    return r;
  });
}
const routesSent = (steps: ServerSessionStep[]) => steps.map((r) => r.send.filter((m): m is RoutesMessage => m.type === 'routes').map((m) => m.routes.map((x) => x.service).join(',')));

describe('stepServerSession: the route table (SPEC §3.11)', () => {
  it.each<[string, ServerSessionInput[], string[][]]>([
    ['an agent with a proxy gets the table at attach and on every change', [{ kind: 'routes', routes: table }, withProxy, { kind: 'routes', routes: [table[0]!] }], [[], ['web,api,idle'], ['web']]],
    ['nothing before a table is known; the first one goes at once', [withProxy, { kind: 'routes', routes: table }], [[], ['web,api,idle']]],
    ['an unchanged table sends nothing', [withProxy, { kind: 'routes', routes: table }, { kind: 'routes', routes: structuredClone(table) }], [[], ['web,api,idle'], []]],
    ['an agent without a proxy never gets one', [attached, { kind: 'routes', routes: table }], [[], []]],
    ['nothing while detached; the current table on the next attach', [withProxy, { kind: 'detached' }, { kind: 'routes', routes: table }, withProxy], [[], [], [], ['web,api,idle']]],
    ['a later session gets the table again even when unchanged', [withProxy, { kind: 'routes', routes: table }, { kind: 'detached' }, withProxy], [[], ['web,api,idle'], [], ['web,api,idle']]],
  ])('%s', (_name, inputs, expected) => {
    expect(routesSent(runServer(inputs))).toEqual(expected);
  });

  it('a large table goes in parts that the agent session joins into the same table', () => {
    const big = [route('web', 20_000), route('api', 3)];
    const steps = runServer([withProxy, { kind: 'routes', routes: big }]);
    const sent = steps[1]!.send;
    expect(sent.length).toBeGreaterThan(1);
    let a: AgentSessionState = initialAgentSession({ node: 'n1', cluster: 'c', advertise: '127.0.0.1', labels: {}, capacity: {}, proxy: true });
    const tables: RouteEntry[][] = [];
    for (const input of [{ kind: 'connected' } as AgentSessionInput, ...sent.map((m): AgentSessionInput => ({ kind: 'message', text: encode(m) }))]) {
      const r = stepAgentSession(a, input, 0);
      a = r.state;
      for (const e of r.effects) if (e.kind === 'routes') tables.push(e.routes);
    }
    expect(tables).toEqual([big]);
  });

  it('never to a version 1 session, even one that says it has a proxy: every message it gets decodes with its own decoder', () => {
    const steps = runServer([{ kind: 'routes', routes: table }, { ...withProxy, protocol: 1 }, { kind: 'routes', routes: [table[0]!] }, { kind: 'assignments', slots: [] }]);
    const all = steps.flatMap((r) => r.send);
    expect(all.some((m) => m.type === 'routes')).toBe(false);
    expect(all.map((m) => m.type)).toEqual(['assignments']);
    expect(all.map((m) => decodeV1(JSON.stringify(m)).ok)).toEqual([true]);
    // The version 1 decoder has no such message: sending one would end that agent's session.
    expect(decodeV1(encode({ type: 'routes', routes: table } satisfies ServerMessage)).ok).toBe(false);
  });
});

// ---- the agent's session ------------------------------------------------------------------

const identity = { node: 'n2', cluster: 'c', advertise: '127.0.0.1', labels: {}, capacity: {} };
const msg = (m: ServerMessage): AgentSessionInput => ({ kind: 'message', text: encode(m) });
const hello: AgentSessionInput = { kind: 'inventory', for: 'hello', ok: true, inventory: { reports: [], endpoints: [] } };
const welcome = msg({ type: 'welcome', v: PROTOCOL_VERSION, heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 3000 });
function runAgent(inputs: AgentSessionInput[], proxy = true): AgentSessionStep[] {
  let state = initialAgentSession({ ...identity, ...(proxy ? { proxy: true } : {}) });
  return inputs.map((input, i) => {
    const r = stepAgentSession(state, input, 1000 + i);
    state = r.state;
    return r;
  });
}
const tablesApplied = (steps: AgentSessionStep[]) => steps.flatMap((r) => r.effects.flatMap((e) => (e.kind === 'routes' ? [e.routes.map((x) => `${x.service}:${x.backends.length}`).join(',')] : [])));

describe('stepAgentSession: the route table', () => {
  it('says in its hello that it runs a proxy (and says nothing when it does not)', () => {
    expect(runAgent([{ kind: 'connected' }, hello])[1]!.send[0]).toMatchObject({ type: 'hello', proxy: true });
    expect(runAgent([{ kind: 'connected' }, hello], false)[1]!.send[0]).not.toHaveProperty('proxy');
  });

  it('applies a whole table, and a table in parts only once its last part is in', () => {
    const [a, b] = [route('web', 2), route('api', 1)];
    const steps = runAgent([{ kind: 'connected' }, hello, welcome, msg({ type: 'routes', routes: [a!] }), msg({ type: 'routes', routes: [b!], more: true }), msg({ type: 'routes', routes: [{ ...a!, backends: [backend(7)] }] })]);
    expect(tablesApplied(steps)).toEqual(['web:2', 'api:1,web:1']);
  });

  it('forgets the parts of a table cut off by the end of its session', () => {
    const steps = runAgent([
      { kind: 'connected' },
      hello,
      welcome,
      msg({ type: 'routes', routes: [route('web', 2)], more: true }),
      { kind: 'closed', code: 1006, reason: '' },
      { kind: 'connected' },
      hello,
      welcome,
      msg({ type: 'routes', routes: [route('api', 1)] }),
    ]);
    expect(tablesApplied(steps)).toEqual(['api:1']);
  });

  it('a table over the bound is dropped with a warning (the last one stays)', () => {
    const steps = runAgent([
      { kind: 'connected' },
      hello,
      welcome,
      msg({ type: 'routes', routes: [route('web', ROUTE_LIMITS.backends)], more: true }),
      ...Array.from({ length: Math.ceil(ROUTE_LIMITS.totalBackends / ROUTE_LIMITS.backends) }, () => msg({ type: 'routes', routes: [route('web', ROUTE_LIMITS.backends)], more: true })),
      msg({ type: 'routes', routes: [] }),
      msg({ type: 'routes', routes: [route('web', 2)] }),
    ]);
    // Nothing of it is applied (not its tail either), the drop is said once, and the next table is taken again.
    expect(tablesApplied(steps)).toEqual(['web:2']);
    expect(steps.flatMap((r) => r.effects).filter((e) => e.kind === 'log' && e.msg.includes('route table from the server dropped'))).toHaveLength(1);
  });
});
