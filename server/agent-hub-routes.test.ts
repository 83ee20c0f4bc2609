import { describe, expect, it } from 'vitest';
import { ManualClock, flushMicrotasks } from '../core/clock.js';
import { silentLogger } from '../core/log.js';
import { memoryStore } from '../store/index.js';
import { memoryChannelPair } from '../protocol/channel.js';
import { decodeServerMessage, PROTOCOL_VERSION, type ServerMessage } from '../protocol/messages.js';
import { AgentHub } from './agent-hub.js';
import { NodeRegistry } from './node-registry.js';
import { RoutePush } from './route-push.js';

const settle = () => flushMicrotasks(20);

/** A hub with a RoutePush wired as the server wires it (onSession), and fake agents over memory channels. */
async function setup() {
  const clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z'));
  const log = silentLogger();
  const store = memoryStore();
  await store.open();
  const registry = new NodeRegistry({ store, clock, log });
  await registry.load();
  const push = new RoutePush({ clock, log, nodes: () => registry.list(), endpoints: () => registry.list().flatMap((n) => n.endpoints().map((e) => ({ ...e, node: n.name }))), graceMs: 15_000 });
  const hub = new AgentHub({
    clock,
    log,
    token: 't',
    clusterId: 'c',
    heartbeat: { intervalMs: 5000, timeoutMs: 15_000 },
    registry,
    onSession: (node) => push.sessionStarted(node),
    onState: () => undefined,
    record: () => undefined,
    drain: async () => undefined,
    ownAddresses: () => [],
  });
  const connect = (node: string, extra: Record<string, unknown>) => {
    const [agentEnd, serverEnd] = memoryChannelPair();
    hub.accept(serverEnd, `remote-${node}`);
    const got: ServerMessage[] = [];
    agentEnd.onMessage((t) => {
      const d = decodeServerMessage(t);
      if (d.ok) got.push(d.msg);
    });
    agentEnd.send(JSON.stringify({ type: 'hello', v: PROTOCOL_VERSION, node, cluster: 'c', advertise: '127.0.0.1', labels: {}, capacity: {}, reports: [], endpoints: [], ...extra }));
    return got;
  };
  return { push, connect };
}

const table = [{ service: 'web', host: 'web.test', path: '/', backends: [{ instance: 'w0', address: '127.0.0.1:3000' }] }];

describe('AgentHub + RoutePush: the route table to the agents that run a proxy', () => {
  it('an agent whose hello says proxy gets the table when its session starts and on every change; one without gets none; a version 1 agent none', async () => {
    const { push, connect } = await setup();
    push.start();
    push.update(table);
    const withProxy = connect('n2', { proxy: true });
    const without = connect('n3', {});
    const old = connect('n4', { v: 1 });
    await settle();
    const routes = (got: ServerMessage[]) => got.filter((m) => m.type === 'routes');
    expect(routes(withProxy)).toEqual([{ type: 'routes', routes: [{ ...table[0], backends: [{ instance: 'w0', address: '127.0.0.1:3000', node: '' }] }] }]);
    push.update([]);
    await settle();
    expect(routes(withProxy).at(-1)).toEqual({ type: 'routes', routes: [] });
    expect(routes(without)).toEqual([]);
    expect(old.map((m) => m.type)).not.toContain('routes');
    expect(old[0]).toMatchObject({ type: 'welcome', v: 1 });
  });
});
