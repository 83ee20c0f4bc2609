/**
 * Builds the example images locally (no registry): `node dist/examples/build-images.js`.
 * Prints one line per image, `built <tag>` or `cached <tag>`. Exit 1 with a message on failure.
 * Importable: buildExampleImages is re-exported and main runs only when executed directly.
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { errorMessage } from '../core/errors.js';
import { DockerRuntime } from '../runtime/docker-runtime.js';
import { buildExampleImages } from './images.js';

export { buildExampleImages };

async function main(): Promise<void> {
  const results = await buildExampleImages(new DockerRuntime());
  for (const r of results) console.log(`${r.built ? 'built' : 'cached'} ${r.tag}`);
}

function invokedDirectly(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(script)).href;
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  main().catch((e: unknown) => {
    console.error(`build-images: ${errorMessage(e)}`);
    process.exitCode = 1;
  });
}
