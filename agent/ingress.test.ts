import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock, systemClock } from '../core/clock.js';
import { silentLogger } from '../core/log.js';
import { isOrcaError } from '../core/errors.js';
import { memoryStore } from '../store/index.js';
import type { Store } from '../store/types.js';
import { Proxy } from '../proxy/proxy.js';
import { refusedAddress, send, testScope } from '../proxy/test-support.js';
import type { RouteEntry } from '../protocol/routes.js';
import { NodeIngress } from './ingress.js';

const { defer, backend } = testScope(afterEach);

/** One GET to ip:port with a Host header (any 127/8 address). */
function get(ip: string, port: number, host: string, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: ip, port, path: '/', method, headers: { host, 'content-length': 4 }, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end('body');
  });
}

async function openStore(): Promise<Store> {
  const store = memoryStore();
  await store.open();
  return store;
}

/** A node ingress for node n2 on 127.0.0.1:0; `gateway` says where the cluster network's gateway is. */
async function ingressFor(o: { store?: Store; gateway?: () => Promise<string | null>; listen?: { host: string; port: number }; clock?: ManualClock } = {}) {
  const store = o.store ?? (await openStore());
  const proxy = new Proxy({ log: silentLogger(), clock: systemClock });
  const ingress = new NodeIngress({
    node: 'n2',
    clock: o.clock ?? new ManualClock(),
    log: silentLogger(),
    store,
    proxy,
    listen: o.listen ?? { host: '127.0.0.1', port: 0 },
    gateway: o.gateway ?? (async () => null),
    gatewayRecheckMs: 30_000,
  });
  defer(() => ingress.stop());
  return { ingress, proxy, store };
}

const route = (backends: RouteEntry['backends'], service = 'web'): RouteEntry => ({ service, host: `${service}.test`, path: '/', backends });

describe('NodeIngress: the node’s own proxy', () => {
  it('serves the pushed table, and its own instances follow the node’s state at once', async () => {
    const [a, b] = await Promise.all([backend('a'), backend('b')]);
    const { ingress, proxy } = await ingressFor();
    await ingress.start();
    const port = ingress.address!.port;
    ingress.setTable([route([{ instance: 'w0', address: a.address, node: 'n1' }, { instance: 'w1', address: b.address, node: 'n2' }])]);
    // The push says w1 (this node's) is ready, but the node does not know it ready yet: not routed.
    expect(proxy.routes()[0]!.backends.map((x) => x.instance)).toEqual(['w0']);
    ingress.localChanged([{ service: 'web', instance: 'w1', address: b.address }]);
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add((await send(port, '/', { host: 'web.test' })).body.split(' ')[0]!);
    expect(seen).toEqual(new Set(['a', 'b']));
    // w1 dies: out of the node's table before localChanged returns, whatever the last push said.
    ingress.localChanged([]);
    expect(proxy.routes()[0]!.backends.map((x) => x.instance)).toEqual(['w0']);
    const hitsB = b.hits;
    for (let i = 0; i < 4; i++) expect((await send(port, '/', { host: 'web.test' })).body).toMatch(/^a /);
    expect(b.hits).toBe(hitsB);
  });

  it('retries a remote endpoint that refuses the connection on another one, for any method (nothing was sent)', async () => {
    const live = await backend('live');
    const dead = await refusedAddress();
    const { ingress } = await ingressFor();
    await ingress.start();
    const port = ingress.address!.port;
    // A remote node's instance died and the control plane is gone: the table still lists it.
    ingress.setTable([route([{ instance: 'w0', address: dead, node: 'n1' }, { instance: 'w3', address: live.address, node: 'n3' }])]);
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await get('127.0.0.1', port, 'web.test', i % 2 ? 'POST' : 'GET')).status);
    expect(statuses).toEqual(Array(20).fill(200));
    expect(live.hits).toBe(20);
  });

  it('keeps serving its last table across a restart while no table comes (it is kept in the agent’s store)', async () => {
    const a = await backend('a');
    const store = await openStore();
    const first = await ingressFor({ store });
    await first.ingress.start();
    first.ingress.setTable([route([{ instance: 'w0', address: a.address, node: 'n1' }])]);
    await first.ingress.stop();
    const again = await ingressFor({ store });
    await again.ingress.start();
    expect((await send(again.ingress.address!.port, '/', { host: 'web.test' })).body).toMatch(/^a /);
  });

  it('ignores a cached table that is not valid', async () => {
    const store = await openStore();
    await store.putKv('routes', [{ service: 'web', host: '', path: '/', backends: 'nope' }]);
    const { ingress, proxy } = await ingressFor({ store });
    await ingress.start();
    expect(proxy.routes()).toEqual([]);
  });

  it('refuses to start when it cannot listen, naming the flag', async () => {
    const taken = await ingressFor();
    await taken.ingress.start();
    const { ingress } = await ingressFor({ listen: { host: '127.0.0.1', port: taken.ingress.address!.port } });
    const err = await ingress.start().then(() => null, (e: unknown) => e);
    expect(isOrcaError(err, 'ORCA_USAGE')).toBe(true);
    expect((err as Error).message).toMatch(/--proxy-listen 127\.0\.0\.1:\d+: cannot listen: .*EADDRINUSE/);
  });

  it('listens on the cluster network gateway at the same port once there is one, moves with it, and serves on when it cannot', async () => {
    const a = await backend('a');
    const clock = new ManualClock();
    let gateway: string | null = null;
    const { ingress } = await ingressFor({ clock, gateway: async () => gateway });
    await ingress.start();
    const port = ingress.address!.port;
    ingress.setTable([route([{ instance: 'w0', address: a.address, node: 'n1' }])]);
    expect(ingress.gatewayAddress).toBeNull();
    // The node's first instance made the network: the next change looks at once.
    gateway = '127.0.0.3';
    ingress.localChanged([]);
    await waitFor(() => ingress.gatewayAddress === `127.0.0.3:${port}`);
    expect((await get('127.0.0.3', port, 'web.test')).body).toMatch(/^a /);
    // Made again on another subnet: seen at the next recheck, the old address closed.
    gateway = '127.0.0.4';
    clock.advance(30_000);
    await waitFor(() => ingress.gatewayAddress === `127.0.0.4:${port}`);
    expect((await get('127.0.0.4', port, 'web.test')).body).toMatch(/^a /);
    await expect(get('127.0.0.3', port, 'web.test')).rejects.toThrow(/ECONNREFUSED/);
    // An address the host does not have: logged, and the main listener serves on.
    gateway = '203.0.113.77';
    clock.advance(30_000);
    await waitFor(() => ingress.gatewayAddress === null);
    expect((await send(port, '/', { host: 'web.test' })).body).toMatch(/^a /);
  });
});

async function waitFor(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (cond()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error('condition not met');
}
