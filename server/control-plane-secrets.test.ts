import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { ManualClock } from '../core/clock.js';
import { createLogger } from '../core/log.js';
import { isOrcaError } from '../core/errors.js';
import { memoryStore } from '../store/index.js';
import type { Store } from '../store/types.js';
import { instanceHash } from '../controllers/container/instance-hash.js';
import { ControlPlane } from './control-plane.js';
import { EventLog } from './event-log.js';
import { SecretStore } from './secrets.js';
import { schedule } from './scheduler.js';

const VALUE = 'pw-RECOGNISABLE-7f3a9c\n';
const NEW_VALUE = 'pw-RECOGNISABLE-NEW-b41e\n';

const manifest = (name: string, extra = '') => ({ file: `${name}.toml`, text: `[[service]]\nname = "${name}"\nimage = "img:1"\n${extra}` });
const USES = 'secrets = ["db-password"]\n';
const USES_ENV = 'secret_env = { DB_PASSWORD = "db-password" }\n';

async function setup(opts: { store?: Store; key?: Buffer } = {}) {
  const store = opts.store ?? memoryStore();
  if (!opts.store) await store.open();
  const key = opts.key ?? randomBytes(32);
  const logs = new PassThrough();
  let logText = '';
  logs.on('data', (c: Buffer) => (logText += c.toString()));
  const log = createLogger({ destination: logs, pretty: false, level: 'debug' });
  const clock = new ManualClock();
  const events = new EventLog(store, log);
  const secrets = await SecretStore.open(store, key, '/data/cluster.key');
  const cp = new ControlPlane({ store, clock, log, events, nodes: () => [], reschedule: () => undefined, secrets });
  await cp.load();
  return { store, key, cp, events, secrets, clock, logs: () => logText };
}

describe('ControlPlane: secrets at apply', () => {
  it('refuses a manifest naming an unknown secret, naming service and secret, and stores nothing', async () => {
    const { cp, store } = await setup();
    const r = await cp.apply([manifest('web', USES), manifest('api', USES_ENV), manifest('ok')], false);
    expect(r).toEqual({
      ok: false,
      errors: [
        'web.toml: service "web": secrets: unknown secret "db-password" (create it first: orca secret set db-password)',
        'api.toml: service "api": secret_env.DB_PASSWORD: unknown secret "db-password" (create it first: orca secret set db-password)',
      ],
    });
    expect(await store.listServices({ includeDeleted: true })).toEqual([]);
    expect((await cp.apply([manifest('web', USES)], true)).ok).toBe(false);
  });

  it('stores the versions of the secrets a service uses; the same manifest again is unchanged', async () => {
    const { cp, store } = await setup();
    await cp.setSecret('db-password', Buffer.from(VALUE));
    const r = await cp.apply([manifest('web', USES), manifest('api', USES_ENV), manifest('plain')], false);
    expect(r.ok && r.value.map((x) => x.action)).toEqual(['created', 'created', 'created']);
    expect((await store.getService('web'))?.secretVersions).toEqual({ 'db-password': 1 });
    expect((await store.getService('api'))?.secretVersions).toEqual({ 'db-password': 1 });
    expect(await store.getService('plain')).not.toHaveProperty('secretVersions');
    const again = await cp.apply([manifest('web', USES), manifest('api', USES_ENV), manifest('plain')], false);
    expect(again.ok && again.value.map((x) => x.action)).toEqual(['unchanged', 'unchanged', 'unchanged']);
  });
});

describe('ControlPlane: a new secret value', () => {
  it('makes a new revision of every service that uses it, with the reason, and a new instance hash', async () => {
    const { cp, store, events } = await setup();
    await cp.setSecret('db-password', Buffer.from(VALUE));
    await cp.apply([manifest('web', USES), manifest('api', USES_ENV), manifest('plain')], false);
    const before = await store.getService('web');

    const r = await cp.setSecret('db-password', Buffer.from(NEW_VALUE));
    expect(r).toMatchObject({ name: 'db-password', version: 2, change: 'updated', rolled: [{ service: 'api', revision: 2 }, { service: 'web', revision: 2 }] });

    const web = await store.getService('web');
    expect(web).toMatchObject({ revision: 2, specHash: before?.specHash, secretVersions: { 'db-password': 2 } });
    expect(await store.getRevision('web', 2)).toMatchObject({ source: 'secret', reason: 'secret db-password changed (version 2)', outcome: 'pending' });
    expect((await store.getRevision('web', 1))?.outcome).toBe('superseded');
    expect((await store.getService('plain'))?.revision).toBe(1);

    // What the nodes are told to run changes, so each service's deploy strategy rolls it out.
    const oldHash = instanceHash(before!.spec, before!.secretVersions);
    const assigned = schedule([web!], [{ name: 'n1', labels: {}, schedulable: true, keepsSlots: true }]).assignments.get('n1');
    expect(assigned?.[0]?.specHash).toBe(instanceHash(web!.spec, { 'db-password': 2 }));
    expect(assigned?.[0]?.specHash).not.toBe(oldHash);

    await events.drain();
    expect(await store.listEvents({ service: 'web' })).toEqual([
      expect.objectContaining({ action: 'revision.create', reason: 'secret db-password changed (version 2)', outcome: 'revision 2' }),
    ]);
  });

  it('rolls nothing out for the same value again, nor for a new secret nobody uses', async () => {
    const { cp, store } = await setup();
    await cp.setSecret('db-password', Buffer.from(VALUE));
    await cp.apply([manifest('web', USES)], false);
    expect(await cp.setSecret('db-password', Buffer.from(VALUE))).toMatchObject({ version: 1, change: 'unchanged', rolled: [] });
    expect(await cp.setSecret('other', Buffer.from(VALUE))).toMatchObject({ version: 1, change: 'created', rolled: [] });
    expect((await store.getService('web'))?.revision).toBe(1);
  });

  it('finishes at load what a server stopped between storing a value and the revisions left undone', async () => {
    const first = await setup();
    await first.cp.setSecret('db-password', Buffer.from(VALUE));
    await first.cp.apply([manifest('web', USES)], false);
    // The value is stored, then the server dies before committing the revisions.
    await first.secrets.set('db-password', Buffer.from(NEW_VALUE), '2026-01-02T00:00:00.000Z');
    expect((await first.store.getService('web'))?.revision).toBe(1);
    await setup({ store: first.store, key: first.key });
    expect(await first.store.getService('web')).toMatchObject({ revision: 2, secretVersions: { 'db-password': 2 } });
    expect(await first.store.getRevision('web', 2)).toMatchObject({ source: 'secret', reason: 'secret db-password changed (version 2)' });
  });
});

