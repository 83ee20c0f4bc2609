import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { ServiceRecord } from '../store/types.js';
import type { ServiceSpec } from '../manifest/types.js';
import { aSpec } from '../test/builders.js';
import { instanceHash } from '../controllers/container/instance-hash.js';
import { nodeSchedulingFlags, schedule, type ScheduleResult, type SchedulableNode } from './scheduler.js';

const MI = 1024 * 1024;

const svc = (name: string, over: Partial<ServiceSpec> = {}, extra: Partial<ServiceRecord> = {}): ServiceRecord => ({
  name,
  revision: 1,
  spec: aSpec({ name, ...over }),
  specHash: 'h',
  createdAt: '',
  updatedAt: '',
  ...extra,
});

const node = (name: string, over: Partial<SchedulableNode> = {}): SchedulableNode => ({
  name,
  labels: {},
  schedulable: true,
  keepsSlots: true,
  ...over,
});
const ready = (name: string, over: Partial<SchedulableNode> = {}) => node(name, over);
const unreachable = (name: string, over: Partial<SchedulableNode> = {}) => node(name, { ...nodeSchedulingFlags('unreachable'), ...over });
const down = (name: string, over: Partial<SchedulableNode> = {}) => node(name, { ...nodeSchedulingFlags('down'), down: true, ...over });
const draining = (name: string, over: Partial<SchedulableNode> = {}) => node(name, { ...nodeSchedulingFlags('draining'), ...over });
const cordoned = (name: string, over: Partial<SchedulableNode> = {}) =>
  node(name, { ...nodeSchedulingFlags('ready', { cordoned: true }), ...over });

/** Slots per node, e.g. { n1: ['web/0', 'web/2'], n2: ['web/1'] } (empty nodes left out). */
function byNode(r: ScheduleResult): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [n, list] of r.assignments) if (list.length) out[n] = list.map((a) => `${a.service}/${a.slot}`);
  return out;
}

/** Per service, how many slots each node holds (nodes listed get 0 when empty). */
function counts(r: ScheduleResult, service: string, nodeNames: string[]): number[] {
  return nodeNames.map((n) => (r.assignments.get(n) ?? []).filter((a) => a.service === service).length);
}

/** The whole result in a comparable form that keeps every order. */
function canonical(r: ScheduleResult) {
  return {
    assignments: [...r.assignments.entries()].map(([n, list]) => [n, list.map((a) => [a.service, a.slot, a.revision, a.specHash])]),
    placement: [...r.placement.entries()],
    unplaced: r.unplaced,
    moved: r.moved,
  };
}

describe('schedule: spread', () => {
  it.each([
    { replicas: 4, nodes: ['n1', 'n2'], want: [2, 2] },
    { replicas: 3, nodes: ['n1', 'n2', 'n3'], want: [1, 1, 1] },
    { replicas: 5, nodes: ['n1', 'n2'], want: [3, 2] },
    { replicas: 2, nodes: ['n1', 'n2', 'n3'], want: [1, 1, 0] },
    { replicas: 7, nodes: ['n1', 'n2', 'n3'], want: [3, 2, 2] },
    { replicas: 0, nodes: ['n1', 'n2'], want: [0, 0] },
  ])('$replicas replicas on $nodes → $want', ({ replicas, nodes, want }) => {
    const r = schedule([svc('web', { replicas })], nodes.map((n) => ready(n)));
    expect(counts(r, 'web', nodes)).toEqual(want);
    expect(r.unplaced).toEqual([]);
  });

  it('breaks ties by fewest slots overall, then by name', () => {
    // api's single replica lands on n1 (name); web's first replica avoids n1 (fewer slots overall).
    const r = schedule([svc('web', { replicas: 1 }), svc('api', { replicas: 1 })], [ready('n2'), ready('n1')]);
    expect(byNode(r)).toEqual({ n1: ['api/0'], n2: ['web/0'] });
  });

  it('spreads a scale-up onto the node with the fewest replicas of that service', () => {
    const prev = new Map([
      ['web/0', 'n1'],
      ['web/1', 'n1'],
      ['web/2', 'n2'],
    ]);
    const r = schedule([svc('web', { replicas: 5 })], [ready('n1'), ready('n2'), ready('n3')], prev);
    expect(byNode(r)).toEqual({ n1: ['web/0', 'web/1'], n2: ['web/2', 'web/4'], n3: ['web/3'] });
    expect(r.moved).toEqual([]);
  });

  it('gives every node an assignment list, sorted by node name, each sorted by service then slot', () => {
    const r = schedule([svc('web', { replicas: 2 }), svc('api', { replicas: 2 })], [down('z'), ready('b'), ready('a')]);
    expect([...r.assignments.keys()]).toEqual(['a', 'b', 'z']);
    expect(byNode(r)).toEqual({ a: ['api/0', 'web/0'], b: ['api/1', 'web/1'] });
    expect([...r.placement.keys()]).toEqual(['api/0', 'api/1', 'web/0', 'web/1']);
  });

  it('fills each assignment with the revision, the instance hash and the spec', () => {
    const s = svc('web', { replicas: 1, resources: { memoryBytes: 64 * MI } }, { revision: 7 });
    const r = schedule([s], [ready('n1')]);
    expect(r.assignments.get('n1')).toEqual([{ service: 'web', slot: 0, revision: 7, specHash: instanceHash(s.spec), spec: s.spec }]);
  });

  it('ignores deleted services and forgets their slots', () => {
    const r = schedule([svc('web', { replicas: 2 }, { deletedAt: 'x' })], [ready('n1')], new Map([['web/0', 'n1']]));
    expect(byNode(r)).toEqual({});
    expect(r.placement.size).toBe(0);
    expect(r.unplaced).toEqual([]);
  });
});

