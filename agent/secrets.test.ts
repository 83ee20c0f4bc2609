import { afterEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock, seededRng, flushMicrotasks } from '../core/clock.js';
import { silentLogger } from '../core/log.js';
import { isOrcaError } from '../core/errors.js';
import { FakeRuntime } from '../runtime/fake-runtime.js';
import { LABEL } from '../runtime/labels.js';
import { memoryStore, openLevelStore } from '../store/index.js';
import type { SecretValue } from '../protocol/messages.js';
import type { SlotAssignment } from '../controllers/container/types.js';
import { Agent } from './agent.js';
import { loadAgentKey, SecretCache } from './secret-cache.js';
import { MemorySecretFiles, TmpfsSecretFiles, type SecretFiles } from './secret-files.js';
import { aSpec, slotsOf } from '../test/builders.js';
import { instanceHash } from '../controllers/container/instance-hash.js';

const IMAGE = 'orca-test/busybox:1';
const CLUSTER = 'test';
const PW = Buffer.from('RECOGNISABLE-pw-\u00e9\n', 'utf8');
const TOKEN = Buffer.from('RECOGNISABLE-token');
const val = (name: string, version: number, data: Buffer): SecretValue => ({ name, version, value: data.toString('base64') });

function slotsWith(over: Parameters<typeof aSpec>[0], versions: Record<string, number>, revision = 1): SlotAssignment[] {
  const spec = aSpec(over);
  return slotsOf(spec, revision).map((a) => ({ ...a, specHash: instanceHash(spec, versions), secretVersions: versions }));
}

const dirs: string[] = [];
const aborts: AbortController[] = [];
afterEach(async () => {
  for (const a of aborts.splice(0)) a.abort();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'orca-secrets-test-'));
  dirs.push(d);
  return d;
}

async function world(files: SecretFiles = new MemorySecretFiles()) {
  const clock = new ManualClock();
  const rt = new FakeRuntime(clock);
  rt.addImage(IMAGE, { cmd: ['sleep', '3600'] });
  const store = memoryStore();
  await store.open();
  const agent = new Agent({
    runtime: rt,
    store,
    clock,
    rng: seededRng(1),
    log: silentLogger(),
    identity: { cluster: CLUSTER, node: 'n1', advertise: '127.0.0.1' },
    watchdogIntervalMs: 30_000,
    record: () => undefined,
    secrets: { key: randomBytes(32), files },
  });
  const abort = new AbortController();
  aborts.push(abort);
  const settle = async () => {
    await flushMicrotasks(20);
    await agent.idle();
    await flushMicrotasks(20);
  };
  const containers = async () => (await rt.list({ [LABEL.cluster]: CLUSTER })).filter((c) => c.status === 'running');
  return { clock, rt, agent, abort, settle, containers, files };
}

