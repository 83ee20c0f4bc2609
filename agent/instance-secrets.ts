/**
 * Delivery of secrets into this node's instances (SPEC §3.9), for the executor: the files of a
 * slot's `secrets` written to the instance's directory on the node's tmpfs (SecretFiles) before
 * its container is created, the values of its `secret_env` handed back for the container's
 * environment, and the directory removed with the container — or, for one left behind (a
 * container removed behind Orca's back, a create that failed), by the watchdog's sweep.
 */
import { OrcaError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { secretEnvOf } from '../controllers/container/container-spec.js';
import type { SlotAssignment } from '../controllers/container/types.js';
import type { InstanceSecretsPort } from '../controllers/executor.js';
import type { SecretCache } from './secret-cache.js';
import type { SecretFiles } from './secret-files.js';

export class InstanceSecrets implements InstanceSecretsPort {
  /** Instances between prepare and settled: their directories are not orphans yet. */
  private readonly creating = new Set<string>();

  constructor(
    private readonly cache: SecretCache,
    private readonly files: SecretFiles,
    private readonly log: Logger,
  ) {}

  async prepare(a: SlotAssignment, instance: string): Promise<{ dir: string | null; env: Record<string, string> }> {
    const values = this.cache.valuesFor(a);
    const names = [...new Set(a.spec.secrets ?? [])];
    // An assignment without the version of a secret its spec names is never delivered empty.
    const missing = [...names, ...Object.values(a.spec.secretEnv ?? {})].find((n) => !values.has(n));
    if (missing !== undefined) throw new OrcaError('ORCA_NOT_FOUND', `secret "${missing}" has not reached this node (the assignment names no version of it)`, { transient: true });
    this.creating.add(instance);
    const dir = names.length > 0 ? await this.files.write(instance, names.map((name) => ({ name, data: values.get(name) ?? Buffer.alloc(0) }))) : null;
    return { dir, env: secretEnvOf(a, values) };
  }

  settled(instance: string): void {
    this.creating.delete(instance);
  }

  async removed(instance: string): Promise<void> {
    try {
      await this.files.remove(instance);
    } catch (err) {
      this.log.warn({ instance, err }, 'cannot remove the secret files of a removed instance; the watchdog tries again');
    }
  }

  /**
   * Removes the secret directories of instances that have no container (`containers` lists the
   * instance ids that have one, read after the directories were) and are not being created.
   * Returns the instances whose files it removed. Never throws.
   */
  async sweep(listContainers: () => Promise<Set<string>>): Promise<string[]> {
    try {
      const dirs = await this.files.list();
      if (dirs.length === 0) return [];
      const live = await listContainers();
      const gone = dirs.filter((i) => !live.has(i) && !this.creating.has(i));
      for (const i of gone) await this.files.remove(i);
      return gone;
    } catch (err) {
      this.log.warn({ err }, 'secret files sweep failed; the next watchdog pass tries again');
      return [];
    }
  }
}