describe('schedule: placement', () => {
  it('honours placement.node', () => {
    const r = schedule([svc('db', { replicas: 2, placement: { node: 'n2' } })], [ready('n1'), ready('n2'), ready('n3')]);
    expect(byNode(r)).toEqual({ n2: ['db/0', 'db/1'] });
  });

  it('honours placement.labels (every label must match) and spreads among the matching nodes', () => {
    const nodes = [
      ready('n1', { labels: { zone: 'a', disk: 'ssd' } }),
      ready('n2', { labels: { zone: 'a' } }),
      ready('n3', { labels: { zone: 'b', disk: 'ssd' } }),
      ready('n4', { labels: { zone: 'a', disk: 'ssd' } }),
    ];
    const r = schedule([svc('web', { replicas: 4, placement: { labels: { zone: 'a', disk: 'ssd' } } })], nodes);
    expect(byNode(r)).toEqual({ n1: ['web/0', 'web/2'], n4: ['web/1', 'web/3'] });
  });

  it('moves a slot whose node no longer matches the placement', () => {
    const prev = new Map([['web/0', 'n1']]);
    const r = schedule([svc('web', { placement: { labels: { zone: 'b' } } })], [ready('n1', { labels: { zone: 'a' } }), ready('n2', { labels: { zone: 'b' } })], prev);
    expect(byNode(r)).toEqual({ n2: ['web/0'] });
    expect(r.moved).toEqual([{ key: 'web/0', from: 'n1', to: 'n2' }]);
  });

  it('does not treat inherited object keys as labels', () => {
    const r = schedule([svc('web', { placement: { labels: { constructor: 'x' } } })], [ready('n1')]);
    expect(r.unplaced).toEqual([{ key: 'web/0', reason: 'no node has labels constructor=x' }]);
  });
});

describe('schedule: memory', () => {
  it('never puts more declared memory on a node than it has', () => {
    const r = schedule([svc('web', { replicas: 3, resources: { memoryBytes: 64 * MI } })], [ready('n1', { capacity: { memoryBytes: 128 * MI } })]);
    expect(byNode(r)).toEqual({ n1: ['web/0', 'web/1'] });
    expect(r.unplaced).toEqual([{ key: 'web/2', reason: 'not enough memory: needs 64m, largest free 0b' }]);
  });

  it('counts replicas without declared memory as 0', () => {
    const r = schedule([svc('web', { replicas: 5 })], [ready('n1', { capacity: { memoryBytes: 0 } })]);
    expect(r.unplaced).toEqual([]);
    expect(counts(r, 'web', ['n1'])).toEqual([5]);
  });

  it('spills over to the node with room even when spread would prefer the full one', () => {
    const nodes = [ready('n1', { capacity: { memoryBytes: 64 * MI } }), ready('n2', { capacity: { memoryBytes: 256 * MI } })];
    const r = schedule([svc('web', { replicas: 3, resources: { memoryBytes: 64 * MI } })], nodes);
    expect(byNode(r)).toEqual({ n1: ['web/0'], n2: ['web/1', 'web/2'] });
  });

  it('places the largest replicas first so they are not crowded out', () => {
    // Name order would put small/0 on n1 first and leave no 96m hole for big/0.
    const nodes = [ready('n1', { capacity: { memoryBytes: 128 * MI } }), ready('n2', { capacity: { memoryBytes: 32 * MI } })];
    const r = schedule(
      [svc('big', { resources: { memoryBytes: 96 * MI } }), svc('aaa-small', { replicas: 2, resources: { memoryBytes: 32 * MI } })],
      nodes,
    );
    expect(r.unplaced).toEqual([]);
    expect(byNode(r)).toEqual({ n1: ['aaa-small/1', 'big/0'], n2: ['aaa-small/0'] });
  });

  it('keeps earlier slots and moves later ones when a kept node has less room than before', () => {
    const prev = new Map([
      ['web/0', 'n1'],
      ['web/1', 'n1'],
    ]);
    const r = schedule(
      [svc('web', { replicas: 2, resources: { memoryBytes: 64 * MI } })],
      [ready('n1', { capacity: { memoryBytes: 100 * MI } }), ready('n2')],
      prev,
    );
    expect(byNode(r)).toEqual({ n1: ['web/0'], n2: ['web/1'] });
    expect(r.moved).toEqual([{ key: 'web/1', from: 'n1', to: 'n2' }]);
  });
});

