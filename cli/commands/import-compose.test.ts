import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import TOML from '@iarna/toml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseManifestText } from '../../manifest/parse.js';
import { CliError, EXIT } from '../exit.js';
import { buildProgram } from '../program.js';
import { importCompose } from './import-compose.js';

const FIX = 'test/fixtures/compose';

async function run(file: string): Promise<{ stdout: string; stderr: string; code: number; message?: string }> {
  let stdout = '';
  let stderr = '';
  const io = { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } };
  try {
    await importCompose(file, io);
    return { stdout, stderr, code: EXIT.ok };
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    return { stdout, stderr, code: e.exitCode, message: e.message };
  }
}

describe('orca import compose FILE', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'orca-import-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('prints a manifest that Orca validates on stdout, and on stderr each untranslated key as FILE:LINE: key: why', async () => {
    const r = await run(`${FIX}/kitchen-sink.yml`);
    expect(r.code).toBe(0);
    const parsed = parseManifestText(r.stdout, 'out.toml');
    expect(parsed.ok).toBe(true);
    expect((TOML.parse(r.stdout) as { service: Array<{ name: string }> }).service.map((s) => s.name)).toEqual(['app', 'worker']);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toContain(`${FIX}/kitchen-sink.yml:11: services.app.build: not translated (Orca runs prebuilt images; build it and set image: \`docker compose build\` tags it sink-app, used as image)`);
    expect(lines).toContain(`${FIX}/kitchen-sink.yml:17: services.app.depends_on: not translated (Orca has no start order: every service starts at once, readiness keeps traffic away from one until it is ready, and one that crashes while what it needs starts is restarted with backoff)`);
    for (const l of lines) expect(l).toMatch(new RegExp(`^${FIX}/kitchen-sink\\.yml:\\d+: [\\w.\\[\\]-]+: `));
    // Nothing else reaches stdout: it pipes straight into a file for orca apply.
    expect(r.stdout.startsWith('# Translated from')).toBe(true);
  });

  it('prints the orca secret set commands for the secrets the services use', async () => {
    const r = await run(`${FIX}/secrets.yml`);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('Secrets to store before orca apply (values are never copied into the manifest):\n  orca secret set db-password -f test/fixtures/compose/secrets/db_password.txt\n');
    expect(r.stdout).not.toContain('API_KEY');
  });

  it('exit 2 with the file and line for what is not YAML or not a Compose file; nothing on stdout', async () => {
    const cases: Array<[string, RegExp]> = [
      ['not-yaml.yml', /^test\/fixtures\/compose\/not-yaml\.yml:5: not valid YAML: /],
      ['list.yml', /^test\/fixtures\/compose\/list\.yml:1: not a Compose file: the document is a list/],
      ['alias-bomb.yml', /^test\/fixtures\/compose\/alias-bomb\.yml: refused: its aliases expand too much/],
      ['name-clash.yml', /^test\/fixtures\/compose\/name-clash\.yml:4: services "web_app" and "web-app" both become "web-app"/],
      ['missing.yml', /^test\/fixtures\/compose\/missing\.yml: cannot read: no such file$/],
    ];
    for (const [f, re] of cases) {
      const r = await run(`${FIX}/${f}`);
      expect(r.code, f).toBe(EXIT.invalid);
      expect(r.message, f).toMatch(re);
      expect(r.stdout, f).toBe('');
    }
    const dirResult = await run(dir);
    expect(dirResult.code).toBe(EXIT.invalid);
    expect(dirResult.message).toMatch(/is a directory/);
  });

  it('a 5 MB file is refused without being read whole', async () => {
    const big = join(dir, 'big.yml');
    await writeFile(big, `services:\n  web:\n    image: x\n# ${'x'.repeat(5 * 1024 * 1024)}\n`);
    const r = await run(big);
    expect(r.code).toBe(EXIT.invalid);
    expect(r.message).toBe(`${big}: larger than 1024 KiB, the most orca import compose reads`);
  });

  it('is wired as `orca import compose FILE`, and `orca schema` beside it', () => {
    const program = buildProgram();
    const imp = program.commands.find((c) => c.name() === 'import');
    expect(imp?.commands.map((c) => c.name())).toEqual(['compose']);
    expect(program.commands.some((c) => c.name() === 'schema')).toBe(true);
  });
});
