import { describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { silentLogger } from '../core/log.js';
import type { EventRecord, ServiceRecord } from '../store/types.js';
import { aSpec } from '../test/builders.js';
import { planRoutes, RouteReconciler, type Endpoint } from './routes.js';
import type { Route } from '../proxy/table.js';

const svc = (name: string, over: Partial<ServiceRecord['spec']> = {}, deleted = false): ServiceRecord => ({
  name,
  revision: 1,
  spec: aSpec({ name, port: 80, route: { host: `${name}.localhost`, path: '/' }, ...over }),
  specHash: 'h',
  createdAt: '',
  updatedAt: '',
  ...(deleted ? { deletedAt: 'x' } : {}),
});
const ep = (service: string, instance: string, node = 'n1'): Endpoint => ({ service, instance, address: `127.0.0.1:${instance.length}000`, node });

describe('planRoutes', () => {
  it('routes each routed service to its ready instances on reachable nodes', () => {
    const routes = planRoutes(
      [svc('web'), svc('api', { route: { host: 'web.localhost', path: '/api' } }), svc('worker', { route: undefined }), svc('old', {}, true)],
      [ep('web', 'w2'), ep('web', 'w1'), ep('api', 'a1'), ep('worker', 'k1'), ep('web', 'w3', 'far')],
      (n) => n !== 'far',
    );
    expect(routes).toEqual([
      { service: 'web', host: 'web.localhost', path: '/', backends: [{ instance: 'w1', address: '127.0.0.1:2000' }, { instance: 'w2', address: '127.0.0.1:2000' }] },
      { service: 'api', host: 'web.localhost', path: '/api', backends: [{ instance: 'a1', address: '127.0.0.1:2000' }] },
    ].sort((a, b) => a.host.localeCompare(b.host) || a.path.localeCompare(b.path)));
  });

  it('keeps a route with no backends (the proxy answers 503)', () => {
    expect(planRoutes([svc('web')], [], () => true)).toEqual([{ service: 'web', host: 'web.localhost', path: '/', backends: [] }]);
  });
});

describe('RouteReconciler', () => {
  function setup() {
    const clock = new ManualClock();
    let endpoints: Endpoint[] = [];
    const applied: Route[][] = [];
    const events: EventRecord[] = [];
    const r = new RouteReconciler({ clock, log: silentLogger(), apply: (t) => applied.push(t), endpoints: () => endpoints, reachable: () => true, record: (e) => events.push(e) });
    return { clock, r, applied, events, set: (e: Endpoint[]) => (endpoints = e) };
  }

  it('applies on change only, logging every backend added or removed with a reason', () => {
    const { r, applied, events, set, clock } = setup();
    set([ep('web', 'w1')]);
    r.setServices([svc('web')]);
    expect(applied).toHaveLength(1);
    r.reconcileNow();
    expect(applied).toHaveLength(1); // nothing changed
    set([]);
    r.poke();
    r.poke();
    clock.advance(0);
    expect(applied).toHaveLength(2);
    expect(applied[1]![0]!.backends).toEqual([]);
    expect(events.map((e) => `${e.action} ${e.instance} ${e.reason}`)).toEqual(['route.add w1 instance-ready', 'route.remove w1 instance-not-ready']);
    r.setServices([]);
    expect(applied.at(-1)).toEqual([]);
  });
});