describe('schedule: node states and stability', () => {
  const two = [svc('web', { replicas: 2 })];
  const prev = new Map([
    ['web/0', 'n1'],
    ['web/1', 'n2'],
  ]);

  it.each([
    { state: 'ready', n2: ready('n2'), want: { n1: ['web/0'], n2: ['web/1'] }, moved: [] },
    { state: 'unreachable', n2: unreachable('n2'), want: { n1: ['web/0'], n2: ['web/1'] }, moved: [] },
    { state: 'cordoned', n2: cordoned('n2'), want: { n1: ['web/0'], n2: ['web/1'] }, moved: [] },
    { state: 'down', n2: down('n2'), want: { n1: ['web/0'], n3: ['web/1'] }, moved: [{ key: 'web/1', from: 'n2', to: 'n3' }] },
    { state: 'draining', n2: draining('n2'), want: { n1: ['web/0'], n3: ['web/1'] }, moved: [{ key: 'web/1', from: 'n2', to: 'n3' }] },
    { state: 'removed', n2: undefined, want: { n1: ['web/0'], n3: ['web/1'] }, moved: [{ key: 'web/1', from: 'n2', to: 'n3' }] },
  ])('n2 $state: its slot → $want', ({ n2, want, moved }) => {
    const nodes = [ready('n1'), ready('n3'), ...(n2 ? [n2] : [])];
    const r = schedule(two, nodes, prev);
    expect(byNode(r)).toEqual(want);
    expect(r.moved).toEqual(moved);
  });

  it('an unreachable or cordoned node receives no new slots', () => {
    const r = schedule([svc('web', { replicas: 3 })], [unreachable('n1'), cordoned('n2'), ready('n3')]);
    expect(byNode(r)).toEqual({ n3: ['web/0', 'web/1', 'web/2'] });
  });

  it('a down node keeps an (empty) assignment list so its agent removes its instances on return', () => {
    const r = schedule(two, [ready('n1'), down('n2'), ready('n3')], prev);
    expect(r.assignments.get('n2')).toEqual([]);
  });

  it('a node coming back does not pull its slots back (no rebalancing)', () => {
    const r1 = schedule(two, [ready('n1'), down('n2')], prev);
    expect(byNode(r1)).toEqual({ n1: ['web/0', 'web/1'] });
    const r2 = schedule(two, [ready('n1'), ready('n2')], r1.placement);
    expect(byNode(r2)).toEqual({ n1: ['web/0', 'web/1'] });
  });

  it('adding a node moves nothing', () => {
    const r1 = schedule([svc('web', { replicas: 4 })], [ready('n1'), ready('n2')]);
    const r2 = schedule([svc('web', { replicas: 4 })], [ready('n1'), ready('n2'), ready('n3')], r1.placement);
    expect(r2.placement).toEqual(r1.placement);
    expect(r2.moved).toEqual([]);
  });

  it('without keepsSlots, a node keeps its slots exactly while schedulable (the old call shape)', () => {
    const legacy = (name: string, schedulable: boolean): SchedulableNode => ({ name, labels: {}, schedulable });
    expect(byNode(schedule(two, [legacy('n1', true), legacy('n2', true), legacy('n3', true)], prev))).toEqual({ n1: ['web/0'], n2: ['web/1'] });
    expect(byNode(schedule(two, [legacy('n1', true), legacy('n2', false), legacy('n3', true)], prev))).toEqual({ n1: ['web/0'], n3: ['web/1'] });
  });

  it('a schedulable node keeps its slots even if keepsSlots says false', () => {
    const r = schedule(two, [ready('n1'), ready('n2', { keepsSlots: false })], prev);
    expect(byNode(r)).toEqual({ n1: ['web/0'], n2: ['web/1'] });
  });

  it('reports a slot that had a node and now fits nowhere as moved to null', () => {
    const r = schedule(two, [ready('n1'), down('n2')], prev);
    expect(r.moved).toEqual([{ key: 'web/1', from: 'n2', to: 'n1' }]);
    const r2 = schedule([svc('web', { replicas: 2, placement: { node: 'n2' } })], [ready('n1'), down('n2')], new Map([['web/1', 'n2']]));
    expect(r2.moved).toEqual([{ key: 'web/1', from: 'n2', to: null }]);
  });
});

