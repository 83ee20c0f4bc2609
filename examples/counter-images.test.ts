import { describe, expect, it } from 'vitest';
import { imageDefHash } from '../runtime/image-def.js';
import { counterImageDef, redisImageDef, REDIS_SERVER_PATH, sharedLibraries } from './counter-images.js';

describe('stateful example images (no Docker: ldd and hashing only)', () => {
  it('lists the loader and libc among the libraries of the real redis-server', async () => {
    const libs = await sharedLibraries(REDIS_SERVER_PATH);
    const paths = libs.map((l) => l.path);
    expect(paths.some((p) => /\/ld-linux[^/]*\.so/.test(p))).toBe(true);
    expect(paths.some((p) => /\/libc\.so\.6$/.test(p))).toBe(true);
    // linux-vdso has no file and must not be asked for.
    expect(paths.some((p) => p.includes('vdso'))).toBe(false);
    for (const l of libs) expect(l.hostPath).toMatch(/^\//);
  });

  it('refuses a static binary, which has nothing to copy', async () => {
    await expect(sharedLibraries('/bin/busybox')).rejects.toThrow();
  });

  it('hashes the redis image by content: the same machine gives the same hash', async () => {
    const a = await imageDefHash(await redisImageDef());
    const b = await imageDefHash(await redisImageDef());
    expect(a).toBe(b);
    const def = await redisImageDef();
    expect(def.files.map((f) => f.path)).toContain('/usr/bin/redis-server');
    expect(def.exposedPorts).toEqual([6379]);
  });

  it('never puts the password on a command line', async () => {
    const def = await redisImageDef();
    const start = def.files.find((f) => f.path === '/bin/redis-start')?.content?.toString() ?? '';
    expect(start).toContain('/run/secrets/db-password');
    expect(start).not.toMatch(/redis-server[^\n]*requirepass/);
    const hit = counterImageDef().files.find((f) => f.path === '/www/cgi-bin/hit')?.content?.toString() ?? '';
    expect(hit).toContain('INCR hits');
    expect(hit).not.toMatch(/nc [^\n]*\$pw/);
  });
});
