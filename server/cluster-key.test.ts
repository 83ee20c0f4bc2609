import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadClusterKey } from './cluster-key.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'orca-key-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('loadClusterKey', () => {
  it('makes <data-dir>/cluster.key on first start: 32 bytes, mode 0600, the same key on the next start', async () => {
    const key = await loadClusterKey(join(dir, 'data'));
    expect(key).toHaveLength(32);
    const path = join(dir, 'data', 'cluster.key');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readFile(path)).toEqual(key);
    expect(await loadClusterKey(join(dir, 'data'))).toEqual(key);
  });

  it('refuses a key readable by others, naming the file and the fix, and changes nothing', async () => {
    const path = join(dir, 'cluster.key');
    const bytes = Buffer.alloc(32, 7);
    await writeFile(path, bytes, { mode: 0o644 });
    await chmod(path, 0o644);
    await expect(loadClusterKey(dir)).rejects.toThrow(`the cluster key ${path} has mode 0644: it must be readable by its owner only (chmod 600 ${path})`);
    await chmod(path, 0o640);
    await expect(loadClusterKey(dir)).rejects.toThrow('has mode 0640');
    expect(await readFile(path)).toEqual(bytes);
  });

  it.each([0, 31, 33, 4096])('refuses a key of %i bytes', async (n) => {
    const path = join(dir, 'cluster.key');
    await writeFile(path, Buffer.alloc(n, 1), { mode: 0o600 });
    await expect(loadClusterKey(dir)).rejects.toThrow(/holds (\d+ bytes|more than 32 bytes), but a cluster key is exactly 32 random bytes/);
    expect((await readFile(path)).length).toBe(n);
  });

  it('refuses a directory where the key should be', async () => {
    await rm(dir, { recursive: true });
    await import('node:fs/promises').then((fs) => fs.mkdir(join(dir, 'cluster.key'), { recursive: true }));
    await expect(loadClusterKey(dir)).rejects.toThrow('is not a regular file');
  });

  it('uses a given file, and never creates one that is missing (a typo must not start over a new key)', async () => {
    const given = join(dir, 'shared.key');
    await expect(loadClusterKey(join(dir, 'data'), given)).rejects.toThrow(`the cluster key ${given} (--cluster-key-file) does not exist`);
    await expect(stat(given)).rejects.toThrow();
    await expect(stat(join(dir, 'data', 'cluster.key'))).rejects.toThrow();
    const bytes = Buffer.alloc(32, 9);
    await writeFile(given, bytes, { mode: 0o600 });
    expect(await loadClusterKey(join(dir, 'data'), given)).toEqual(bytes);
    await expect(stat(join(dir, 'data', 'cluster.key'))).rejects.toThrow();
  });
});
