import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FULL_EXAMPLE, renderManifestDocs } from './manifest-docs.js';
import { KNOWN_KEYS } from '../manifest/schema.js';
import { parseManifestText } from '../manifest/parse.js';
import { DEFAULTS } from '../core/defaults.js';

const DOC = join(import.meta.dirname, '..', 'docs', 'manifest.md');

describe('docs/manifest.md, the manifest reference', () => {
  const text = renderManifestDocs();

  it('is up to date with manifest/schema.ts (run `npm run docs` when this fails)', () => {
    expect(readFileSync(DOC, 'utf8')).toBe(text);
  });

  it('has a row for every field of the schema, in its table', () => {
    for (const [table, keys] of Object.entries(KNOWN_KEYS)) {
      if (table === '<file>') continue;
      // A table is a section `[service.x]`; an array of tables (mounts) is `[[service.x]]`.
      const arrayHeading = `### \`[[service.${table}]]\``;
      const heading = text.includes(arrayHeading) ? arrayHeading : `### \`[service.${table}]\``;
      const section = table === '' ? text.split('## `[[service]]`')[1]!.split('### ')[0]! : text.split(heading)[1]!.split('### ')[0]!;
      for (const key of keys) expect(section, `${table || 'service'}.${key}`).toMatch(new RegExp(`^\\| \`${key}\`( \\(required\\))? \\|`, 'm'));
    }
  });

  it('shows defaults from core/defaults.ts and bounds from the schema', () => {
    expect(text).toMatch(new RegExp(`\\| \`replicas\` \\| integer \\| \`${DEFAULTS.replicas}\` \\| 0 – 1000 \\|`));
    expect(text).toMatch(/\| `port` \| integer \| – \| 1 – 65535 \|/);
    expect(text).toMatch(new RegExp(`\\| \`ready_timeout_secs\` \\| number \\(seconds\\) \\| \`${DEFAULTS.deploy.readyTimeoutSecs}\` \\| ${DEFAULTS.minDurationSecs} – \\d+ \\|`));
    expect(text).toContain('`"start-first"` or `"stop-first"`');
  });

  it('its complete example is a valid manifest', () => {
    const r = parseManifestText(FULL_EXAMPLE, 'example.toml');
    expect(r.ok).toBe(true);
    expect(text).toContain(FULL_EXAMPLE);
  });
});
