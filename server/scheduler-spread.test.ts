import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { ServiceRecord } from '../store/types.js';
import type { ServiceSpec } from '../manifest/types.js';
import { aSpec } from '../test/builders.js';
import { nodeSchedulingFlags, schedule, spreadMoves, type ScheduleResult, type SchedulableNode } from './scheduler.js';

/** The spread decision (SPEC §3.1 "a down node comes back"): `respread` and `spreadMoves`. */

const MI = 1024 * 1024;

const svc = (name: string, over: Partial<ServiceSpec> = {}): ServiceRecord => ({
  name,
  revision: 1,
  spec: aSpec({ name, ...over }),
  specHash: 'h',
  createdAt: '',
  updatedAt: '',
});
const node = (name: string, over: Partial<SchedulableNode> = {}): SchedulableNode => ({ name, labels: {}, schedulable: true, keepsSlots: true, ...over });
const unreachable = (name: string) => node(name, nodeSchedulingFlags('unreachable'));
const draining = (name: string) => node(name, nodeSchedulingFlags('draining'));
const down = (name: string) => node(name, { ...nodeSchedulingFlags('down'), down: true });
const cordoned = (name: string) => node(name, nodeSchedulingFlags('ready', { cordoned: true }));

/** `{ web/0: n1, … }` for `replicas` slots all on one node (packed after the others were down). */
const packed = (service: string, replicas: number, on: string, extra: Record<string, string> = {}) =>
  new Map([...Array.from({ length: replicas }, (_, i) => [`${service}/${i}`, on] as [string, string]), ...Object.entries(extra)]);

function byNode(r: ScheduleResult): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [n, list] of r.assignments) if (list.length) out[n] = list.map((a) => `${a.service}/${a.slot}`);
  return out;
}

const all = (services: ServiceRecord[]) => ({ respread: new Set(services.map((s) => s.name)) });

