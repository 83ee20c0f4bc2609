import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * The version in Orca's package.json, found by walking up from `start` (cli/ when run from
 * source, dist/cli/ when built). One small synchronous read: no measurable start-up cost.
 * Returns "unknown" when no package.json of Orca is found (never throws).
 */
export function orcaVersion(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'orca' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      /* no package.json here (or not JSON): look further up */
    }
    if (dirname(dir) === dir) return 'unknown';
  }
}
