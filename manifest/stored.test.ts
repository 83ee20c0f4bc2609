import { describe, expect, it } from 'vitest';
import { aSpec } from '../test/builders.js';
import { checkStoredSpec } from './stored.js';
import type { ServiceSpec } from './types.js';

describe('checkStoredSpec: a spec read back from the store, judged by this version', () => {
  it('accepts a valid normalised spec', () => {
    const spec = aSpec({ name: 'web', replicas: 3 });
    expect(checkStoredSpec(spec)).toEqual({ ok: true, spec });
  });

  it('names every bound an older version let through', () => {
    const spec = aSpec({ name: 'web', replicas: 100_000, stopGraceSecs: 1e9, resources: { cpus: 4096 } });
    expect(checkStoredSpec(spec)).toEqual({
      ok: false,
      problems: ['replicas: must be at most 1000', 'stop_grace_secs: must be at most 86400 (one day)', 'resources.cpus: must be at most 1024'],
    });
  });

  it.each<[string, unknown]>([
    ['null', null],
    ['a string', 'web'],
    ['an array', [1, 2]],
    ['a record missing its tables', { name: 'web', image: 'i', replicas: 1 }],
    ['replicas of the wrong type', { ...aSpec({ name: 'web' }), replicas: 'many' }],
  ])('reports %s as a problem, never throws', (_what, spec) => {
    const r = checkStoredSpec(spec);
    expect(r.ok).toBe(false);
    if (!r.ok) for (const p of r.problems) expect(p.length).toBeLessThan(300);
  });

  it('quotes no long input and lists at most a few problems', () => {
    const env = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`K${i}`, 'x'.repeat(100_000)]));
    const r = checkStoredSpec({ ...aSpec({ name: 'web' }), env } as ServiceSpec);
    expect(r).toEqual({ ok: false, problems: [...Array.from({ length: 5 }, (_, i) => `env.K${i}: must be at most 65536 characters`), '… and 15 more'] });
  });
});
