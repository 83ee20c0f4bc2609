import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { OrcaError, type ErrorCode } from '../core/errors.js';
import { decodePathParam, headerProblem, HTTP_STATUS_OF, HttpError, parseTarget } from './http-util.js';

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

describe('error code → HTTP status: one table, used for every error that reaches the API', () => {
  it.each<[ErrorCode, number]>([
    ['ORCA_USAGE', 400],
    ['ORCA_MANIFEST_INVALID', 400],
    ['ORCA_UNAUTHORIZED', 401],
    ['ORCA_NOT_FOUND', 404],
    ['ORCA_CONFLICT', 409],
    ['ORCA_STORE_UNAVAILABLE', 503],
    ['ORCA_RUNTIME_UNAVAILABLE', 503],
    ['ORCA_SERVER_UNREACHABLE', 503],
    ['ORCA_RUNTIME_FAILED', 502],
    ['ORCA_TIMEOUT', 504],
    ['ORCA_INTERNAL', 500],
  ])('an OrcaError %s is answered %i, with its code and message', (code, status) => {
    const answer = HttpError.from(new OrcaError(code, 'what went wrong'));
    expect([answer.status, answer.code, answer.message]).toEqual([status, code, 'what went wrong']);
    expect(HttpError.of(code, 'm').status).toBe(status);
  });

  it('every code has a status between 400 and 599', () => {
    for (const status of Object.values(HTTP_STATUS_OF)) expect(status >= 400 && status < 600).toBe(true);
  });

  it('an HttpError is answered as it is; anything else is a 500 ORCA_INTERNAL', () => {
    const explicit = new HttpError(405, 'ORCA_USAGE', 'GET not allowed');
    expect(HttpError.from(explicit)).toBe(explicit);
    const bug = HttpError.from(new TypeError('x is undefined'));
    expect([bug.status, bug.code, bug.message]).toEqual([500, 'ORCA_INTERNAL', 'x is undefined']);
    expect(HttpError.from('a string').status).toBe(500);
  });
});
