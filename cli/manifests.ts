import { formatManifestError, loadManifests, readManifestFile } from '../manifest/index.js';
import { CliError, EXIT } from './exit.js';

export interface ManifestFile {
  file: string;
  text: string;
}

/**
 * Expands and validates manifest paths locally (so bad input is exit 2 even with no
 * server), then returns the texts to send; the server validates them again. Reading is
 * bounded (a file over the manifest size limit is refused unread).
 */
export async function readManifests(paths: string[]): Promise<{ files: ManifestFile[]; services: string[] }> {
  const r = await loadManifests(paths);
  if (!r.ok) throw new CliError(EXIT.invalid, r.errors.map(formatManifestError).join('\n'));
  const names = [...new Set(r.value.map((p) => p.file))];
  const files: ManifestFile[] = [];
  for (const file of names) {
    const text = await readManifestFile(file);
    if (typeof text !== 'string') throw new CliError(EXIT.invalid, formatManifestError(text.error));
    files.push({ file, text });
  }
  return { files, services: r.value.map((p) => p.spec.name) };
}
