import { describe, expect, it } from 'vitest';
import { aSpec } from '../test/builders.js';
import type { ServiceRecord } from '../store/types.js';
import { routeConflicts } from './route-conflicts.js';

const rec = (name: string, host: string, path = '/', deletedAt?: string): ServiceRecord => ({
  name,
  revision: 1,
  spec: aSpec({ name, port: 80, route: { host, path } }),
  specHash: 'h',
  createdAt: 't',
  updatedAt: 't',
  ...(deletedAt ? { deletedAt } : {}),
});

describe('routeConflicts', () => {
  it('two services of one apply on the same host and path: an error naming both and the files', () => {
    const errs = routeConflicts(
      [
        { spec: aSpec({ name: 'a', port: 80, route: { host: 'web.localhost', path: '/' } }), file: 'a.toml' },
        { spec: aSpec({ name: 'b', port: 80, route: { host: 'WEB.localhost', path: '/' } }), file: 'b.toml' },
      ],
      [],
    );
    expect(errs).toEqual([expect.stringMatching(/^b\.toml: service "b": route\.host "WEB\.localhost" with path "\/" is already claimed by service "a" \(a\.toml\)/)]);
  });

  it('a stored service holds its route against a new one; a trailing slash is the same path', () => {
    const errs = routeConflicts([{ spec: aSpec({ name: 'b', port: 80, route: { host: 'web.localhost', path: '/api/' } }), file: 'b.toml' }], [rec('a', 'web.localhost', '/api')]);
    expect(errs).toEqual([expect.stringContaining('claimed by service "a" (already applied)')]);
  });

  it('no clash: other paths, a deleted owner, or the same service re-applied (moving its route)', () => {
    expect(
      routeConflicts(
        [
          { spec: aSpec({ name: 'a', port: 80, route: { host: 'web.localhost', path: '/' } }), file: 'a.toml' },
          { spec: aSpec({ name: 'b', port: 80, route: { host: 'web.localhost', path: '/api' } }), file: 'b.toml' },
          { spec: aSpec({ name: 'c', port: 80, route: { host: 'old.localhost', path: '/' } }), file: 'c.toml' },
        ],
        [rec('a', 'web.localhost'), rec('gone', 'old.localhost', '/', 't'), rec('d', 'other.localhost')],
      ),
    ).toEqual([]);
  });
});
