import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatManifestError, loadManifests, parseManifestText } from './index.js';
import { prescan } from './prescan.js';

const BASE = '[[service]]\nname = "web"\nimage = "img"\n';

/**
 * Hostile manifests found by fuzzing the CLI (issue 9): each must be one clear error naming the
 * file, short, and quick — never a hang, a stack overflow or an echo of the input.
 */
const ATTACKS: Array<[string, () => string]> = [
  ['a 2 MB bare key', () => `${BASE}${'k'.repeat(2_000_000)} = 1\n`],
  ['a 2 MB quoted key', () => `${BASE}"${'k'.repeat(2_000_000)}" = 1\n`],
  ['a 200 KB bare key', () => `${BASE}${'k'.repeat(200_000)} = 1\n`],
  ['a 100 KB quoted key', () => `${BASE}"${'k'.repeat(100_000)}" = 1\n`],
  ['arrays 10,000 deep', () => `${BASE}command = ${'['.repeat(10_000)}${']'.repeat(10_000)}\n`],
  ['arrays 10,000 deep, unclosed', () => `${BASE}command = ${'['.repeat(10_000)}\n`],
  ['inline tables 10,000 deep', () => `${BASE}env = ${'{ a = '.repeat(10_000)}1${' }'.repeat(10_000)}\n`],
  ['a dotted key 10,000 deep', () => `${BASE}${'a.'.repeat(10_000)}b = 1\n`],
  ['a table header 10,000 deep', () => `${BASE}[${'a.'.repeat(10_000)}b]\n`],
  ['a 5 MB string value', () => `${BASE}env = { A = "${'x'.repeat(5_000_000)}" }\n`],
  ['a 5 MB unterminated string', () => `${BASE}env = { A = "${'x'.repeat(5_000_000)}`],
  ['a 200 KB multi-line string', () => `${BASE}entrypoint = ["""${'x\n'.repeat(100_000)}"""]\n`],
  ['a 200 KB wrong value', () => `${BASE}replicas = "${'x'.repeat(200_000)}"\n`],
  ['a 100 KB image', () => BASE.replace('"img"', `"${'x'.repeat(100_000)}"`)],
  ['a 100 KB memory size', () => `${BASE}[service.resources]\nmemory = "${'9'.repeat(100_000)}m"\n`],
  ['20,000 unknown keys', () => Array.from({ length: 20_000 }, (_, i) => `k${i} = 1\n`).join('') + BASE],
  ['20,000 tables', () => Array.from({ length: 20_000 }, (_, i) => `[t${i}]\n`).join('') + BASE],
];