describe('schedule: unplaced reasons', () => {
  it.each([
    { what: 'no nodes at all', s: svc('web'), nodes: [], reason: 'no nodes' },
    { what: 'unknown placement.node', s: svc('web', { placement: { node: 'x' } }), nodes: [ready('n1')], reason: 'no node matches placement.node = "x"' },
    { what: 'no node with the labels', s: svc('web', { placement: { labels: { zone: 'a' } } }), nodes: [ready('n1', { labels: { zone: 'b' } })], reason: 'no node has labels zone=a' },
    {
      what: 'several labels, sorted',
      s: svc('web', { placement: { labels: { zone: 'a', disk: 'ssd' } } }),
      nodes: [ready('n1', { labels: { zone: 'a' } })],
      reason: 'no node has labels disk=ssd,zone=a',
    },
    {
      what: 'named node lacks the labels',
      s: svc('web', { placement: { node: 'n1', labels: { zone: 'a' } } }),
      nodes: [ready('n1'), ready('n2', { labels: { zone: 'a' } })],
      reason: 'no node matches placement.node = "n1" and labels zone=a',
    },
    { what: 'named node is down', s: svc('web', { placement: { node: 'n1' } }), nodes: [down('n1'), ready('n2')], reason: 'no schedulable node matches placement.node = "n1"' },
    {
      what: 'labelled nodes are draining',
      s: svc('web', { placement: { labels: { zone: 'a' } } }),
      nodes: [draining('n1', { labels: { zone: 'a' } }), ready('n2')],
      reason: 'no schedulable node matches labels zone=a',
    },
    { what: 'every node unschedulable', s: svc('web'), nodes: [down('n1'), unreachable('n2')], reason: 'no schedulable node' },
    {
      what: 'not enough memory anywhere',
      s: svc('web', { replicas: 2, resources: { memoryBytes: 64 * MI } }),
      nodes: [ready('n1', { capacity: { memoryBytes: 96 * MI } })],
      reason: 'not enough memory: needs 64m, largest free 32m',
      key: 'web/1',
    },
    {
      what: 'largest free among eligible nodes only',
      s: svc('web', { resources: { memoryBytes: 64 * MI }, placement: { labels: { zone: 'a' } } }),
      nodes: [ready('n1', { labels: { zone: 'a' }, capacity: { memoryBytes: 48 * MI } }), ready('n2', { capacity: { memoryBytes: 60 * MI } })],
      reason: 'not enough memory: needs 64m, largest free 48m',
    },
    {
      what: 'odd sizes in bytes',
      s: svc('web', { resources: { memoryBytes: 64 * MI + 1 } }),
      nodes: [ready('n1', { capacity: { memoryBytes: 64 * MI } })],
      reason: 'not enough memory: needs 67108865b, largest free 64m',
    },
  ])('$what', ({ s, nodes, reason, key }) => {
    const r = schedule([s], nodes);
    expect(r.unplaced).toContainEqual({ key: key ?? 'web/0', reason });
    expect(r.placement.has(key ?? 'web/0')).toBe(false);
  });
});

