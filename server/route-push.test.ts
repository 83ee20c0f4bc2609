import { describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { silentLogger } from '../core/log.js';
import type { NodeEndpoint } from '../core/endpoint.js';
import type { Route } from '../proxy/table.js';
import type { RouteEntry } from '../protocol/routes.js';
import { agentRouteTable, RoutePush, type RoutePushNode } from './route-push.js';

class FakeNode implements RoutePushNode {
  got: RouteEntry[][] = [];
  constructor(
    readonly name: string,
    public attached: boolean,
    public nodeState = 'ready',
  ) {}
  state(): string {
    return this.nodeState;
  }
  setRoutes(routes: RouteEntry[]): void {
    this.got.push(routes);
  }
}

const endpoints: NodeEndpoint[] = [
  { node: 'n1', service: 'web', instance: 'w0', address: '203.0.113.1:3000' },
  { node: 'n2', service: 'web', instance: 'w1', address: '203.0.113.2:3000' },
];
const table: Route[] = [{ service: 'web', host: 'web.test', path: '/', backends: endpoints.map(({ instance, address }) => ({ instance, address })) }];

function setup(nodes: FakeNode[]) {
  const clock = new ManualClock();
  const push = new RoutePush({ clock, log: silentLogger(), nodes: () => nodes, endpoints: () => endpoints, graceMs: 15_000 });
  return { clock, push };
}

describe('agentRouteTable', () => {
  it('gives each backend the node that reported it ("" when none does now)', () => {
    const t = agentRouteTable([{ ...table[0]!, backends: [...table[0]!.backends, { instance: 'w9', address: '203.0.113.9:1' }] }], endpoints);
    expect(t[0]!.backends.map((b) => `${b.instance}@${b.node}`)).toEqual(['w0@n1', 'w1@n2', 'w9@']);
  });
});

describe('RoutePush', () => {
  it('pushes nothing before the server serves', () => {
    const n1 = new FakeNode('n1', true);
    const { push } = setup([n1]);
    push.update(table);
    push.sessionStarted(n1);
    expect(n1.got).toEqual([]);
  });

  it('once serving with every known node back: the table to every node, on every change, and to a new session', () => {
    const n1 = new FakeNode('n1', true);
    const n2 = new FakeNode('n2', true);
    const { push } = setup([n1, n2]);
    push.update(table);
    push.start();
    expect(n1.got).toHaveLength(1);
    expect(n1.got[0]![0]!.backends.map((b) => b.node)).toEqual(['n1', 'n2']);
    push.update([]);
    expect(n2.got).toEqual([n1.got[0], []]);
    push.sessionStarted(n2);
    expect(n2.got).toHaveLength(3);
  });

  it('after a restart, waits for the nodes it knew to say hello again before the first table (its table lacks their endpoints)', () => {
    const n1 = new FakeNode('n1', true);
    const n2 = new FakeNode('n2', false);
    const gone = new FakeNode('n3', false, 'down');
    const { push } = setup([n1, n2, gone]);
    push.update(table);
    push.start();
    expect(n1.got).toEqual([]);
    push.update(table);
    expect(n1.got).toEqual([]);
    n2.attached = true;
    push.sessionStarted(n2);
    expect(n1.got).toHaveLength(1);
    expect(n2.got).toHaveLength(1);
  });

  it('a known node that does not come back holds the push for the heartbeat timeout at most', () => {
    const n1 = new FakeNode('n1', true);
    const n2 = new FakeNode('n2', false);
    const { clock, push } = setup([n1, n2]);
    push.update(table);
    push.start();
    clock.advance(14_999);
    expect(n1.got).toEqual([]);
    clock.advance(1);
    expect(n1.got).toHaveLength(1);
  });
});