describe('secrets in containers (SPEC §3.9)', () => {
  it('files at /run/secrets from a read-only bind of the instance directory, 0400; no value in env, labels or command', async () => {
    const w = await world();
    await w.agent.setAssignments(slotsWith({ secrets: ['db-password', 'token'] }, { 'db-password': 1, token: 2 }), [val('db-password', 1, PW), val('token', 2, TOKEN)]);
    await w.agent.start(w.abort.signal);
    await w.settle();
    const [c] = await w.containers();
    const spec = w.rt.specOf(c!.id)!;
    expect(spec.mounts).toContainEqual({ type: 'bind', source: `/orca-secrets/${c!.name}`, target: '/run/secrets', readOnly: true });
    const files = (w.files as MemorySecretFiles).dirs.get(c!.name)!;
    expect(files.get('db-password')).toEqual({ data: PW, mode: 0o400 });
    expect(files.get('token')?.data).toEqual(TOKEN);
    const shown = JSON.stringify({ env: spec.env, labels: spec.labels, command: spec.command, entrypoint: spec.entrypoint, inspect: await w.rt.inspect(c!.id) });
    expect(shown).not.toContain('RECOGNISABLE');
    expect(shown).not.toContain(PW.toString('base64').slice(0, 12));
  });

  it('secret_env puts the value in the environment (an opt-in), with no files mount when there are no plain secrets', async () => {
    const w = await world();
    await w.agent.setAssignments(slotsWith({ secretEnv: { DB_PASSWORD: 'db-password' } }, { 'db-password': 1 }), [val('db-password', 1, PW)]);
    await w.agent.start(w.abort.signal);
    await w.settle();
    const [c] = await w.containers();
    const spec = w.rt.specOf(c!.id)!;
    expect(spec.env.DB_PASSWORD).toBe(PW.toString('utf8'));
    expect(spec.mounts ?? []).toEqual([]);
  });

  it('creates nothing while a value has not reached the node, and does once it has', async () => {
    const w = await world();
    const slots = slotsWith({ secrets: ['db-password'] }, { 'db-password': 1 });
    await w.agent.setAssignments(slots, []);
    await w.agent.start(w.abort.signal);
    await w.settle();
    expect(await w.containers()).toHaveLength(0);
    expect(await w.files.list()).toEqual([]);
    await w.agent.setAssignments(slots, [val('db-password', 1, PW)]);
    await w.clock.advanceAsync(60_000, 50);
    await w.settle();
    expect(await w.containers()).toHaveLength(1);
  });

  it('a removed instance takes its files with it; files left by a container removed behind our back go at the watchdog pass', async () => {
    const w = await world();
    const slots = slotsWith({ secrets: ['db-password'] }, { 'db-password': 1 });
    await w.agent.setAssignments(slots, [val('db-password', 1, PW)]);
    await w.agent.start(w.abort.signal);
    await w.settle();
    const [first] = await w.containers();
    expect(await w.files.list()).toEqual([first!.name]);

    // Behind our back: the replacement gets its own directory; the old one goes at the next resync.
    await w.rt.remove(first!.id, { force: true });
    await w.settle();
    await w.clock.advanceAsync(60_000, 50);
    await w.settle();
    const [second] = await w.containers();
    expect(second!.name).not.toBe(first!.name);
    await w.agent.resyncAll();
    expect(await w.files.list()).toEqual([second!.name]);

    // Through Orca: the service is taken away, its instance and its files go.
    await w.agent.setAssignments([], []);
    await w.clock.advanceAsync(60_000, 50);
    await w.settle();
    expect(await w.containers()).toHaveLength(0);
    expect(await w.files.list()).toEqual([]);
  });
});

describe('SecretCache in agent.db', () => {
  it('keeps no plaintext in the store files, reopens with its key, and forgets versions no slot uses', async () => {
    const dir = await tempDir();
    const key = await loadAgentKey(dir);
    const slots = slotsWith({ secrets: ['db-password'] }, { 'db-password': 1 });
    let store = await openLevelStore(join(dir, 'agent.db'));
    let cache = new SecretCache(store, key, silentLogger());
    await cache.update([val('db-password', 1, PW), val('unused', 1, TOKEN)], slots);
    await store.close();

    for (const f of await readdir(join(dir, 'agent.db'))) {
      const bytes = await readFile(join(dir, 'agent.db', f));
      expect(bytes.includes(Buffer.from('RECOGNISABLE')), f).toBe(false);
      expect(bytes.includes(Buffer.from(PW.toString('base64'))), f).toBe(false);
    }

    store = await openLevelStore(join(dir, 'agent.db'));
    cache = new SecretCache(store, await loadAgentKey(dir), silentLogger());
    await cache.load();
    expect(cache.valuesFor(slots[0]!).get('db-password')).toEqual(PW);
    // A later set without the value (the server moved past version 1) keeps it while a slot uses it.
    await cache.update([], slots);
    expect(cache.valuesFor(slots[0]!).get('db-password')).toEqual(PW);
    const other = new SecretCache(store, randomBytes(32), silentLogger());
    await other.load();
    expect(() => other.valuesFor(slots[0]!)).toThrow(/db-password/);
    await cache.update([], []);
    expect(() => cache.valuesFor(slots[0]!)).toThrow(/version 1/);
    await store.close();
  });

  it('the agent key is made once, 32 bytes, 0600; a looser or short one is refused', async () => {
    const dir = await tempDir();
    const key = await loadAgentKey(dir);
    expect(key).toHaveLength(32);
    expect((await stat(join(dir, 'agent.key'))).mode & 0o777).toBe(0o600);
    expect(await loadAgentKey(dir)).toEqual(key);
    await chmod(join(dir, 'agent.key'), 0o644);
    await expect(loadAgentKey(dir)).rejects.toThrow(/mode 0644/);
    await writeFile(join(dir, 'agent.key'), 'short', { mode: 0o600 });
    await chmod(join(dir, 'agent.key'), 0o600);
    await expect(loadAgentKey(dir)).rejects.toThrow(/5 bytes/);
  });
});

