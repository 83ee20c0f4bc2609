import { describe, expect, it } from 'vitest';
import { nodeRouteTable } from './ingress-routes.js';
import type { RouteEntry } from '../protocol/routes.js';
import type { Endpoint } from '../core/endpoint.js';

const b = (instance: string, node: string, address = `${node}:${instance}`) => ({ instance, address, node });
const web = (...backends: RouteEntry['backends']): RouteEntry => ({ service: 'web', host: 'web.test', path: '/', backends });
const api = (...backends: RouteEntry['backends']): RouteEntry => ({ service: 'api', host: 'web.test', path: '/api', backends });
const own = (service: string, instance: string, address = `n2:${instance}`): Endpoint => ({ service, instance, address });
/** A table as "service: instance@address …" lines, for reading. */
const show = (t: ReturnType<typeof nodeRouteTable>) => t.map((r) => `${r.service} ${r.host}${r.path}: ${r.backends.map((x) => `${x.instance}@${x.address}`).join(' ')}`.trimEnd());

describe('nodeRouteTable: the pushed table with this node (n2) from its own state', () => {
  it.each<[string, RouteEntry[], Endpoint[], string[]]>([
    ['the pushed table as is when it agrees with the node', [web(b('w0', 'n1'), b('w1', 'n2'))], [own('web', 'w1', 'n2:w1')], ['web web.test/: w0@n1:w0 w1@n2:w1']],
    ['an own instance that died or went unready leaves at once (still in the pushed table)', [web(b('w0', 'n1'), b('w1', 'n2'))], [], ['web web.test/: w0@n1:w0']],
    ['an own instance that became ready is added at once (not yet in the pushed table)', [web(b('w0', 'n1'))], [own('web', 'w1')], ['web web.test/: w0@n1:w0 w1@n2:w1']],
    ['an own instance at a new address is served there', [web(b('w1', 'n2', 'n2:old'))], [own('web', 'w1', 'n2:new')], ['web web.test/: w1@n2:new']],
    ['remote backends stay whatever the node knows (their nodes report to the control plane)', [web(b('w0', 'n1'), b('w3', 'n3'))], [], ['web web.test/: w0@n1:w0 w3@n3:w3']],
    ['a route with no backend left stays (503, not 404)', [web(b('w1', 'n2'))], [], ['web web.test/:']],
    ['own instances go to every route of their service, not to others', [web(b('w0', 'n1')), api(b('a0', 'n1'))], [own('api', 'a1')], ['web web.test/: w0@n1:w0', 'api web.test/api: a0@n1:a0 a1@n2:a1']],
    ['an own instance of a service without a route is not routed (no host to route it by)', [web(b('w0', 'n1'))], [own('db', 'd0')], ['web web.test/: w0@n1:w0']],
    ['a backend the server could not place (node "") is somebody else’s', [web(b('w9', ''))], [], ['web web.test/: w9@:w9']],
    ['each instance once, own state first', [web(b('w1', 'n1', 'n1:w1'))], [own('web', 'w1')], ['web web.test/: w1@n2:w1']],
    ['backends in instance order', [web(b('w2', 'n1'), b('w0', 'n3'))], [own('web', 'w1')], ['web web.test/: w0@n3:w0 w1@n2:w1 w2@n1:w2']],
    ['no table yet: nothing is routed', [], [own('web', 'w1')], []],
  ])('%s', (_name, table, ownEndpoints, expected) => {
    expect(show(nodeRouteTable(table, 'n2', ownEndpoints))).toEqual(expected);
  });

  it('does not change the pushed table', () => {
    const t = [web(b('w0', 'n1'), b('w1', 'n2'))];
    const copy = structuredClone(t);
    nodeRouteTable(t, 'n2', [own('web', 'w5')]);
    expect(t).toEqual(copy);
  });
});
