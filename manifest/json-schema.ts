/**
 * The JSON Schema of a manifest file, for editors (`orca schema`, SPEC §4), generated from the one
 * zod schema the parser validates with (schema.ts) by `z.toJSONSchema` — never written by hand.
 *
 * - Draft-07: taplo (the engine of VS Code's Even Better TOML, and of `taplo lint`) validates
 *   drafts 4, 6 and 7 (its jsonschema crate is built without the 2019-09 / 2020-12 features);
 *   VS Code's JSON tooling and ajv read draft-07 too.
 * - The shape is the TOML document's: a top-level `service` array of tables (`[[service]]`).
 * - What zod cannot render comes from fragments registered next to each rule in schema.ts
 *   (json-hints.ts): memory sizes, path rules, reserved label keys, one check per probe, a route
 *   needing `port`… Rules JSON Schema cannot say (two fields compared, paths distinct across
 *   tables, secret_env against env) are left to `orca apply`, which reports them.
 * - Descriptions are the prose of docs/manifest.md (field-docs.ts).
 *
 * Pure; the result is a fresh object each call.
 */
import { z } from 'zod';
import { docOf } from './field-docs.js';
import { jsonSchemaHints } from './json-hints.js';
import { manifestSchema } from './schema.js';
import { DEFAULTS } from '../core/defaults.js';

export type JsonSchema = { [key: string]: unknown };

/** Stable identifier of the schema; a URN, since no URL serves it. */
export const MANIFEST_SCHEMA_ID = 'urn:orca:manifest';

const TARGET = 'draft-07';

/** The manifest file's JSON Schema (draft-07). */
export function manifestJsonSchema(): JsonSchema {
  const root = generate(manifestSchema);
  const ordered: JsonSchema = {
    $schema: root.$schema,
    $id: MANIFEST_SCHEMA_ID,
    title: 'Orca manifest',
    description:
      'An Orca manifest: one or more [[service]] tables, applied with `orca apply -f FILE`. Unknown keys are errors; durations are seconds (fractions allowed, at least ' +
      `${DEFAULTS.minDurationSecs}). Some rules across fields are checked by \`orca apply\` only.`,
  };
  for (const [k, v] of Object.entries(root)) if (!(k in ordered)) ordered[k] = v;
  // parse.ts: a file without any service is an error (nothing to apply).
  ordered.required = ['service'];
  const service = (ordered.properties as Record<string, JsonSchema>).service;
  if (!service) throw new Error('json-schema: the manifest schema has no "service" array');
  service.minItems = 1;
  service.description = 'The services of this file, one [[service]] table each.';
  describe(service.items as JsonSchema, '');
  return ordered;
}

function generate(schema: z.ZodType): JsonSchema {
  return z.toJSONSchema(schema, {
    target: TARGET,
    io: 'input',
    metadata: jsonSchemaHints,
    // A type zod cannot render (z.custom) gets its form from its fragment; a test checks that no
    // field is left as `{}` (anything goes).
    unrepresentable: 'any',
    override: ({ zodSchema, jsonSchema }) => {
      // `\/` is a JavaScript habit; older Rust regex (taplo) refuses escapes it does not know.
      const j0 = jsonSchema as JsonSchema;
      if (typeof j0.pattern === 'string') j0.pattern = j0.pattern.replace(/(^|[^\\])\\\//g, '$1/');
      // A table of strings (schema.ts stringMap) is `unknown` (a guard against __proto__ and too
      // many keys) piped into a record: its input side says nothing, so render the record.
      const def = zodSchema._zod.def;
      if (def.type === 'pipe' && def.in._zod.def.type === 'unknown') {
        const out = generate(def.out as z.ZodType);
        delete out.$schema;
        const j = jsonSchema as JsonSchema;
        for (const k of Object.keys(j)) delete j[k];
        Object.assign(j, out, jsonSchemaHints.get(zodSchema) ?? {});
      }
    },
  }) as JsonSchema;
}

/** Adds the prose of docs/manifest.md as `description`, through tables and arrays of tables. */
function describe(table: JsonSchema, prefix: string): void {
  const props = table.properties as Record<string, JsonSchema> | undefined;
  if (!props) return;
  for (const [key, j] of Object.entries(props)) {
    const path = prefix + key;
    const doc = docOf(path);
    if (doc) j.description = doc.default === undefined ? doc.doc : `${doc.doc} Default: ${doc.default}.`;
    const items = j.items as JsonSchema | undefined;
    if (j.type === 'object') describe(j, `${path}.`);
    else if (items && items.type === 'object') describe(items, `${path}.`);
  }
}
