import { describe, expect, it } from 'vitest';
import { hostFromHeader, type Route, RouteTable } from './table.js';

const route = (service: string, host: string, path = '/'): Route => ({ service, host, path, backends: [] });

const table = new RouteTable([
  route('www', 'example.com'),
  route('api', 'example.com', '/api'),
  route('api-v2', 'example.com', '/api/v2/'),
  route('wild', '*.example.com'),
  route('wild-admin', '*.example.com', '/admin'),
  route('deep-wild', '*.eu.example.com'),
  route('exact-sub', 'shop.example.com', '/shop'),
  route('ipv6', '[::1]'),
  route('first', 'dup.test', '/x'),
  route('second', 'dup.test', '/x'),
]);

const serviceOf = (host: string | undefined, path: string) => {
  const m = table.match(host, path);
  return m.kind === 'route' ? m.route.service : m.kind;
};

describe('RouteTable.match', () => {
  it.each([
    // exact host, longest prefix on segment boundaries
    ['example.com', '/', 'www'],
    ['example.com', '/index.html', 'www'],
    ['example.com', '/api', 'api'],
    ['example.com', '/api/', 'api'],
    ['example.com', '/api/users', 'api'],
    ['example.com', '/apix', 'www'],
    ['example.com', '/api?x=1', 'api'],
    ['example.com', '/api/v2', 'api-v2'],
    ['example.com', '/api/v2/users', 'api-v2'],
    ['example.com', '/api/v20', 'api'],
    // Host header forms: port, case, trailing dot
    ['example.com:8080', '/api', 'api'],
    ['EXAMPLE.Com', '/api', 'api'],
    ['example.com.', '/', 'www'],
    ['[::1]:8080', '/', 'ipv6'],
    // wildcards: one or more labels, never the bare domain, most specific wins
    ['a.example.com', '/', 'wild'],
    ['a.b.example.com', '/x', 'wild'],
    ['A.Example.COM:80', '/admin/users', 'wild-admin'],
    ['x.eu.example.com', '/', 'deep-wild'],
    ['eu.example.com', '/', 'wild'],
    ['notexample.com', '/', 'no-host'],
    // an exact host beats a wildcard, and its paths do not fall through to it
    ['shop.example.com', '/shop/cart', 'exact-sub'],
    ['shop.example.com', '/', 'no-path'],
    // unknown or missing host
    ['other.test', '/', 'no-host'],
    ['', '/', 'no-host'],
    [undefined, '/', 'no-host'],
    // same host and path twice: the first given wins
    ['dup.test', '/x/y', 'first'],
  ])('%s %s → %s', (host, path, expected) => {
    expect(serviceOf(host, path)).toBe(expected);
  });

  it('lets several services share a host on different paths', () => {
    const t = new RouteTable([route('a', 'h.test', '/a'), route('b', 'h.test', '/b')]);
    const s = (p: string) => {
      const m = t.match('h.test', p);
      return m.kind === 'route' ? m.route.service : m.kind;
    };
    expect([s('/a/1'), s('/b'), s('/c'), s('/')]).toEqual(['a', 'b', 'no-path', 'no-path']);
  });

  it('returns the routes it was built from, in order, with the same objects', () => {
    const rs = [route('a', 'a.test'), route('b', '*.b.test', '/x')];
    const t = new RouteTable(rs);
    expect(t.routes()).toEqual(rs);
    const m = t.match('a.test', '/');
    expect(m.kind === 'route' && m.route).toBe(rs[0]);
  });

  it('an empty table matches nothing', () => {
    expect(new RouteTable([]).match('example.com', '/')).toEqual({ kind: 'no-host' });
  });
});

describe('hostFromHeader', () => {
  it.each([
    ['Example.COM:443', 'example.com'],
    ['[::1]:80', '[::1]'],
    ['[::1]', '[::1]'],
    ['a.b.', 'a.b'],
    ['', ''],
    [undefined, ''],
  ])('%s → %s', (header, host) => {
    expect(hostFromHeader(header)).toBe(host);
  });
});