describe('nodeSchedulingFlags', () => {
  it.each([
    { state: 'ready', cordoned: false, want: { schedulable: true, keepsSlots: true } },
    { state: 'ready', cordoned: true, want: { schedulable: false, keepsSlots: true } },
    { state: 'unreachable', cordoned: false, want: { schedulable: false, keepsSlots: true } },
    { state: 'down', cordoned: false, want: { schedulable: false, keepsSlots: false } },
    { state: 'draining', cordoned: false, want: { schedulable: false, keepsSlots: false } },
  ] as const)('$state (cordoned $cordoned) → $want', ({ state, cordoned, want }) => {
    expect(nodeSchedulingFlags(state, { cordoned })).toEqual(want);
  });
});

// ------------------------------------------------------------------------------------------
// Properties

const NODE_NAMES = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6'];
const SERVICE_NAMES = ['api', 'db', 'web', 'worker', 'cache'];
const MEMS = [undefined, 8 * MI, 16 * MI, 32 * MI, 64 * MI, 100 * MI];

const arbNode = (name: string, o: { constrained: boolean }) =>
  fc.record({
    name: fc.constant(name),
    labels: o.constrained ? fc.dictionary(fc.constantFrom('zone', 'disk'), fc.constantFrom('a', 'b'), { maxKeys: 2 }) : fc.constant({}),
    schedulable: o.constrained ? fc.boolean() : fc.constant(true),
    keepsSlots: o.constrained ? fc.boolean() : fc.constant(true),
    capacity: o.constrained
      ? fc.option(fc.record({ memoryBytes: fc.constantFrom(0, 32 * MI, 64 * MI, 128 * MI, 200 * MI) }), { nil: undefined })
      : fc.constant(undefined),
  }) as fc.Arbitrary<SchedulableNode>;

const arbNodes = (o: { constrained: boolean }) =>
  fc
    .subarray(NODE_NAMES, { minLength: o.constrained ? 0 : 1 })
    .chain((names) => fc.tuple(...names.map((n) => arbNode(n, o))))
    .map((ns) => ns as SchedulableNode[]);

const arbService = (name: string, o: { constrained: boolean; placement: boolean }) =>
  fc
    .record({
      replicas: fc.integer({ min: 0, max: 7 }),
      memory: o.constrained ? fc.constantFrom(...MEMS) : fc.constant(undefined),
      placement: o.placement
        ? fc.option(
            fc.oneof(
              fc.record({ node: fc.constantFrom(...NODE_NAMES, 'nowhere') }),
              fc.record({ labels: fc.dictionary(fc.constantFrom('zone', 'disk'), fc.constantFrom('a', 'b'), { maxKeys: 2 }) }),
            ),
            { nil: undefined },
          )
        : fc.constant(undefined),
      revision: fc.integer({ min: 1, max: 3 }),
    })
    .map(({ replicas, memory, placement, revision }) =>
      svc(
        name,
        {
          replicas,
          resources: memory === undefined ? {} : { memoryBytes: memory },
          ...(placement ? { placement } : {}),
        },
        { revision },
      ),
    );

const arbServices = (o: { constrained: boolean; placement: boolean }) =>
  fc.subarray(SERVICE_NAMES).chain((names) => fc.tuple(...names.map((n) => arbService(n, o)))).map((s) => s as ServiceRecord[]);

/** A previous placement: some slot keys (some of them stale) → some node names (some gone). */
const arbPrevious = fc
  .array(
    fc.tuple(fc.constantFrom(...SERVICE_NAMES), fc.integer({ min: 0, max: 8 }), fc.constantFrom(...NODE_NAMES, 'gone')),
    { maxLength: 30 },
  )
  .map((es) => new Map(es.map(([s, i, n]) => [`${s}/${i}`, n])));

const arbCluster = fc.record({
  services: arbServices({ constrained: true, placement: true }),
  nodes: arbNodes({ constrained: true }),
  previous: arbPrevious,
});

function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const out = [...xs];
  let x = seed | 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const j = Math.abs(x) % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

const memOf = (s: ServiceRecord) => s.spec.resources.memoryBytes ?? 0;
const fitsPlacement = (s: ServiceRecord, n: SchedulableNode) =>
  (s.spec.placement?.node === undefined || s.spec.placement.node === n.name) &&
  Object.entries(s.spec.placement?.labels ?? {}).every(([k, v]) => n.labels[k] === v);

