/**
 * Tests across processes, on the real LevelStore: the test compiles store/ with the project's tsc
 * into a temp directory and runs store/fixtures/store-child.mjs against it.
 */

import { spawn, execFile, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { systemRng } from '../core/clock.js';
import { isOrcaError } from '../core/errors.js';
import { levelStore } from './factories.js';

const repo = fileURLToPath(new URL('..', import.meta.url));
const childScript = fileURLToPath(new URL('./fixtures/store-child.mjs', import.meta.url));

let buildDir: string;
let compiledStore: string;
let dataDir: string;
const children: ChildProcessWithoutNullStreams[] = [];

beforeAll(async () => {
  buildDir = await mkdtemp(join(tmpdir(), 'orca-store-build-'));
  const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
  await promisify(execFile)(
    process.execPath,
    [tsc, '--ignoreConfig', '--outDir', buildDir, '--rootDir', repo, '--module', 'nodenext', '--moduleResolution', 'nodenext',
      '--target', 'es2022', '--skipLibCheck', '--types', 'node', join(repo, 'store', 'index.ts')],
    { cwd: repo },
  );
  // The output needs ESM semantics and the project's node_modules (level).
  await writeFile(join(buildDir, 'package.json'), '{"type":"module"}\n');
  await symlink(join(repo, 'node_modules'), join(buildDir, 'node_modules'), 'dir');
  compiledStore = join(buildDir, 'store', 'index.js');
});

afterAll(async () => {
  await rm(buildDir, { recursive: true, force: true });
});

afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null) {
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGKILL');
      await exited;
    }
  }
  await rm(dataDir, { recursive: true, force: true });
});

async function freshDataDir(): Promise<string> {
  dataDir = await mkdtemp(join(tmpdir(), 'orca-store-proc-'));
  return join(dataDir, 'cluster.db');
}

/** Starts the child; calls onLine for each stdout line until it returns true, then resolves. */
function runChild(path: string, mode: string, onLine: (line: string) => boolean): Promise<ChildProcessWithoutNullStreams> {
  const child = spawn(process.execPath, [childScript, compiledStore, path, mode], { stdio: 'pipe' });
  children.push(child);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      if (onLine(line)) {
        lines.close();
        resolve(child);
      }
    });
    child.once('exit', (code, signal) => reject(new Error(`child exited early (${code ?? signal}): ${stderr}`)));
  });
}

function killHard(child: ChildProcessWithoutNullStreams): Promise<void> {
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

describe('across processes', () => {
  it('a store held by another process is ORCA_STORE_LOCKED, and opens once that process is gone', async () => {
    const path = await freshDataDir();
    const child = await runChild(path, 'hold', (line) => line === 'open');

    const store = levelStore(path);
    const err = await store.open().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isOrcaError(err, 'ORCA_STORE_LOCKED'), String(err)).toBe(true);
    expect((err as Error).message).toContain(path);

    await killHard(child);
    await store.open();
    await store.close();
  });

  it('every acknowledged write survives kill -9 at an arbitrary moment', async () => {
    const path = await freshDataDir();
    let lastAcked = 0;
    // Kill somewhere between 30 and 60 acknowledged commits, usually in the middle of the next one.
    const killAfter = 30 + Math.floor(systemRng.next() * 30);
    const child = await runChild(path, 'commit-loop', (line) => {
      const m = /^acked (\d+)$/.exec(line);
      if (m) lastAcked = Number(m[1]);
      return lastAcked >= killAfter;
    });
    await killHard(child);
    expect(lastAcked).toBeGreaterThanOrEqual(killAfter);

    const store = levelStore(path);
    await store.open();
    try {
      const web = await store.getService('web');
      if (!web) throw new Error('service web is gone');
      expect(web.revision).toBeGreaterThanOrEqual(lastAcked);
      const revisions = await store.listRevisions('web');
      expect(revisions.length).toBe(20);
      expect(revisions.at(-1)?.revision).toBe(web.revision);
      expect((await store.getRevision('web', lastAcked))?.spec.image).toBe(`web:${lastAcked}`);
      expect(await store.getKv<number>('last')).toBeGreaterThanOrEqual(lastAcked);
      const events = await store.listEvents();
      expect(events.map((e) => e.action)).toContain(`commit-${lastAcked}`);
      // Numbering continues after the crash, past anything the child may have written unacknowledged.
      const after = { spec: { ...web.spec, image: 'web:after' }, specHash: 'after', source: 'apply' as const, at: '2026-11-28T00:00:00.000Z' };
      const [next] = await store.commitRevisions([after]);
      expect(next?.revision).toBe(web.revision + 1);
    } finally {
      await store.close();
    }
  });
});
