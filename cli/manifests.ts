import { readFile } from 'node:fs/promises';
import { formatManifestError, loadManifests } from '../manifest/index.js';
import { CliError, EXIT } from './exit.js';

export interface ManifestFile {
  file: string;
  text: string;
}

/**
 * Expands and validates manifest paths locally (so bad input is exit 2 even with no
 * server), then returns the texts to send; the server validates them again.
 */
export async function readManifests(paths: string[]): Promise<{ files: ManifestFile[]; services: string[] }> {
  const r = await loadManifests(paths);
  if (!r.ok) throw new CliError(EXIT.invalid, r.errors.map(formatManifestError).join('\n'));
  const names = [...new Set(r.value.map((p) => p.file))];
  const files = await Promise.all(names.map(async (file) => ({ file, text: await readFile(file, 'utf8') })));
  return { files, services: r.value.map((p) => p.spec.name) };
}
