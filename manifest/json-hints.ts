/**
 * JSON Schema fragments for the rules of schema.ts that `z.toJSONSchema` cannot render (custom
 * types, refinements, rules across fields). Each is registered in schema.ts on the very zod
 * schema that checks the rule, next to that check, so the rule and its JSON form sit together;
 * json-schema.ts merges them into the schema `orca schema` prints. Fragments are JSON Schema
 * draft-07 (what taplo, the engine of Even Better TOML, validates) and use only regular
 * expressions without look-around, which every engine supports.
 *
 * A rule that JSON Schema cannot say at all (two fields compared, paths distinct across
 * tables) has no fragment: the editor misses it and `orca apply` still reports it.
 */
import { z } from 'zod';

export type JsonHint = Record<string, unknown>;

/** The registry of fragments; toJSONSchema's `metadata` option. Not zod's global registry. */
export const jsonSchemaHints = z.registry<JsonHint>();
