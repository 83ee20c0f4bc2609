import { describe, expect, it } from 'vitest';
import { ManualClock, flushMicrotasks } from '../../core/clock.js';
import { silentLogger } from '../../core/log.js';
import type { EventRecord, ServiceRecord } from '../../store/types.js';
import type { Route } from '../../proxy/table.js';
import { aSpec } from '../../test/builders.js';
import { Controller } from '../controller.js';
import { RouteExecutor } from './executor.js';
import type { Endpoint } from './planner.js';
import { ROUTE_TABLE_KEY, RouteReconciler } from './reconciler.js';

const svc = (name: string): ServiceRecord => ({
  name,
  revision: 1,
  spec: aSpec({ name, port: 80, route: { host: `${name}.localhost`, path: '/' } }),
  specHash: 'h',
  createdAt: '',
  updatedAt: '',
});
const ep = (instance: string, node = 'n1'): Endpoint => ({ service: 'web', instance, address: `127.0.0.1:${1000 + instance.length}`, node });

function setup(o: { failSwaps?: number } = {}) {
  const clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z'));
  const state = { services: [] as ServiceRecord[], endpoints: [] as Endpoint[], unreachable: new Set<string>(), table: [] as Route[] };
  let failSwaps = o.failSwaps ?? 0;
  let swaps = 0;
  const events: EventRecord[] = [];
  const executor = new RouteExecutor({
    clock,
    log: silentLogger(),
    apply: (t) => {
      swaps++;
      if (failSwaps > 0) {
        failSwaps--;
        throw new Error('swap refused');
      }
      state.table = t;
    },
    record: (e) => events.push(e),
  });
  const reconciler = new RouteReconciler({
    desired: () => state.services,
    endpoints: () => state.endpoints,
    reachable: (n) => !state.unreachable.has(n),
    current: () => state.table,
    executor,
  });
  const controller = new Controller({ reconciler, clock, log: silentLogger(), resyncMs: 30_000, retry: { initialMs: 100, maxMs: 1000 } });
  const ac = new AbortController();
  controller.start(ac.signal);
  const backends = () => state.table.flatMap((r) => r.backends.map((b) => b.instance));
  return { clock, state, events, controller, backends, swaps: () => swaps, trigger: () => controller.trigger(ROUTE_TABLE_KEY), stop: () => ac.abort() };
}

const lines = (events: EventRecord[]) => events.map((e) => `${e.action} ${e.instance} ${e.reason} ${e.outcome}`);

describe('RouteReconciler under its Controller', () => {
  it('swaps the table before trigger returns, only on change, recording every backend change with its reason', async () => {
    const t = setup();
    t.state.services = [svc('web')];
    t.state.endpoints = [ep('w1'), ep('w2')];
    t.trigger();
    // No clock advance, no microtask: a dead instance must leave at once.
    expect(t.backends()).toEqual(['w1', 'w2']);
    await t.controller.idle();
    const swaps = t.swaps();
    t.trigger();
    await t.controller.idle();
    expect(t.swaps()).toBe(swaps); // nothing changed, nothing swapped or recorded
    t.state.endpoints = [ep('w2')];
    t.trigger();
    expect(t.backends()).toEqual(['w2']);
    await t.controller.idle();
    t.state.unreachable.add('n1');
    t.trigger();
    await t.controller.idle();
    t.state.services = [];
    t.trigger();
    await t.controller.idle();
    expect(t.state.table).toEqual([]);
    expect(lines(t.events)).toEqual(['route.add w1 instance-ready ok', 'route.add w2 instance-ready ok', 'route.remove w1 instance-not-ready ok', 'route.remove w2 node-unreachable ok']);
    // The same record as a container action's, from the server (node null).
    expect(t.events[0]).toEqual({ time: '2026-01-01T00:00:00.000Z', reconciler: 'route', service: 'web', instance: 'w1', node: null, action: 'route.add', reason: 'instance-ready', outcome: 'ok', durationMs: 0 });
    t.stop();
  });

  it('catches a change nobody triggered on the periodic resync', async () => {
    const t = setup();
    t.state.services = [svc('web')];
    t.state.endpoints = [ep('w1')];
    await t.clock.advanceAsync(29_000, 10);
    expect(t.backends()).toEqual([]);
    await t.clock.advanceAsync(1_000, 10);
    await flushMicrotasks(20);
    await t.controller.idle();
    expect(t.backends()).toEqual(['w1']);
    t.stop();
  });

  it('records a failed swap as an error against each action and retries it with backoff', async () => {
    const t = setup({ failSwaps: 1 });
    t.state.services = [svc('web')];
    t.state.endpoints = [ep('w1')];
    t.trigger();
    await t.controller.idle();
    expect(t.backends()).toEqual([]);
    expect(t.events.map((e) => [e.action, e.outcome, e.message])).toEqual([['route.add', 'error', 'swap refused']]);
    await t.clock.advanceAsync(100, 10);
    await t.controller.idle();
    expect(t.backends()).toEqual(['w1']);
    expect(lines(t.events).at(-1)).toBe('route.add w1 instance-ready ok');
    t.stop();
  });
});
