import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodePathParam, headerProblem, parseTarget } from './http-util.js';

describe('request targets are parsed into results, never thrown', () => {
  it('origin-form and absolute-form targets', () => {
    const t = parseTarget('/v1/status?service=web');
    expect(t.ok && [t.value.pathname, t.value.searchParams.get('service')]).toEqual(['/v1/status', 'web']);
    const a = parseTarget('http://a:6880/v1/status');
    expect(a.ok && a.value.pathname).toBe('/v1/status');
  });

  it.each([
    ['http://a:99999/', /malformed request target/],
    ['http://[::1/', /malformed request target/],
    ['*', /expected a path/],
    ['', /expected a path/],
    ['foo/bar', /expected a path/],
    ['/'.repeat(9000), /longer than/],
  ])('%j is an error', (raw, msg) => {
    const r = parseTarget(raw);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors).toMatch(msg);
  });

  it('no string makes parseTarget or decodePathParam throw', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.constantFrom('http://a:99999/', '%E0%A4%A', '%', '%zz')), (s) => {
        parseTarget(s);
        parseTarget('/' + s);
        parseTarget('http://' + s);
        decodePathParam(s);
      }),
      { numRuns: 2000 },
    );
  });

  it('bad percent-encoding is an error that quotes a short excerpt', () => {
    const r = decodePathParam('%E0%A4%A');
    expect(r).toEqual({ ok: false, errors: 'bad percent-encoding in "%E0%A4%A"' });
    expect(decodePathParam('we%20b')).toEqual({ ok: true, value: 'we b' });
  });

  it('duplicate Host or Authorization headers are a problem; one of each is not', () => {
    expect(headerProblem({ rawHeaders: ['Host', 'a', 'host', 'b'] })).toBe('duplicate Host header');
    expect(headerProblem({ rawHeaders: ['Authorization', 'Bearer x', 'authorization', 'Bearer y'] })).toBe('duplicate Authorization header');
    expect(headerProblem({ rawHeaders: ['Host', 'a', 'Authorization', 'Bearer x', 'Accept', '*/*'] })).toBeNull();
  });
});
