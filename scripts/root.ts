import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The repository root: the first directory above this file with package.json (works from scripts/ and dist/scripts/). */
export const ROOT = ((): string => {
  for (let dir = import.meta.dirname; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${import.meta.dirname}`);
  }
})();
