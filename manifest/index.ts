/** Manifest: TOML text → validated, normalised ServiceSpecs; spec hash; diff and rendering. */
export type { DeployStrategy, ParsedService, ProbeCheck, ProbeSpec, RestartPolicy, ServiceSpec } from './types.js';
export { formatManifestError, type ManifestError } from './errors.js';
export { loadManifests, parseManifestText, readManifestFile } from './parse.js';
export { excerpt, LIMITS } from './limits.js';
export { checkStoredSpec } from './stored.js';
export { canonicalJson, specHash } from './hash.js';
export { diffSpecs, type FieldChange } from './diff.js';
export { toManifestTable, toManifestToml, type ManifestTable, type ManifestValue } from './render.js';
export { formatMemory, parseMemory, MIN_MEMORY_BYTES } from './units.js';
export { NAME_RE } from './schema.js';
