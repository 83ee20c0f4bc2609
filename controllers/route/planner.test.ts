import { describe, expect, it } from 'vitest';
import type { ServiceRecord } from '../../store/types.js';
import type { Route } from '../../proxy/table.js';
import { aSpec } from '../../test/builders.js';
import { planRoutes, type Endpoint } from './planner.js';

const svc = (name: string, over: Partial<ServiceRecord['spec']> = {}, deleted = false): ServiceRecord => ({
  name,
  revision: 1,
  spec: aSpec({ name, port: 80, route: { host: `${name}.localhost`, path: '/' }, ...over }),
  specHash: 'h',
  createdAt: '',
  updatedAt: '',
  ...(deleted ? { deletedAt: 'x' } : {}),
});
const ADDR: Record<string, string> = { w1: '127.0.0.1:1001', w2: '127.0.0.1:1002', w3: '127.0.0.1:1003', a1: '127.0.0.1:2001' };
const ep = (service: string, instance: string, node = 'n1', address = ADDR[instance] as string): Endpoint => ({ service, instance, address, node });
const route = (service: string, instances: string[], host = `${service}.localhost`, path = '/'): Route => ({
  service,
  host,
  path,
  backends: instances.map((i) => ({ instance: i, address: ADDR[i] as string })),
});

interface Case {
  name: string;
  services: ServiceRecord[];
  endpoints: Endpoint[];
  unreachable?: string[];
  current: Route[];
  /** `kind instance reason`, in plan order. */
  actions: string[];
  table: Route[];
  changed: boolean;
}

const cases: Case[] = [
  { name: 'nothing desired, nothing served', services: [], endpoints: [], current: [], actions: [], table: [], changed: false },
  {
    name: 'a route turning to TLS (SPEC §3.12) changes the table with no backend action',
    services: [svc('web', { route: { host: 'web.localhost', path: '/', tls: 'acme' } })],
    endpoints: [ep('web', 'w1')],
    current: [route('web', ['w1'])],
    actions: [],
    table: [{ ...route('web', ['w1']), tls: 'acme' }],
    changed: true,
  },
  {
    name: 'a new routed service with no ready instance gets an empty route (503), no action',
    services: [svc('web')],
    endpoints: [],
    current: [],
    actions: [],
    table: [route('web', [])],
    changed: true,
  },
  {
    name: 'ready instances are added, sorted by instance',
    services: [svc('web')],
    endpoints: [ep('web', 'w2'), ep('web', 'w1')],
    current: [route('web', [])],
    actions: ['route.add w1 instance-ready', 'route.add w2 instance-ready'],
    table: [route('web', ['w1', 'w2'])],
    changed: true,
  },
  {
    name: 'converged: no action, unchanged',
    services: [svc('web')],
    endpoints: [ep('web', 'w1'), ep('web', 'w2')],
    current: [route('web', ['w1', 'w2'])],
    actions: [],
    table: [route('web', ['w1', 'w2'])],
    changed: false,
  },
  {
    name: 'an instance no longer reported ready is removed',
    services: [svc('web')],
    endpoints: [ep('web', 'w2')],
    current: [route('web', ['w1', 'w2'])],
    actions: ['route.remove w1 instance-not-ready'],
    table: [route('web', ['w2'])],
    changed: true,
  },
  {
    name: "an unreachable node's instances are removed (and never added)",
    services: [svc('web')],
    endpoints: [ep('web', 'w1'), ep('web', 'w2', 'far'), ep('web', 'w3', 'far')],
    unreachable: ['far'],
    current: [route('web', ['w1', 'w2'])],
    actions: ['route.remove w2 node-unreachable'],
    table: [route('web', ['w1'])],
    changed: true,
  },
  {
    name: 'an instance ready at another address: old address removed, new added',
    services: [svc('web')],
    endpoints: [ep('web', 'w1', 'n1', '127.0.0.1:9999')],
    current: [route('web', ['w1'])],
    actions: ['route.remove w1 endpoint-changed', 'route.add w1 instance-ready'],
    table: [{ service: 'web', host: 'web.localhost', path: '/', backends: [{ instance: 'w1', address: '127.0.0.1:9999' }] }],
    changed: true,
  },
  {
    name: 'a deleted service loses its route and every backend',
    services: [svc('web', {}, true)],
    endpoints: [ep('web', 'w1')],
    current: [route('web', ['w1'])],
    actions: ['route.remove w1 service-deleted'],
    table: [],
    changed: true,
  },
  {
    name: 'a service gone from the desired state counts as deleted',
    services: [],
    endpoints: [],
    current: [route('web', ['w1'])],
    actions: ['route.remove w1 service-deleted'],
    table: [],
    changed: true,
  },
  {
    name: 'a service that drops its route loses its backends',
    services: [svc('web', { route: undefined })],
    endpoints: [ep('web', 'w1')],
    current: [route('web', ['w1'])],
    actions: ['route.remove w1 service-has-no-route'],
    table: [],
    changed: true,
  },
  {
    name: 'a service without a route or a port is never routed',
    services: [svc('worker', { route: undefined }), svc('web', { port: undefined })],
    endpoints: [ep('worker', 'w1'), ep('web', 'w2')],
    current: [],
    actions: [],
    table: [],
    changed: false,
  },
  {
    name: 'a moved path changes the table without a backend action',
    services: [svc('web', { route: { host: 'web.localhost', path: '/v2' } })],
    endpoints: [ep('web', 'w1')],
    current: [route('web', ['w1'])],
    actions: [],
    table: [route('web', ['w1'], 'web.localhost', '/v2')],
    changed: true,
  },
  {
    name: 'several services: removals before additions; routes sorted by host and path',
    services: [svc('web'), svc('api', { route: { host: 'web.localhost', path: '/api' } })],
    endpoints: [ep('web', 'w2'), ep('api', 'a1')],
    current: [route('web', ['w1'])],
    actions: ['route.remove w1 instance-not-ready', 'route.add w2 instance-ready', 'route.add a1 instance-ready'],
    table: [route('web', ['w2']), route('api', ['a1'], 'web.localhost', '/api')],
    changed: true,
  },
];

describe('planRoutes', () => {
  it.each(cases)('$name', (c) => {
    const input = { services: c.services, endpoints: c.endpoints, reachable: (n: string) => !(c.unreachable ?? []).includes(n), current: c.current };
    const plan = planRoutes(input);
    expect(plan.actions.map((a) => `${a.kind} ${a.instance} ${a.reason}`)).toEqual(c.actions);
    expect(plan.table).toEqual(c.table);
    expect(plan.changed).toBe(c.changed);
    // Every action names its service and a key; applying the plan and planning again converges.
    for (const a of plan.actions) expect(a.key).toBe(`${a.service}/${a.instance}`);
    const again = planRoutes({ ...input, current: plan.table });
    expect(again).toEqual({ actions: [], table: plan.table, changed: false });
  });
});