describe('schedule with respread: a packed service is spread again', () => {
  const cases: Array<{
    name: string;
    services: ServiceRecord[];
    nodes: SchedulableNode[];
    previous: Map<string, string>;
    homes?: Map<string, string>;
    want: Record<string, string[]>;
    moved: Array<{ key: string; from: string; to: string | null; cause?: 'spread' }>;
  }> = [
    {
      name: '2 replicas packed on n1, n2 back: one moves',
      services: [svc('web', { replicas: 2 })],
      nodes: [node('n1'), node('n2')],
      previous: packed('web', 2, 'n1'),
      want: { n1: ['web/0'], n2: ['web/1'] },
      moved: [{ key: 'web/1', from: 'n1', to: 'n2', cause: 'spread' }],
    },
    {
      name: '4 packed on n1: the two highest slots move',
      services: [svc('web', { replicas: 4 })],
      nodes: [node('n1'), node('n2')],
      previous: packed('web', 4, 'n1'),
      want: { n1: ['web/0', 'web/1'], n2: ['web/2', 'web/3'] },
      moved: [
        { key: 'web/2', from: 'n1', to: 'n2', cause: 'spread' },
        { key: 'web/3', from: 'n1', to: 'n2', cause: 'spread' },
      ],
    },
    {
      name: '3 packed on n1 with n2 and n3 back: one each',
      services: [svc('web', { replicas: 3 })],
      nodes: [node('n1'), node('n2'), node('n3')],
      previous: packed('web', 3, 'n1'),
      want: { n1: ['web/0'], n2: ['web/2'], n3: ['web/1'] },
      moved: [
        { key: 'web/1', from: 'n1', to: 'n3', cause: 'spread' },
        { key: 'web/2', from: 'n1', to: 'n2', cause: 'spread' },
      ],
    },
    {
      name: '5 packed on n1: 3 + 2, as a fresh placement',
      services: [svc('web', { replicas: 5 })],
      nodes: [node('n1'), node('n2')],
      previous: packed('web', 5, 'n1'),
      want: { n1: ['web/0', 'web/1', 'web/2'], n2: ['web/3', 'web/4'] },
      moved: [
        { key: 'web/3', from: 'n1', to: 'n2', cause: 'spread' },
        { key: 'web/4', from: 'n1', to: 'n2', cause: 'spread' },
      ],
    },
    {
      name: 'already spread (2 + 1): nothing moves, the odd one stays where it is',
      services: [svc('web', { replicas: 3 })],
      nodes: [node('n1'), node('n2')],
      previous: new Map([
        ['web/0', 'n2'],
        ['web/1', 'n2'],
        ['web/2', 'n1'],
      ]),
      want: { n1: ['web/2'], n2: ['web/0', 'web/1'] },
      moved: [],
    },
    {
      name: 'slots with volumes stay where their data is',
      services: [svc('db', { replicas: 2, volumes: { data: '/data' } })],
      nodes: [node('n1'), node('n2')],
      previous: packed('db', 2, 'n1'),
      homes: packed('db', 2, 'n1'),
      want: { n1: ['db/0', 'db/1'] },
      moved: [],
    },
    {
      name: 'only to nodes the placement allows',
      services: [svc('web', { replicas: 2, placement: { labels: { zone: 'a' } } })],
      nodes: [node('n1', { labels: { zone: 'a' } }), node('n2', { labels: { zone: 'b' } }), node('n3', { labels: { zone: 'a' } })],
      previous: packed('web', 2, 'n1'),
      want: { n1: ['web/0'], n3: ['web/1'] },
      moved: [{ key: 'web/1', from: 'n1', to: 'n3', cause: 'spread' }],
    },
    {
      name: 'not to a node without room for the slot’s memory',
      services: [svc('web', { replicas: 2, resources: { memoryBytes: 64 * MI } })],
      nodes: [node('n1'), node('n2', { capacity: { memoryBytes: 32 * MI } })],
      previous: packed('web', 2, 'n1'),
      want: { n1: ['web/0', 'web/1'] },
      moved: [],
    },
    {
      name: 'not to an unreachable, cordoned or draining node',
      services: [svc('web', { replicas: 2 })],
      nodes: [node('n1'), unreachable('n2'), cordoned('n3'), draining('n4')],
      previous: packed('web', 2, 'n1'),
      want: { n1: ['web/0', 'web/1'] },
      moved: [],
    },
    {
      name: 'nothing leaves a node that is not ready (unreachable keeps its slots)',
      services: [svc('web', { replicas: 2 })],
      nodes: [unreachable('n1'), node('n2')],
      previous: packed('web', 2, 'n1'),
      want: { n1: ['web/0', 'web/1'] },
      moved: [],
    },
    {
      name: 'a slot leaving a down node is a plain reschedule, not a spread move',
      services: [svc('web', { replicas: 3 })],
      nodes: [node('n1'), node('n2'), down('n3')],
      previous: packed('web', 2, 'n1', { 'web/2': 'n3' }),
      want: { n1: ['web/0', 'web/1'], n2: ['web/2'] },
      moved: [{ key: 'web/2', from: 'n3', to: 'n2' }],
    },
  ];
  it.each(cases)('$name', (c) => {
    const r = schedule(c.services, c.nodes, c.previous, c.homes, all(c.services));
    expect(byNode(r)).toEqual(c.want);
    expect(r.moved).toEqual(c.moved);
    expect(r.unplaced).toEqual([]);
    // spreadMoves is the same decision, its spread moves only.
    expect(spreadMoves(c.services, c.nodes, c.previous, c.homes ?? new Map(), null)).toEqual(c.moved.filter((m) => m.cause));
  });

  it('respreads only the services named: another packed service stays packed', () => {
    const services = [svc('web', { replicas: 2 }), svc('api', { replicas: 2 })];
    const previous = new Map([...packed('web', 2, 'n1'), ...packed('api', 2, 'n1')]);
    const r = schedule(services, [node('n1'), node('n2')], previous, new Map(), { respread: new Set(['web']) });
    expect(byNode(r)).toEqual({ n1: ['api/0', 'api/1', 'web/0'], n2: ['web/1'] });
    expect(spreadMoves(services, [node('n1'), node('n2')], previous, new Map(), new Set(['api']))).toEqual([{ key: 'api/1', from: 'n1', to: 'n2', cause: 'spread' }]);
  });

  it('without respread a node that came back pulls nothing (the scheduler stays stable)', () => {
    const r = schedule([svc('web', { replicas: 2 })], [node('n1'), node('n2')], packed('web', 2, 'n1'));
    expect(byNode(r)).toEqual({ n1: ['web/0', 'web/1'] });
    expect(r.moved).toEqual([]);
  });

  it('a moved slot stays moved: the next passes, with or without respread, keep it', () => {
    const services = [svc('web', { replicas: 4 })];
    const nodes = [node('n1'), node('n2')];
    const r1 = schedule(services, nodes, packed('web', 4, 'n1'), new Map(), all(services));
    const r2 = schedule(services, nodes, r1.placement);
    expect(r2.placement).toEqual(r1.placement);
    expect(r2.moved).toEqual([]);
    const r3 = schedule(services, nodes, r1.placement, new Map(), all(services));
    expect(r3.placement).toEqual(r1.placement);
    expect(r3.moved).toEqual([]);
    expect(spreadMoves(services, nodes, r1.placement, new Map(), null)).toEqual([]);
  });

  it('one move at a time reaches the same spread (what orca rebalance does)', () => {
    const services = [svc('web', { replicas: 4 }), svc('api', { replicas: 3 })];
    const nodes = [node('n1'), node('n2'), node('n3')];
    let placement: Map<string, string> = new Map([...packed('web', 4, 'n1'), ...packed('api', 3, 'n2')]);
    const steps: string[] = [];
    for (let i = 0; i < 20; i++) {
      const [m] = spreadMoves(services, nodes, placement, new Map(), null);
      if (!m) break;
      steps.push(`${m.key} ${m.from}→${m.to}`);
      placement = new Map(placement).set(m.key, m.to!);
    }
    expect(steps).toEqual(['api/1 n2→n1', 'api/2 n2→n3', 'web/2 n1→n3', 'web/3 n1→n2']);
    const r = schedule(services, nodes, placement);
    expect(r.moved).toEqual([]);
    expect(byNode(r)).toEqual({ n1: ['api/1', 'web/0', 'web/1'], n2: ['api/0', 'web/3'], n3: ['api/2', 'web/2'] });
  });
});