describe('schedule: properties', () => {
  it('is deterministic: same input, or shuffled services and nodes, give the same output', () => {
    fc.assert(
      fc.property(arbCluster, fc.integer(), ({ services, nodes, previous }, seed) => {
        const a = canonical(schedule(services, nodes, previous));
        expect(canonical(schedule(services, nodes, previous))).toEqual(a);
        expect(canonical(schedule(shuffled(services, seed), shuffled(nodes, seed + 1), previous))).toEqual(a);
      }),
    );
  });

  it('accounts for every slot exactly once, consistently across assignments and placement', () => {
    fc.assert(
      fc.property(arbCluster, ({ services, nodes, previous }) => {
        const r = schedule(services, nodes, previous);
        const keys = services.flatMap((s) => Array.from({ length: s.spec.replicas }, (_, i) => `${s.name}/${i}`)).sort();
        const unplaced = r.unplaced.map((u) => u.key);
        expect([...r.placement.keys(), ...unplaced].sort()).toEqual(keys);
        const fromAssignments = [...r.assignments].flatMap(([n, list]) => list.map((a) => [`${a.service}/${a.slot}`, n] as const));
        expect(new Map(fromAssignments)).toEqual(r.placement);
        expect(fromAssignments.length).toBe(r.placement.size);
        expect([...r.assignments.keys()].sort()).toEqual(nodes.map((n) => n.name).sort());
        for (const u of r.unplaced) expect(u.reason).toMatch(/^(no nodes|no node |no schedulable node|not enough memory: needs \S+, largest free \S+)/);
      }),
    );
  });

  it('never exceeds a node’s memory, honours placement, and puts slots only where allowed', () => {
    fc.assert(
      fc.property(arbCluster, ({ services, nodes, previous }) => {
        const r = schedule(services, nodes, previous);
        const svcs = new Map(services.map((s) => [s.name, s]));
        for (const n of nodes) {
          const list = r.assignments.get(n.name) ?? [];
          const used = list.reduce((sum, a) => sum + memOf(svcs.get(a.service)!), 0);
          if (n.capacity?.memoryBytes !== undefined) expect(used).toBeLessThanOrEqual(n.capacity.memoryBytes);
          for (const a of list) {
            const key = `${a.service}/${a.slot}`;
            expect(fitsPlacement(svcs.get(a.service)!, n)).toBe(true);
            // A node that is not schedulable only holds slots it had and keeps.
            if (!n.schedulable) {
              expect(n.keepsSlots).toBe(true);
              expect(previous.get(key)).toBe(n.name);
            }
          }
        }
      }),
    );
  });

  it('places every slot when capacity allows (no placement, all nodes schedulable, room for everything)', () => {
    fc.assert(
      fc.property(arbServices({ constrained: true, placement: false }), arbNodes({ constrained: false }), arbPrevious, (services, nodes, previous) => {
        const total = services.reduce((sum, s) => sum + memOf(s) * s.spec.replicas, 0);
        const withRoom = nodes.map((n, i) => ({ ...n, capacity: { memoryBytes: i === 0 ? total : 0 } }));
        // Only the first node has room for memory-declaring slots, and it has room for all of them.
        const r = schedule(services, withRoom, previous);
        expect(r.unplaced).toEqual([]);
        const r2 = schedule(services, nodes, previous);
        expect(r2.unplaced).toEqual([]);
      }),
    );
  });

  it('spreads each service evenly: max − min replicas per eligible node ≤ 1 when unconstrained by memory', () => {
    fc.assert(
      fc.property(arbServices({ constrained: false, placement: true }), arbNodes({ constrained: true }), (services, nodes) => {
        const open = nodes.map((n) => ({ ...n, capacity: undefined }));
        const r = schedule(services, open);
        for (const s of services) {
          const eligible = open.filter((n) => n.schedulable && fitsPlacement(s, n)).map((n) => n.name);
          if (eligible.length === 0) continue;
          const c = counts(r, s.name, eligible);
          expect(Math.max(...c) - Math.min(...c)).toBeLessThanOrEqual(1);
        }
      }),
    );
  });

  it('balances total slots too when nothing is constrained', () => {
    fc.assert(
      fc.property(arbServices({ constrained: false, placement: false }), arbNodes({ constrained: false }), (services, nodes) => {
        const r = schedule(services, nodes);
        const totals = nodes.map((n) => (r.assignments.get(n.name) ?? []).length);
        expect(Math.max(...totals) - Math.min(...totals)).toBeLessThanOrEqual(1);
      }),
    );
  });

  it('is a fixed point: rescheduling with its own placement changes nothing', () => {
    fc.assert(
      fc.property(arbCluster, ({ services, nodes, previous }) => {
        const r1 = schedule(services, nodes, previous);
        const r2 = schedule(services, nodes, r1.placement);
        expect(canonical({ ...r2, moved: [] })).toEqual(canonical({ ...r1, moved: [] }));
        expect(r2.moved).toEqual([]);
      }),
    );
  });

  it('adding a node moves no placed slot', () => {
    fc.assert(
      fc.property(arbCluster, arbNode('n-new', { constrained: true }), ({ services, nodes, previous }, extra) => {
        const r1 = schedule(services, nodes, previous);
        const r2 = schedule(services, [...nodes, extra], r1.placement);
        for (const [key, n] of r1.placement) expect(r2.placement.get(key)).toBe(n);
        expect(r2.moved).toEqual([]);
      }),
    );
  });

  it('removing, downing or draining a node moves only its slots; unreachable keeps them', () => {
    fc.assert(
      fc.property(
        arbCluster,
        fc.nat(),
        fc.constantFrom('removed', 'down', 'draining', 'unreachable' as const),
        ({ services, nodes, previous }, pick, what) => {
          fc.pre(nodes.length > 0);
          const r1 = schedule(services, nodes, previous);
          const victim = nodes[pick % nodes.length]!;
          const changed =
            what === 'removed'
              ? nodes.filter((n) => n !== victim)
              : nodes.map((n) => (n === victim ? { ...n, ...nodeSchedulingFlags(what) } : n));
          const r2 = schedule(services, changed, r1.placement);
          for (const [key, n] of r1.placement) {
            if (n !== victim.name) expect(r2.placement.get(key)).toBe(n);
            else if (what === 'unreachable') expect(r2.placement.get(key)).toBe(n);
            else expect(r2.placement.get(key)).not.toBe(n);
          }
          for (const m of r2.moved) expect(m.from).toBe(victim.name);
          if (what === 'unreachable') expect(r2.moved).toEqual([]);
        },
      ),
    );
  });
});

