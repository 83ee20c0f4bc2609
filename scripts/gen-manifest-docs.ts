/**
 * `npm run docs`: writes docs/manifest.md from the schema (see scripts/manifest-docs.ts).
 * `--check`: writes nothing; exits 1 when docs/manifest.md is not what the schema says.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { renderManifestDocs } from './manifest-docs.js';
import { ROOT } from './root.js';

const file = join(ROOT, 'docs', 'manifest.md');
const text = renderManifestDocs();
if (process.argv.includes('--check')) {
  const current = await readFile(file, 'utf8').catch(() => '');
  if (current !== text) {
    process.stderr.write(`${file} is out of date with manifest/schema.ts: run \`npm run docs\`\n`);
    process.exit(1);
  }
} else {
  await writeFile(file, text);
  process.stdout.write(`wrote ${file}\n`);
}