describe('respread: properties', () => {
  const arb = fc
    .record({
      nodes: fc.integer({ min: 1, max: 5 }),
      services: fc.array(fc.record({ replicas: fc.integer({ min: 0, max: 9 }), zone: fc.constantFrom(undefined, 'a') }), { minLength: 1, maxLength: 4 }),
      seed: fc.array(fc.nat(), { minLength: 40, maxLength: 40 }),
      notReady: fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }),
    })
    .map(({ nodes: n, services: specs, seed, notReady }) => {
      const nodes = Array.from({ length: n }, (_, i) =>
        notReady[i] && i > 0 ? unreachable(`n${i + 1}`) : node(`n${i + 1}`, { labels: i % 2 === 0 ? { zone: 'a' } : {} }),
      );
      const services = specs.map((s, i) => svc(`s${i}`, { replicas: s.replicas, ...(s.zone ? { placement: { labels: { zone: s.zone } } } : {}) }));
      // Any previous placement, packed or not (each slot on a node the seed picks).
      const previous = new Map<string, string>();
      let k = 0;
      for (const s of services) for (let slot = 0; slot < s.spec.replicas; slot++) previous.set(`${s.name}/${slot}`, nodes[(seed[k++ % seed.length] ?? 0) % n]!.name);
      return { nodes, services, previous };
    });

  it('after respread every service is spread over its eligible ready nodes (max − min ≤ 1), and respread again moves nothing', () => {
    fc.assert(
      fc.property(arb, ({ nodes, services, previous }) => {
        const base = schedule(services, nodes, previous);
        const r = schedule(services, nodes, base.placement, new Map(), all(services));
        for (const s of services) {
          const eligible = nodes.filter((n) => n.schedulable && (!s.spec.placement?.labels || n.labels.zone === 'a')).map((n) => n.name);
          if (eligible.length < 2) continue;
          const c = eligible.map((n) => (r.assignments.get(n) ?? []).filter((a) => a.service === s.name).length);
          expect(Math.max(...c) - Math.min(...c)).toBeLessThanOrEqual(1);
        }
        // Every spread move leaves a ready node for a ready node.
        for (const m of r.moved) {
          expect(m.cause).toBe('spread');
          expect(nodes.find((n) => n.name === m.from)?.schedulable).toBe(true);
        }
        expect(spreadMoves(services, nodes, r.placement, new Map(), null)).toEqual([]);
        expect(schedule(services, nodes, r.placement).placement).toEqual(r.placement);
      }),
    );
  });

  it('moves no more slots than needed: one move per slot above the spread share', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 1, max: 5 }), (replicas, n) => {
        const nodes = Array.from({ length: n }, (_, i) => node(`n${i + 1}`));
        const moves = spreadMoves([svc('web', { replicas })], nodes, packed('web', replicas, 'n1'), new Map(), null);
        expect(moves.length).toBe(replicas - Math.ceil(replicas / n));
      }),
    );
  });
});