describe('schedule: an agent one protocol version behind (upgrades)', () => {
  const old = (name: string) => ready(name, { protocol: 1, allowHostPaths: ['/srv'] });
  const cases: Array<{ name: string; spec: Partial<ServiceSpec> }> = [
    { name: 'volumes', spec: { volumes: { data: '/data' } } },
    { name: 'host mounts', spec: { mounts: [{ host: '/srv/x', path: '/x', readOnly: true }] } },
    { name: 'secrets', spec: { secrets: ['db-password'] } },
    { name: 'secret_env', spec: { secretEnv: { DB: 'db-password' } } },
  ];
  it.each(cases)('a service with $name goes only to nodes whose agent knows them; none: pending, naming the nodes to upgrade', (c) => {
    const s = svc('db', c.spec);
    expect(byNode(schedule([s], [old('n1'), ready('n2', { allowHostPaths: ['/srv'] })]))).toEqual({ n2: ['db/0'] });
    const r = schedule([s], [old('n1'), old('n3')]);
    expect(byNode(r)).toEqual({});
    expect(r.unplaced).toEqual([{ key: 'db/0', reason: "no schedulable node's agent speaks protocol 2 (volumes, mounts, secrets): upgrade orca agent on n1, n3" }]);
  });

  it('a plain service keeps its slots on an old agent and is still placed there', () => {
    const web = svc('web', { replicas: 2 });
    const r = schedule([web], [old('n1'), ready('n2')], new Map([['web/0', 'n1'], ['web/1', 'n2']]));
    expect(byNode(r)).toEqual({ n1: ['web/0'], n2: ['web/1'] });
    expect(r.moved).toEqual([]);
    expect(byNode(schedule([svc('web', { replicas: 2 })], [old('n1')]))).toEqual({ n1: ['web/0', 'web/1'] });
  });

  it('a stateful slot whose node went back to an older agent waits there (its volume is there), never run without it', () => {
    const db = svc('db', { volumes: { data: '/data' } });
    const r = schedule([db], [old('n1'), ready('n2')], new Map([['db/0', 'n1']]), new Map([['db/0', 'n1']]));
    expect(byNode(r)).toEqual({});
    expect(r.unplaced).toEqual([{ key: 'db/0', reason: 'volume on node n1, whose agent speaks protocol 1: upgrade orca agent there' }]);
  });
});