describe('ControlPlane: secret ls and rm', () => {
  it('lists names, versions, times and users, never values', async () => {
    const { cp } = await setup();
    await cp.setSecret('db-password', Buffer.from(VALUE));
    await cp.setSecret('unused', Buffer.from(VALUE));
    await cp.apply([manifest('web', USES), manifest('api', USES_ENV)], false);
    expect(await cp.listSecrets()).toEqual([
      { name: 'db-password', version: 1, updated: '2026-01-01T00:00:00.000Z', usedBy: ['api', 'web'] },
      { name: 'unused', version: 1, updated: '2026-01-01T00:00:00.000Z', usedBy: [] },
    ]);
  });

  it('refuses to remove a secret in use, naming the services; removes it once none uses it', async () => {
    const { cp } = await setup();
    await cp.setSecret('db-password', Buffer.from(VALUE));
    await cp.apply([manifest('web', USES), manifest('api', USES_ENV)], false);
    const refused = await cp.removeSecret('db-password');
    expect(refused.ok).toBe(false);
    if (!refused.ok) {
      expect(isOrcaError(refused.errors, 'ORCA_CONFLICT')).toBe(true);
      expect(refused.errors.message).toBe('secret "db-password" is used by service "api", "web": take it out of their secrets and secret_env and apply them first');
    }
    expect((await cp.listSecrets()).map((s) => s.name)).toEqual(['db-password']);
    await cp.delete(['web']);
    await cp.apply([manifest('api')], false);
    expect(await cp.removeSecret('db-password')).toEqual({ ok: true, value: 'db-password' });
    expect(await cp.listSecrets()).toEqual([]);
    const gone = await cp.removeSecret('db-password');
    expect(!gone.ok && isOrcaError(gone.errors, 'ORCA_NOT_FOUND')).toBe(true);
  });

  it('refuses a rollback to a revision whose secret no longer exists', async () => {
    const { cp } = await setup();
    await cp.setSecret('db-password', Buffer.from(VALUE));
    await cp.apply([manifest('web', USES)], false);
    await cp.apply([manifest('web')], false);
    await cp.removeSecret('db-password');
    const r = await cp.rollback('web', 1);
    expect(!r.ok && r.errors.message).toBe('service "web": revision 1 uses secret "db-password", which no longer exists: set it first (orca secret set db-password)');
    await cp.setSecret('db-password', Buffer.from(NEW_VALUE));
    expect((await cp.rollback('web', 1)).ok).toBe(true);
  });
});

describe('ControlPlane: secret values are never shown', () => {
  it('appear in no log line, event, history, diff, status, listing or error', async () => {
    const { cp, store, events, logs } = await setup();
    const outputs: unknown[] = [];
    await cp.setSecret('db-password', Buffer.from(VALUE));
    outputs.push(await cp.apply([manifest('web', USES + USES_ENV)], false));
    outputs.push(await cp.setSecret('db-password', Buffer.from(NEW_VALUE)));
    outputs.push(await cp.diff([manifest('web', 'secrets = ["db-password", "x"]\n')]));
    outputs.push(await cp.apply([manifest('web', 'secrets = ["nope"]\n')], false));
    outputs.push(await cp.history('web'));
    outputs.push(await cp.status());
    outputs.push(await cp.listSecrets());
    outputs.push(await cp.removeSecret('db-password'));
    outputs.push(await cp.setSecret('db-password', Buffer.alloc(0)).catch((e: Error) => e.message));
    await events.drain();
    outputs.push(await store.listEvents());
    outputs.push(await store.listKv(''));
    outputs.push(await store.listRevisions('web'));
    const all = JSON.stringify(outputs) + logs();
    expect(all).toContain('db-password');
    expect(all).not.toContain('RECOGNISABLE');
    expect(all).not.toContain(Buffer.from(VALUE).toString('base64').slice(0, 16));
    expect(all).not.toContain(Buffer.from(NEW_VALUE).toString('base64').slice(0, 16));
  });
});
