import { describe, expect, it } from 'vitest';
import { hostPathAllowed } from '../../core/host-paths.js';
import type { MountSpec } from '../../runtime/types.js';
import { isHostPathRefused, resolveHostMounts } from './host-mounts.js';

describe('hostPathAllowed (lexical, after normalisation)', () => {
  const cases: Array<[string, string[], boolean]> = [
    ['/srv/shared', ['/srv'], true],
    ['/srv', ['/srv'], true],
    ['/srv/a/b', ['/srv/'], true],
    ['/srvx', ['/srv'], false],
    ['/srv/../etc', ['/srv'], false],
    ['/srv/a/../../etc/passwd', ['/srv'], false],
    ['/srv/./a', ['/srv'], true],
    ['/etc', [], false],
    ['srv/a', ['/srv'], false],
    ['/srv/a', ['srv'], false],
    ['/anything', ['/'], true],
    ['/data/x', ['/srv', '/data'], true],
  ];
  it.each(cases)('%s under %j → %s', (path, allowed, want) => {
    expect(hostPathAllowed(path, allowed)).toBe(want);
  });
});

describe('resolveHostMounts (the agent, before a create)', () => {
  /** A host filesystem: a symlink is an entry pointing elsewhere; a missing path throws as realpath does. */
  const fs: Record<string, string> = { '/srv': '/srv', '/srv/shared': '/srv/shared', '/srv/link': '/etc', '/srv/inside': '/srv/shared', '/home/x': '/home/x' };
  const realpath = async (p: string) => {
    const r = fs[p];
    if (r === undefined) throw Object.assign(new Error(`ENOENT ${p}`), { code: 'ENOENT' });
    return r;
  };
  const bind = (source: string): MountSpec => ({ type: 'bind', source, target: '/m', readOnly: true });
  const vol: MountSpec = { type: 'volume', source: 'orca-c-db-data-0', target: '/data', readOnly: false };

  it('passes volumes and resolves allowed host paths (a symlink inside that stays inside is fine)', async () => {
    expect(await resolveHostMounts([vol, bind('/srv/shared'), bind('/srv/inside')], ['/srv'], realpath)).toEqual([vol, bind('/srv/shared'), bind('/srv/shared')]);
    expect(await resolveHostMounts([vol], [], realpath)).toEqual([vol]);
  });

  it.each([
    ['/home/x', ['/srv'], 'not under an allowed directory'],
    ['/srv/../home/x', ['/srv'], 'not under an allowed directory'],
    ['/srv/link', ['/srv'], 'resolves to /etc, outside the allowed directories'],
    ['/srv/missing', ['/srv'], 'does not exist on this node'],
    ['/srv/shared', [], 'allows no host paths'],
  ])('refuses %s with %j: %s', async (path, allowed, why) => {
    const err = await resolveHostMounts([bind(path)], allowed, realpath).catch((e: unknown) => e);
    expect(isHostPathRefused(err)).toBe(true);
    expect((err as Error).message).toContain(why);
    expect((err as Error).message).toContain(path);
  });
});
