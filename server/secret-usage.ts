/**
 * Which secrets a service uses, and what that means for its revisions (SPEC §3.9). Pure: the
 * control plane reads the store and the secrets, these functions decide.
 */
import { formatManifestError } from '../manifest/index.js';
import { formatPath } from '../manifest/errors.js';
import type { ServiceSpec } from '../manifest/types.js';
import type { SecretVersions, ServiceRecord } from '../store/types.js';

/**
 * The secret names a spec uses, in `secrets` or as values of `secret_env`; sorted, each once.
 * Defensive: a damaged stored spec (not arrays, not strings) uses nothing it cannot name.
 */
export function usedSecrets(spec: ServiceSpec): string[] {
  const names = new Set<string>();
  if (Array.isArray(spec.secrets)) for (const n of spec.secrets) if (typeof n === 'string') names.add(n);
  if (spec.secretEnv && typeof spec.secretEnv === 'object') for (const n of Object.values(spec.secretEnv)) if (typeof n === 'string') names.add(n);
  return [...names].sort();
}

/** The current versions of the secrets `spec` uses (unknown ones left out), keys sorted. */
export function versionsFor(spec: ServiceSpec, current: ReadonlyMap<string, number>): SecretVersions {
  const out: SecretVersions = {};
  for (const name of usedSecrets(spec)) {
    const v = current.get(name);
    if (v !== undefined) out[name] = v;
  }
  return out;
}

/** Whether two version maps say the same (a missing map is an empty one). */
export function sameVersions(a: SecretVersions | undefined, b: SecretVersions | undefined): boolean {
  const x = Object.entries(a ?? {});
  const y = b ?? {};
  return x.length === Object.keys(y).length && x.every(([k, v]) => y[k] === v);
}

/** `secret db-password changed (version 2)`, one clause per secret whose version moved from `before` to `after`. */
export function changeReason(before: SecretVersions | undefined, after: SecretVersions): string {
  const moved = Object.entries(after).filter(([name, v]) => before?.[name] !== undefined && before[name] !== v);
  if (moved.length === 0) return 'secret versions updated';
  return moved.map(([name, v]) => `secret ${name} changed (version ${v})`).join(', ');
}

/** Live services that use secret `name`, sorted by name. */
export function usersOf(services: readonly ServiceRecord[], name: string): string[] {
  return services.filter((s) => !s.deletedAt && usedSecrets(s.spec).includes(name)).map((s) => s.name).sort();
}

/**
 * One manifest error per reference to a secret that does not exist, in the house format:
 * `web.toml: service "web": secret_env.DB_PASSWORD: unknown secret "db-password" (…)`.
 */
export function unknownSecretErrors(specs: ReadonlyArray<{ spec: ServiceSpec; file: string }>, known: ReadonlySet<string>): string[] {
  const errors: string[] = [];
  const unknown = (name: string) => `unknown secret "${name}" (create it first: orca secret set ${name})`;
  for (const { spec, file } of specs) {
    // `secrets` is sorted by now, so an index would not point into the file: the list is named.
    for (const name of spec.secrets ?? []) {
      if (!known.has(name)) errors.push(formatManifestError({ file, service: spec.name, path: 'secrets', message: unknown(name) }));
    }
    for (const [variable, name] of Object.entries(spec.secretEnv ?? {})) {
      if (!known.has(name)) errors.push(formatManifestError({ file, service: spec.name, path: formatPath(['secret_env', variable]), message: unknown(name) }));
    }
  }
  return errors;
}
