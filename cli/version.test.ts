import { describe, expect, it } from 'vitest';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { orcaVersion } from './version.js';

describe('orcaVersion', () => {
  it("is the version in Orca's package.json, from cli/ as from dist/cli/", () => {
    const root = join(import.meta.dirname, '..');
    const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    expect(orcaVersion(import.meta.dirname)).toBe(version);
    expect(orcaVersion(join(root, 'dist', 'cli'))).toBe(version);
  });

  it("skips another package's package.json and says unknown when there is none", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'orca-version-'));
    try {
      await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'orca', version: '9.8.7' }));
      await mkdir(join(dir, 'a', 'b'), { recursive: true });
      await writeFile(join(dir, 'a', 'package.json'), JSON.stringify({ name: 'other', version: '1.0.0' }));
      await writeFile(join(dir, 'a', 'b', 'package.json'), 'not json');
      expect(orcaVersion(join(dir, 'a', 'b'))).toBe('9.8.7');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(orcaVersion('/')).toBe('unknown');
  });
});
