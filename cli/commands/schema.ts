import { manifestJsonSchema } from '../../manifest/json-schema.js';

/**
 * `orca schema`: prints the manifest's JSON Schema (draft-07) for editors, generated from the
 * schema `orca apply` validates with. Needs no server.
 */
export function schema(out: { write(s: string): unknown } = process.stdout): void {
  out.write(`${JSON.stringify(manifestJsonSchema(), null, 2)}\n`);
}
