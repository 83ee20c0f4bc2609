import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isOrcaError } from '../core/errors.js';
import { memoryStore } from '../store/index.js';
import type { Store } from '../store/types.js';
import { SecretStore } from './secrets.js';
import { ADMIN_TOKEN_KEY, adminToken, sharedClusterKey } from './shared-secrets.js';

const NOW = '2026-12-01T00:00:00.000Z';

describe('shared secrets of servers on one store', () => {
  const dirs: string[] = [];
  const stores: Store[] = [];
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });
  const dataDir = async () => {
    const d = await mkdtemp(join(tmpdir(), 'orca-shared-'));
    dirs.push(d);
    return d;
  };
  const store = async () => {
    const s = memoryStore();
    await s.open();
    stores.push(s);
    return s;
  };
  async function refused(p: Promise<unknown>): Promise<string> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isOrcaError(err, 'ORCA_UNAUTHORIZED'), String(err)).toBe(true);
    return (err as Error).message;
  }

  describe('admin token', () => {
    it('the first server makes the token and records its hash; a second server given it with --token-file gets the same', async () => {
      const s = await store();
      const first = await dataDir();
      const token = await adminToken(s, { dataDir: first, shared: true, now: NOW });
      expect((await readFile(join(first, 'cluster.token'), 'utf8')).trim()).toBe(token);
      const recorded = await s.getKv<{ sha256: string }>(ADMIN_TOKEN_KEY);
      expect(recorded?.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(JSON.stringify(recorded)).not.toContain(token);

      const second = await dataDir();
      const copy = join(second, 'copied.token');
      await writeFile(copy, token + '\n', { mode: 0o600 });
      expect(await adminToken(s, { dataDir: second, tokenFile: copy, shared: true, now: NOW })).toBe(token);
      // The CLI on the second host finds it in the data directory too.
      expect((await readFile(join(second, 'cluster.token'), 'utf8')).trim()).toBe(token);
      expect((await stat(join(second, 'cluster.token'))).mode & 0o777).toBe(0o600);
      // And the next start needs no --token-file.
      expect(await adminToken(s, { dataDir: second, shared: true, now: NOW })).toBe(token);
    });

    it('a second server without the token is refused before it makes one of its own', async () => {
      const s = await store();
      await adminToken(s, { dataDir: await dataDir(), shared: true, now: NOW });
      const second = await dataDir();
      expect(await refused(adminToken(s, { dataDir: second, shared: true, now: NOW }))).toMatch(/already has an admin token .* --token-file/);
      await expect(stat(join(second, 'cluster.token'))).rejects.toThrow();
    });

    it('another token is refused, from --token-file or from the data directory', async () => {
      const s = await store();
      await adminToken(s, { dataDir: await dataDir(), shared: true, now: NOW });
      const other = await dataDir();
      await writeFile(join(other, 'wrong'), 'not-the-token\n');
      expect(await refused(adminToken(s, { dataDir: other, tokenFile: join(other, 'wrong'), shared: true, now: NOW }))).toMatch(/is not this cluster's/);
      const own = await dataDir();
      await writeFile(join(own, 'cluster.token'), 'also-not\n', { mode: 0o600 });
      expect(await refused(adminToken(s, { dataDir: own, shared: true, now: NOW }))).toMatch(/is not this cluster's/);
    });

    it('--token-file must exist, hold one token, and agree with the data directory', async () => {
      const s = await store();
      const d = await dataDir();
      expect(await refused(adminToken(s, { dataDir: d, tokenFile: join(d, 'missing'), shared: false, now: NOW }))).toMatch(/does not exist/);
      await writeFile(join(d, 'two'), 'a b\n');
      expect(await refused(adminToken(s, { dataDir: d, tokenFile: join(d, 'two'), shared: false, now: NOW }))).toMatch(/malformed/);
      await writeFile(join(d, 'cluster.token'), 'mine\n', { mode: 0o600 });
      await writeFile(join(d, 'given'), 'given\n');
      expect(await refused(adminToken(s, { dataDir: d, tokenFile: join(d, 'given'), shared: false, now: NOW }))).toMatch(/holds another admin token than --token-file/);
    });

    it('the embedded store keeps no hash (deleting cluster.token still makes a new one)', async () => {
      const s = await store();
      const d = await dataDir();
      const a = await adminToken(s, { dataDir: d, shared: false, now: NOW });
      expect(await s.getKv(ADMIN_TOKEN_KEY)).toBeUndefined();
      await rm(join(d, 'cluster.token'));
      expect(await adminToken(s, { dataDir: d, shared: false, now: NOW })).not.toBe(a);
    });
  });

  describe('cluster key', () => {
    it('the first server creates a missing --cluster-key-file; the second reads a copy and opens the same secrets', async () => {
      const s = await store();
      const keyFile = join(await dataDir(), 'shared.key');
      const key = await sharedClusterKey(s, { dataDir: await dataDir(), clusterKeyFile: keyFile, shared: true });
      expect(key).toHaveLength(32);
      expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
      const secretsA = await SecretStore.open(s, key, keyFile);
      await secretsA.set('db-password', Buffer.from('hunter2'), NOW);

      const copy = join(await dataDir(), 'copy.key');
      await writeFile(copy, key, { mode: 0o600 });
      await chmod(copy, 0o600);
      const keyB = await sharedClusterKey(s, { dataDir: await dataDir(), clusterKeyFile: copy, shared: true });
      const secretsB = await SecretStore.open(s, keyB, copy);
      expect((await secretsB.reveal('db-password'))?.value.toString()).toBe('hunter2');
    });

    it('once secrets are sealed, a missing key file is refused and none is made', async () => {
      const s = await store();
      const key = await sharedClusterKey(s, { dataDir: await dataDir(), shared: true });
      await SecretStore.open(s, key, 'first');
      const d = await dataDir();
      expect(await refused(sharedClusterKey(s, { dataDir: d, shared: true }))).toMatch(/sealed with the cluster key of the first server .* --cluster-key-file/);
      await expect(stat(join(d, 'cluster.key'))).rejects.toThrow();
      expect(await refused(sharedClusterKey(s, { dataDir: d, clusterKeyFile: join(d, 'k'), shared: true }))).toMatch(/does not exist/);
    });

    it('two first servers with different keys: one key is recorded, the other refused', async () => {
      const s = await store();
      const a = await sharedClusterKey(s, { dataDir: await dataDir(), shared: true });
      const b = await sharedClusterKey(s, { dataDir: await dataDir(), shared: true });
      const results = await Promise.allSettled([SecretStore.open(s, a, 'a'), SecretStore.open(s, b, 'b')]);
      expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    });

    it('on the embedded store a given --cluster-key-file is never created', async () => {
      const s = await store();
      const d = await dataDir();
      expect(await refused(sharedClusterKey(s, { dataDir: d, clusterKeyFile: join(d, 'k'), shared: false }))).toMatch(/does not exist/);
    });
  });
});