describe('SecretFiles contract', () => {
  const impls: Array<[string, () => Promise<{ files: SecretFiles; read: (dir: string, name: string) => Promise<{ data: Buffer; mode: number }> }>]> = [
    [
      'MemorySecretFiles',
      async () => {
        const files = new MemorySecretFiles();
        return { files, read: async (dir, name) => files.dirs.get(dir.split('/').at(-1)!)!.get(name)! };
      },
    ],
    [
      'TmpfsSecretFiles (mount stubbed)',
      async () => {
        const root = join(await tempDir(), 'secrets');
        let mounted = false;
        const files = new TmpfsSecretFiles(root, { sizeBytes: 1 << 20, isTmpfs: async () => mounted, mountTmpfs: async () => void (mounted = true) });
        return { files, read: async (dir, name) => ({ data: await readFile(join(dir, name)), mode: (await stat(join(dir, name))).mode & 0o777 }) };
      },
    ],
  ];
  it.each(impls)('%s: writes 0400 files byte for byte, replaces them, lists and removes (idempotent)', async (_name, make) => {
    const { files, read } = await make();
    expect(await files.list()).toEqual([]);
    const dir = await files.write('web-1-0-abcd', [{ name: 'db-password', data: PW }]);
    expect(await read(dir, 'db-password')).toEqual({ data: PW, mode: 0o400 });
    await files.write('web-1-0-abcd', [{ name: 'db-password', data: TOKEN }]);
    expect((await read(dir, 'db-password')).data).toEqual(TOKEN);
    expect(await files.list()).toEqual(['web-1-0-abcd']);
    await files.remove('web-1-0-abcd');
    await files.remove('web-1-0-abcd');
    expect(await files.list()).toEqual([]);
    await expect(files.write('../etc', [])).rejects.toThrow(/not a safe file name/);
  });

  it('TmpfsSecretFiles writes nothing when no tmpfs can be had', async () => {
    const root = join(await tempDir(), 'secrets');
    const refused = new TmpfsSecretFiles(root, { sizeBytes: 1 << 20, isTmpfs: async () => false, mountTmpfs: async () => Promise.reject(new Error('mount: permission denied')) });
    const err = await refused.write('web-1-0-abcd', [{ name: 'db-password', data: PW }]).catch((e: unknown) => e);
    expect(isOrcaError(err) && err.code).toBe('ORCA_RUNTIME_FAILED');
    const silent = new TmpfsSecretFiles(root, { sizeBytes: 1 << 20, isTmpfs: async () => false, mountTmpfs: async () => undefined });
    await expect(silent.write('web-1-0-abcd', [{ name: 'db-password', data: PW }])).rejects.toThrow(/not a tmpfs/);
    expect(await readdir(root)).toEqual([]);
  });
});
