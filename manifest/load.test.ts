import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatManifestError, loadManifests } from './index.js';

const service = (name: string) => `[[service]]\nname = "${name}"\nimage = "img"\n`;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'orca-manifest-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function files(entries: Record<string, string>): Promise<void> {
  for (const [name, text] of Object.entries(entries)) {
    await mkdir(join(dir, name, '..'), { recursive: true });
    await writeFile(join(dir, name), text);
  }
}

async function load(...paths: string[]) {
  const r = await loadManifests(paths);
  return r.ok
    ? { services: r.value.map((s) => `${s.spec.name}@${s.file.slice(dir.length + 1)}`) }
    : { errors: r.errors.map((e) => formatManifestError(e).replaceAll(`${dir}/`, '')) };
}

describe('loadManifests', () => {
  it('loads every *.toml of a directory, sorted by name, and skips other and hidden files', async () => {
    await files({
      'b.toml': service('bravo'),
      'a.toml': service('alpha') + service('alpha2'),
      '10.toml': service('ten'),
      'README.md': 'not a manifest',
      '.hidden.toml': 'not = [valid',
      'sub/c.toml': service('nested'),
    });
    expect(await load(dir)).toEqual({ services: ['ten@10.toml', 'alpha@a.toml', 'alpha2@a.toml', 'bravo@b.toml'] });
  });

  it('keeps the order of the paths given, and reads a file named twice once', async () => {
    await files({ 'x.toml': service('x'), 'd/a.toml': service('a'), 'd/b.toml': service('b') });
    expect(await load(join(dir, 'x.toml'), join(dir, 'd'), join(dir, 'd/b.toml'))).toEqual({
      services: ['x@x.toml', 'a@d/a.toml', 'b@d/b.toml'],
    });
  });

  it('rejects a service name defined in two files, naming both', async () => {
    await files({ 'a.toml': service('web'), 'b.toml': service('api') + service('web') });
    expect(await load(dir)).toEqual({
      errors: ['b.toml: service "web": defined more than once (already defined in a.toml)'],
    });
  });

  it('reports a missing path, an empty directory and every file error together', async () => {
    await files({ 'empty/README': '', 'bad.toml': '[[service]]\nname = "x"\n', 'worse.toml': 'a = [' });
    expect(await load(join(dir, 'nope.toml'), join(dir, 'empty'), join(dir, 'bad.toml'), join(dir, 'worse.toml'))).toEqual({
      errors: [
        'nope.toml: no such file or directory',
        'empty: no *.toml files in this directory (nothing to apply)',
        'bad.toml: service "x": image: is required',
        'worse.toml:1:7: Unterminated inline array',
      ],
    });
  });

  it('reports a file with no service', async () => {
    await files({ 'a.toml': service('web'), 'b.toml': '# only a comment\n' });
    expect(await load(dir)).toEqual({ errors: ['b.toml: no [[service]] found (nothing to apply)'] });
  });

  it('reports being given no paths at all', async () => {
    expect(await load()).toEqual({ errors: ['-: no manifest files given (nothing to apply)'] });
  });
});
