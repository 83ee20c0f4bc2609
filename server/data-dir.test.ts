import { afterAll, describe, expect, it } from 'vitest';
import { mkdir, readdir, stat, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { ManualClock } from '../core/clock.js';
import { isOrcaError } from '../core/errors.js';
import { FakeRuntime } from '../runtime/fake-runtime.js';
import { instanceLabels } from '../runtime/labels.js';
import { memoryStore, openLevelStore } from '../store/index.js';
import { aSpec } from '../test/builders.js';
import { claimDataDir, IDENTITY_KEY, prepareDataDir } from './data-dir.js';
import { ensureToken } from './token.js';
import { TempDirs } from '../test/tmp.js';

const temp = new TempDirs();
afterAll(() => temp.removeAll());

const tmp = () => temp.make('orca-datadir-');

async function expectCode(p: Promise<unknown>, code: string): Promise<Error> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(isOrcaError(err), String(err)).toBe(true);
  expect((err as { code: string }).code).toBe(code);
  return err as Error;
}

describe('prepareDataDir', () => {
  it('creates the directory 0700 and every file written afterwards (LevelDB included) 0600', async () => {
    const dir = join(await tmp(), 'nested', 'orca');
    await prepareDataDir(dir);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    const store = await openLevelStore(join(dir, 'cluster.db'));
    await store.putKv('x', 1);
    await store.close();
    await ensureToken(dir);
    expect((await stat(join(dir, 'cluster.db'))).mode & 0o777).toBe(0o700);
    for (const f of await readdir(join(dir, 'cluster.db'))) {
      expect({ f, mode: (await stat(join(dir, 'cluster.db', f))).mode & 0o777 }).toEqual({ f, mode: 0o600 });
    }
    expect((await stat(join(dir, 'cluster.token'))).mode & 0o777).toBe(0o600);
  });

  it('narrows an existing directory that others could read to 0700', async () => {
    const dir = await tmp();
    await chmod(dir, 0o755);
    await prepareDataDir(dir);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
  });

  it('a path that is a file is a clear error naming it and --data-dir', async () => {
    const file = join(await tmp(), 'not-a-dir');
    await writeFile(file, 'x');
    const err = await expectCode(prepareDataDir(file), 'ORCA_STORE_UNAVAILABLE');
    expect(err.message).toContain(file);
    expect(err.message).toContain('--data-dir');
  });
});

describe('ensureToken', () => {
  it('creates a token on first start and reads the same one afterwards', async () => {
    const dir = await tmp();
    const t = await ensureToken(dir);
    expect(t).toMatch(/^[0-9a-f]{64}$/);
    expect(await ensureToken(dir)).toBe(t);
  });

  it('an empty token file stops the server with what to do, and is left as it was', async () => {
    const dir = await tmp();
    await writeFile(join(dir, 'cluster.token'), '\n', { mode: 0o600 });
    const err = await expectCode(ensureToken(dir), 'ORCA_UNAUTHORIZED');
    expect(err.message).toMatch(/cluster\.token is empty.*delete the file/);
    expect((await stat(join(dir, 'cluster.token'))).size).toBe(1);
  });

  it('an unreadable token file (here a directory) stops the server naming it', async () => {
    const dir = await tmp();
    await mkdir(join(dir, 'cluster.token'));
    const err = await expectCode(ensureToken(dir), 'ORCA_UNAUTHORIZED');
    expect(err.message).toMatch(/cannot read the admin token .*cluster\.token \(EISDIR\)/);
  });
});

describe('claimDataDir', () => {
  const who = { cluster: 'c1', node: 'n1', dataDir: '/data/b', now: '2026-12-04T00:00:00.000Z' };

  async function runtimeWith(node: string, cluster = 'c1') {
    const rt = new FakeRuntime(new ManualClock());
    rt.addImage('img:1', { cmd: ['sleep', '3600'] });
    await rt.create({
      name: 'web-1-0-abcd',
      image: 'img:1',
      env: {},
      hostIp: '127.0.0.1',
      init: true,
      stopGraceSecs: 1,
      labels: instanceLabels({ cluster, service: 'web', instance: 'web-1-0-abcd', slot: 0, revision: 1, specHash: 'h', node }),
    });
    return rt;
  }

  it('a fresh data directory that finds its cluster and node already in Docker refuses, naming the containers and the way out', async () => {
    const store = memoryStore();
    await store.open();
    const err = await expectCode(claimDataDir(store, await runtimeWith('n1'), who), 'ORCA_CONFLICT');
    expect(err.message).toContain('web-1-0-abcd');
    expect(err.message).toContain('--cluster-id');
    expect(await store.getKv(IDENTITY_KEY)).toBeUndefined();
  });

  it('containers of another node or cluster are no conflict; the identity is recorded', async () => {
    const store = memoryStore();
    await store.open();
    await claimDataDir(store, await runtimeWith('n2'), who);
    await claimDataDir(store, await runtimeWith('n1', 'other'), who);
    expect(await store.getKv(IDENTITY_KEY)).toEqual({ cluster: 'c1', node: 'n1', createdAt: who.now });
  });

  it('a data directory that has served adopts its containers (with the identity, or an older store with services)', async () => {
    const served = memoryStore();
    await served.open();
    await served.putKv(IDENTITY_KEY, { cluster: 'c1', node: 'n1', createdAt: who.now });
    await claimDataDir(served, await runtimeWith('n1'), who);

    const older = memoryStore();
    await older.open();
    await older.commitRevisions([{ spec: aSpec({ name: 'web' }), specHash: 'h', source: 'apply', at: who.now }]);
    await claimDataDir(older, await runtimeWith('n1'), who);
    expect(await older.getKv(IDENTITY_KEY)).toMatchObject({ cluster: 'c1', node: 'n1' });
  });
});
