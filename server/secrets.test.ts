import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { memoryStore } from '../store/index.js';
import { isOrcaError } from '../core/errors.js';
import { MAX_SECRET_BYTES, SecretStore } from './secrets.js';

const AT = '2026-01-01T00:00:00.000Z';
const LATER = '2026-01-02T00:00:00.000Z';
const VALUE = Buffer.from('s3cr3t-RECOGNISABLE-value\n');

async function setup(key = randomBytes(32)) {
  const store = memoryStore();
  await store.open();
  return { store, key, secrets: await SecretStore.open(store, key, '/data/cluster.key') };
}

describe('SecretStore', () => {
  it('stores a value sealed, byte for byte, and lists names, versions and times, never values', async () => {
    const { store, secrets } = await setup();
    expect(await secrets.set('db-password', VALUE, AT)).toEqual({ info: { name: 'db-password', version: 1, updated: AT }, change: 'created' });
    expect(await secrets.list()).toEqual([{ name: 'db-password', version: 1, updated: AT }]);
    expect((await secrets.reveal('db-password'))?.value).toEqual(VALUE);
    const raw = JSON.stringify(await store.listKv(''));
    expect(raw).not.toContain('RECOGNISABLE');
    expect(raw).not.toContain(VALUE.toString('base64').slice(0, 12));
  });

  it('counts versions up on a new value, leaves an equal value unchanged, and never reuses a version after rm', async () => {
    const { secrets } = await setup();
    await secrets.set('a', VALUE, AT);
    expect((await secrets.set('a', Buffer.from(VALUE), LATER)).change).toBe('unchanged');
    expect(await secrets.get('a')).toEqual({ name: 'a', version: 1, updated: AT });
    expect(await secrets.set('a', Buffer.from('other'), LATER)).toEqual({ info: { name: 'a', version: 2, updated: LATER }, change: 'updated' });
    expect(await secrets.remove('a', LATER)).toBe(true);
    expect(await secrets.remove('a', LATER)).toBe(false);
    expect(await secrets.list()).toEqual([]);
    expect(await secrets.reveal('a')).toBeUndefined();
    expect((await secrets.set('a', VALUE, LATER)).info.version).toBe(3);
    expect(Object.fromEntries(await secrets.versions())).toEqual({ a: 3 });
  });

  it('refuses an empty value, one over 64 KiB, and a name that is not a DNS label, storing nothing', async () => {
    const { secrets } = await setup();
    await expect(secrets.set('a', Buffer.alloc(0), AT)).rejects.toThrow('secret "a": the value is empty');
    await expect(secrets.set('a', Buffer.alloc(MAX_SECRET_BYTES + 1, 65), AT)).rejects.toThrow('larger than 64 KiB (65536 bytes)');
    await expect(secrets.set('Bad_Name', VALUE, AT)).rejects.toThrow('must be a DNS label');
    await expect(secrets.set('a/../b', VALUE, AT)).rejects.toSatisfy((e) => isOrcaError(e, 'ORCA_USAGE'));
    expect(await secrets.list()).toEqual([]);
    expect((await secrets.set('a', Buffer.alloc(MAX_SECRET_BYTES, 0), AT)).info.version).toBe(1);
    expect((await secrets.reveal('a'))?.value.length).toBe(MAX_SECRET_BYTES);
  });

  it('reveals only the version asked for', async () => {
    const { secrets } = await setup();
    await secrets.set('a', VALUE, AT);
    await secrets.set('a', Buffer.from('two'), AT);
    expect((await secrets.reveal('a', 2))?.value.toString()).toBe('two');
    await expect(secrets.reveal('a', 1)).rejects.toThrow('secret "a" is at version 2, not 1');
  });

  it('refuses to open a store whose secrets another key sealed, naming the key file', async () => {
    const { store, key } = await setup();
    await expect(SecretStore.open(store, randomBytes(32), '/data/cluster.key')).rejects.toThrow(
      "the cluster key /data/cluster.key is not the key this store's secrets were sealed with",
    );
    const again = await SecretStore.open(store, key, '/data/cluster.key');
    expect(await again.list()).toEqual([]);
  });

  it('does not open a record moved to another name', async () => {
    const { store, secrets } = await setup();
    await secrets.set('a', VALUE, AT);
    const rec = await store.getKv<Record<string, unknown>>('secret/a');
    await store.putKv('secret/b', { ...rec, name: 'b' });
    await expect(secrets.reveal('b')).rejects.toThrow('secret "b" version 1 does not decrypt');
  });
});