describe('schedule: a spec with replicas out of bounds (stored by an older version)', () => {
  it('gives it no slot, says why, and still schedules the others — quickly', () => {
    const huge = svc('huge', { replicas: 1_000_000_000 });
    const started = performance.now();
    const r = schedule([huge, svc('web', { replicas: 2 }), svc('neg', { replicas: -1 }), svc('frac', { replicas: 1.5 })], [ready('n1')]);
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(byNode(r)).toEqual({ n1: ['web/0', 'web/1'] });
    expect(r.unplaced).toEqual([
      { key: 'frac/*', reason: 'replicas = 1.5 is not an integer from 0 to 1000' },
      { key: 'huge/*', reason: 'replicas = 1000000000 is not an integer from 0 to 1000' },
      { key: 'neg/*', reason: 'replicas = -1 is not an integer from 0 to 1000' },
    ]);
  });
});

describe('schedule: stateful slots and host mounts (SPEC §3.8)', () => {
  const db = svc('db', { replicas: 2, volumes: { data: '/data' } });
  const prev = new Map([
    ['db/0', 'n1'],
    ['db/1', 'n2'],
  ]);
  const cases: Array<{ name: string; nodes: SchedulableNode[]; homes?: Map<string, string>; want: Record<string, string[]>; unplaced?: Array<{ key: string; reason: string }>; moved?: unknown[] }> = [
    { name: 'ready nodes: each slot stays with its volume', nodes: [ready('n1'), ready('n2')], want: { n1: ['db/0'], n2: ['db/1'] } },
    {
      name: 'its node down: the slot waits there, not moved, with the reason',
      nodes: [ready('n1'), down('n2'), ready('n3')],
      want: { n1: ['db/0'] },
      unplaced: [{ key: 'db/1', reason: 'volume on down node n2' }],
      moved: [],
    },
    { name: 'its node draining: the slot stays (its data is there)', nodes: [ready('n1'), draining('n2'), ready('n3')], want: { n1: ['db/0'], n2: ['db/1'] }, moved: [] },
    { name: 'its node unreachable or cordoned: the slot stays', nodes: [unreachable('n1'), cordoned('n2')], want: { n1: ['db/0'], n2: ['db/1'] } },
    {
      name: 'its node short of memory: the slot stays',
      nodes: [ready('n1', { capacity: { memoryBytes: 1 } }), ready('n2')],
      want: { n1: ['db/0'], n2: ['db/1'] },
    },
    {
      name: 'the volume home wins over the last placement (scaled to 0 and back: no previous placement)',
      nodes: [ready('n1'), ready('n2'), ready('n3')],
      homes: new Map([
        ['db/0', 'n3'],
        ['db/1', 'n3'],
      ]),
      want: { n3: ['db/0', 'db/1'] },
    },
    {
      name: 'a node no longer known: the slot is placed anew',
      nodes: [ready('n1'), ready('n3')],
      want: { n1: ['db/0'], n3: ['db/1'] },
      moved: [{ key: 'db/1', from: 'n2', to: 'n3' }],
    },
  ];
  it.each(cases)('$name', (c) => {
    const r = schedule([db], c.nodes, prev, c.homes);
    expect(byNode(r)).toEqual(c.want);
    expect(r.unplaced).toEqual(c.unplaced ?? []);
    if (c.moved) expect(r.moved).toEqual(c.moved);
  });

  it('a stateless service on a down node still moves', () => {
    const r = schedule([svc('web', { replicas: 1 })], [down('n1'), ready('n2')], new Map([['web/0', 'n1']]));
    expect(byNode(r)).toEqual({ n2: ['web/0'] });
  });

  it('host mounts: only on nodes that allow every host path (after normalisation); else pending with the reason', () => {
    const shared = svc('files', { mounts: [{ host: '/srv/shared', path: '/shared', readOnly: true }] });
    expect(byNode(schedule([shared], [ready('n1'), ready('n2', { allowHostPaths: ['/srv'] })]))).toEqual({ n2: ['files/0'] });
    expect(byNode(schedule([shared], [ready('n1', { allowHostPaths: ['/srv/shared/'] })]))).toEqual({ n1: ['files/0'] });
    const sneaky = svc('files', { mounts: [{ host: '/srv/../etc', path: '/x', readOnly: true }] });
    const r = schedule([sneaky], [ready('n1', { allowHostPaths: ['/srv'] })]);
    expect(r.unplaced).toEqual([{ key: 'files/0', reason: 'no schedulable node allows host path /srv/../etc (orca agent --allow-host-path)' }]);
    // A slot already on a node that stops allowing the path moves away.
    const moved = schedule([shared], [ready('n1'), ready('n2', { allowHostPaths: ['/srv'] })], new Map([['files/0', 'n1']]));
    expect(byNode(moved)).toEqual({ n2: ['files/0'] });
  });
});
