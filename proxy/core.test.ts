import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { silentLogger } from '../core/log.js';
import { ProxyCore, undiciPool } from './core.js';
import type { Route } from './table.js';
import { PROXY_DEFAULTS } from './types.js';

const route = (service: string, addresses: string[], path = '/'): Route => ({
  service,
  host: 'app.test',
  path,
  backends: addresses.map((address, i) => ({ instance: `${service}-${i}`, address })),
});

function core(routes: Route[]) {
  const clock = new ManualClock();
  const c = new ProxyCore({ log: silentLogger(), clock });
  c.setRoutes(routes);
  const current = () => {
    const m = c.table.match('app.test', '/');
    if (m.kind !== 'route') throw new Error('no route');
    return m.route;
  };
  return { c, clock, current };
}

describe('ProxyCore backend choice', () => {
  it('round-robins per route and keeps its position across table swaps', () => {
    const { c, current } = core([route('web', ['a', 'b', 'c'])]);
    expect([c.first(current()), c.first(current())]).toEqual(['a', 'b']);
    c.setRoutes([route('web', ['a', 'b', 'c'])]); // same route again: goes on where it was
    expect([c.first(current()), c.first(current())]).toEqual(['c', 'a']);
    c.setRoutes([route('web', ['a', 'c'])]); // shrunk: position 1 is now c
    expect(c.first(current())).toBe('c');
    c.setRoutes([route('web', [])]);
    expect(c.first(current())).toBeUndefined();
  });

  it('skips a backend that failed to connect while another is left, for a while', () => {
    const { c, clock, current } = core([route('web', ['a', 'b'])]);
    c.connectFailed('a');
    expect([c.first(current()), c.first(current()), c.first(current())]).toEqual(['b', 'b', 'b']);
    clock.advance(PROXY_DEFAULTS.failedBackendSkipMs);
    expect([c.first(current()), c.first(current())]).toEqual(['b', 'a']);
  });

  it('uses a failing backend when it is the only one', () => {
    const { c, current } = core([route('web', ['a', 'b'])]);
    c.connectFailed('a');
    c.connectFailed('b');
    expect([c.first(current()), c.first(current())]).toEqual(['a', 'b']);
  });

  it('retries on the next untried backend of the current table, preferring healthy ones', () => {
    const { c } = core([route('web', ['a', 'b', 'c', 'd'])]);
    expect(c.next('app.test', '/', new Set(['b']), 'b')?.address).toBe('c');
    expect(c.next('app.test', '/', new Set(['d', 'a']), 'd')?.address).toBe('b');
    c.connectFailed('c');
    expect(c.next('app.test', '/', new Set(['b']), 'b')?.address).toBe('d');
    expect(c.next('app.test', '/', new Set(['a', 'b', 'd']), 'b')?.address).toBe('c');
    expect(c.next('app.test', '/', new Set(['a', 'b', 'c', 'd']), 'a')).toBeUndefined();
    c.setRoutes([route('web', ['a'])]);
    expect(c.next('app.test', '/', new Set(['a']), 'a')).toBeUndefined();
    expect(c.next('other.test', '/', new Set(), 'a')).toBeUndefined();
  });
});

describe('ProxyCore in-flight and drain', () => {
  it('counts per backend and resolves drains when the count reaches zero', async () => {
    const { c } = core([]);
    c.acquire('a');
    c.acquire('a');
    let drained = false;
    const p = c.drain('a', 10_000).then(() => (drained = true));
    c.release('a');
    await Promise.resolve();
    expect([c.inflight('a'), drained]).toEqual([1, false]);
    c.release('a');
    await p;
    expect(c.inflight('a')).toBe(0);
  });

  it('resolves a drain after maxMs on the clock and cancels its timer when it drains first', async () => {
    const { c, clock } = core([]);
    c.acquire('a');
    let drained = false;
    const p = c.drain('a', 500).then(() => (drained = true));
    clock.advance(499);
    await Promise.resolve();
    expect(drained).toBe(false);
    clock.advance(1);
    await p;
    expect(c.inflight('a')).toBe(1);
    const q = c.drain('a', 500);
    c.release('a');
    await q;
    expect(clock.pending()).toBe(0);
  });
});

describe("undici's Pool, without undici's index", () => {
  it('leaves fetch, WebSocket and the rest unloaded, and is undici\'s own Pool', () => {
    const require = createRequire(import.meta.url);
    const Pool = undiciPool();
    const index = require.resolve('undici');
    expect(require.cache[index]).toBeUndefined();
    const loaded = Object.keys(require.cache).filter((p) => p.includes('/node_modules/undici/'));
    expect(loaded.length).toBeGreaterThan(0);
    expect(loaded.length).toBeLessThan(40); // the index brings ~110
    expect(typeof new Pool('http://127.0.0.1:9').dispatch).toBe('function');
    expect(Pool).toBe((require('undici') as { Pool: unknown }).Pool);
  });
});