describe('parseManifestText: hostile input is a short, clear, quick error', () => {
  it.each(ATTACKS)('%s', (_what, make) => {
    const text = make();
    // Timed warm, so the bound measures the work and not the JIT's first compile on a busy
    // machine; the e2e abuse test times the whole CLI cold.
    parseManifestText(text, 'attack.toml');
    const started = performance.now();
    const r = parseManifestText(text, 'attack.toml');
    const elapsed = performance.now() - started;
    expect(r.ok).toBe(false);
    const message = r.ok ? '' : r.errors.map(formatManifestError).join('\n');
    for (const line of message.split('\n')) expect(line.startsWith('attack.toml')).toBe(true);
    // At most the file, a place and a short excerpt: never the input echoed.
    expect(message.length).toBeLessThanOrEqual(r.ok || r.errors.length === 1 ? 300 : 51 * 120);
    expect(message).not.toContain('x'.repeat(100));
    expect(message).not.toContain('k'.repeat(100));
    expect(elapsed).toBeLessThan(1_000);
  });

  it('names the place of a too-deep value', () => {
    const r = parseManifestText(`${BASE}command = ${'['.repeat(10_000)}${']'.repeat(10_000)}\n`, 'deep.toml');
    expect(r.ok ? [] : r.errors.map(formatManifestError)).toEqual(['deep.toml:4:27: nested more than 16 levels deep']);
  });

  it('says a file is too large before parsing it', () => {
    const r = parseManifestText(`${BASE}env = { A = "${'x'.repeat(5_000_000)}" }\n`, 'big.toml');
    expect(r.ok ? [] : r.errors.map(formatManifestError)).toEqual([
      'big.toml: larger than 256 KiB (262144 bytes), the most a manifest file may be',
    ]);
  });

  it('counts bytes, not characters: 100,000 three-byte characters are too many', () => {
    const r = parseManifestText(`${BASE}# ${'€'.repeat(100_000)}\n`, 'utf8.toml');
    expect(r.ok ? [] : r.errors.map(formatManifestError)).toEqual([
      'utf8.toml: larger than 256 KiB (262144 bytes), the most a manifest file may be',
    ]);
  });

  it('quotes at most the beginning of a huge unknown key', () => {
    const r = parseManifestText(`${BASE}"${'k'.repeat(100_000)}" = 1\n`, 'f.toml');
    expect(r.ok ? [] : r.errors.map(formatManifestError)).toEqual([`f.toml: service "web": "${'k'.repeat(39)}…": unknown key`]);
  });

  it('never throws, whatever the text (property)', () => {
    const tomlish = fc.stringMatching(/^[[\]{}="'#., \nA-Za-z0-9_\\-]*$/, { maxLength: 200 });
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 300 }), tomlish), (text) => {
        const r = parseManifestText(text, 'p.toml');
        if (!r.ok) {
          expect(r.errors.length).toBeGreaterThan(0);
          for (const e of r.errors) expect(formatManifestError(e).startsWith('p.toml')).toBe(true);
        }
      }),
      { numRuns: 2_000 },
    );
  });

  it('never throws for any text after a valid service (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (tail) => {
        const r = parseManifestText(`${BASE}${tail}`, 'p.toml');
        expect(typeof r.ok).toBe('boolean');
      }),
      { numRuns: 1_000 },
    );
  });
});

describe('prescan: valid TOML within the limits always passes', () => {
  it.each<[string, string]>([
    ['strings with brackets and quotes', 'a = "[[{{\\"}}]]"\nb = \'[{#\'\nc = """\n]]}}"""\nd = \'\'\'\n[[[\n\'\'\''],
    ['multi-line strings ending in extra quotes', 'a = """x""""\nb = """x"""""\nc = \'\'\'y\'\'\'\'\'\nd = ["""[""", 1]'],
    ['a backslash before the closing quote', 'a = "x\\\\"\nb = [1, [2, [3]]]'],
    ['line continuations', 'a = """\\\n  [[[ \\\n  """\nb = { c = 1 }'],
    ['comments with brackets', '# [[[[[[[[[[[[[[[[[[[[[[[[\na = 1 # {{{{{{{{{{{{{{{{{{{{{{{{{{{'],
    ['nesting exactly 16 deep', `a = ${'['.repeat(16)}${']'.repeat(16)}`],
    ['dotted keys and headers', '[a.b.c]\nd.e.f = 1\n[[g.h]]\ni = { j.k = 2 }'],
    ['multi-line arrays', 'a = [\n  1,\n  [2, 3],\n]\nb.c = 1'],
    ['dates and floats', 'a = 1979-05-27T07:32:00Z\nb = 1.5e3\nc = -0.0\nd = 1_000'],
  ])('%s', (_what, text) => {
    expect(prescan(text)).toBeNull();
  });

  it('refuses nesting 17 deep', () => {
    expect(prescan(`a = ${'['.repeat(17)}${']'.repeat(17)}`)).toEqual({ line: 1, col: 21, message: 'nested more than 16 levels deep' });
  });
});

describe('loadManifests: bounded reading', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'orca-abuse-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a 5 MB file without parsing it, naming it', async () => {
    const file = join(dir, 'big.toml');
    await writeFile(file, `${BASE}env = { A = "${'x'.repeat(5_000_000)}" }\n`);
    const started = performance.now();
    const r = await loadManifests([file]);
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(r.ok ? [] : r.errors.map(formatManifestError)).toEqual([`${file}: larger than 256 KiB (262144 bytes), the most a manifest file may be`]);
  });

  it('refuses an endless file (/dev/zero) without reading it whole', async () => {
    const r = await loadManifests(['/dev/zero']);
    expect(r.ok ? [] : r.errors.map(formatManifestError)).toEqual(['/dev/zero: larger than 256 KiB (262144 bytes), the most a manifest file may be']);
  });
});
