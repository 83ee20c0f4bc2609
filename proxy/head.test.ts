import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseRequestHead, validAuthority, validEscapes } from './head.js';

const LIMITS = { maxHeaderCount: 100 };
const parse = (url: string, raw: string[] = ['Host', 'app.test']) => parseRequestHead(url, raw, '127.0.0.1', false, LIMITS);

describe('parseRequestHead', () => {
  it('accepts origin-form and keeps the target as it is', () => {
    const r = parse('/a/b%20c?q=%2F&x');
    expect(r).toMatchObject({ ok: true, path: '/a/b%20c?q=%2F&x' });
    expect(r.ok && r.fwd.host).toBe('app.test');
  });

  it('routes absolute-form by its authority, which replaces Host upstream', () => {
    const r = parse('http://Other.test:8080/x?y', ['Host', 'app.test', 'Accept', '*/*']);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.path).toBe('/x?y');
    expect(r.fwd.host).toBe('Other.test:8080');
    expect(r.fwd.headers.slice(0, 4)).toEqual(['Host', 'Other.test:8080', 'Accept', '*/*']);
    expect(r.fwd.headers).toContain('x-forwarded-host');
    expect(r.fwd.headers[r.fwd.headers.indexOf('x-forwarded-host') + 1]).toBe('Other.test:8080');
    expect(parse('HTTPS://a.test')).toMatchObject({ ok: true, path: '/' });
    expect(parse('http://a.test?q')).toMatchObject({ ok: true, path: '/?q' });
  });

  it('answers 400 for absolute-form with a bad port, userinfo or no host', () => {
    for (const url of ['http://a:99999/', 'http://a:123456/', 'http://a:8x/', 'http://user@a/', 'http:///x', 'http://[::1/']) {
      expect(parse(url)).toEqual({ ok: false, status: 400, error: 'bad host or port in request target' });
    }
  });

  it('answers 400 for targets in other forms', () => {
    for (const url of ['*', 'a.test:443', 'ftp://a/', 'x']) expect(parse(url)).toMatchObject({ ok: false, status: 400, error: 'bad request target' });
  });

  it('answers 400 for bad percent-encoding', () => {
    for (const url of ['/%zz', '/a%', '/a%2', '/?q=%G0', 'http://a/%x1']) {
      expect(parse(url)).toEqual({ ok: false, status: 400, error: 'bad percent-encoding in request target' });
    }
  });

  it('answers 400 for more than one Host, or a bad one', () => {
    expect(parse('/', ['Host', 'a.test', 'host', 'b.test'])).toEqual({ ok: false, status: 400, error: 'more than one Host header' });
    for (const host of ['a b', 'a:99999', 'a:-1', 'u@a', 'a/b', '[zz]']) {
      expect(parse('/', ['Host', host])).toEqual({ ok: false, status: 400, error: 'bad Host header' });
    }
  });

  it('answers 431 for more header fields than allowed', () => {
    const raw = Array.from({ length: 101 }, (_, i) => [`x-${i}`, 'v']).flat();
    expect(parse('/', raw)).toEqual({ ok: false, status: 431, error: 'too many header fields' });
    expect(parse('/', raw.slice(0, 200)).ok).toBe(true);
  });

  it('never throws, whatever the target and headers (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), fc.array(fc.string({ maxLength: 20 }), { maxLength: 12 }), (url, raw) => {
        const r = parseRequestHead(url, raw, '::1', true, LIMITS);
        expect(r.ok ? r.path.startsWith('/') : [400, 431].includes(r.status)).toBe(true);
      }),
      { numRuns: 2_000 },
    );
  });
});

describe('validAuthority', () => {
  it('accepts names, IPv4, bracketed IPv6 and ports 0–65535', () => {
    for (const a of ['a', 'app.test', 'APP.test.', '127.0.0.1:80', '[::1]', '[::1]:65535', 'a:', 'a:0', 'xn--d1acufc.xn--p1ai', 'a%41b']) {
      expect(validAuthority(a), a).toBe(true);
    }
  });

  it('refuses what is not an authority', () => {
    for (const a of ['', ':80', 'a:65536', 'a:000001', '[]', '[::1]x', '[::1', 'a b', 'a@b', 'a%4', 'ä.test']) {
      expect(validAuthority(a), a).toBe(false);
    }
  });
});

describe('validEscapes', () => {
  it('wants two hex digits after every %', () => {
    expect(validEscapes('/a%2Fb%c3%A9')).toBe(true);
    expect(validEscapes('/a%2')).toBe(false);
    expect(validEscapes('%%41')).toBe(false);
  });
});
