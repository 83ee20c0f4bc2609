import { describe, expect, it } from 'vitest';
import { aSpec } from '../../test/builders.js';
import { instanceHash } from './instance-hash.js';

describe('instanceHash and secret versions', () => {
  const spec = aSpec({ name: 'web', secrets: ['db-password'] });

  it('is what it was before secrets existed when no version is given, or none', () => {
    expect(instanceHash(spec, {})).toBe(instanceHash(spec));
    expect(instanceHash(spec, undefined)).toBe(instanceHash(spec));
  });

  it('changes with a secret version, and not with the order of the versions', () => {
    const v1 = instanceHash(spec, { 'db-password': 1 });
    expect(v1).not.toBe(instanceHash(spec));
    expect(instanceHash(spec, { 'db-password': 2 })).not.toBe(v1);
    expect(instanceHash(spec, { a: 1, b: 2 })).toBe(instanceHash(spec, { b: 2, a: 1 }));
  });

  it('changes with the volumes, mounts and secrets of the spec', () => {
    const base = instanceHash(spec);
    expect(instanceHash({ ...spec, volumes: { data: '/data' } })).not.toBe(base);
    expect(instanceHash({ ...spec, mounts: [{ host: '/srv', path: '/srv', readOnly: true }] })).not.toBe(base);
    expect(instanceHash({ ...spec, secrets: ['other'] })).not.toBe(base);
    expect(instanceHash({ ...spec, secretEnv: { PW: 'db-password' } })).not.toBe(base);
  });
});
