/**
 * Which secret values go to a node (SPEC §3.9): those of the secret versions its assigned slots
 * use, read from the store for each publish. Values never appear in a log line or an error here.
 */
import { isOrcaError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { SlotAssignment } from '../controllers/container/types.js';
import type { SecretValue } from '../protocol/messages.js';
import type { SecretStore } from './secrets.js';

/** Reads the values one node's assignment set needs. Never throws. */
export type SecretResolver = (slots: readonly SlotAssignment[]) => Promise<SecretValue[]>;

/**
 * A resolver over the cluster's secret store. A version the store no longer holds (a newer value
 * was set: the slot's new revision is on its way, and an agent keeps the value it already has)
 * or a secret removed is left out; a value that does not open is left out and logged by name.
 */
export function secretResolver(store: Pick<SecretStore, 'reveal'>, log: Logger): SecretResolver {
  return async (slots) => {
    const wanted = new Map<string, { name: string; version: number }>();
    for (const a of slots) for (const [name, version] of Object.entries(a.secretVersions ?? {})) wanted.set(`${name}@${version}`, { name, version });
    const out: SecretValue[] = [];
    for (const { name, version } of wanted.values()) {
      try {
        const r = await store.reveal(name, version);
        if (r) out.push({ name, version, value: r.value.toString('base64') });
      } catch (err) {
        if (isOrcaError(err) && err.code === 'ORCA_CONFLICT') continue;
        log.warn({ secret: name, version, err }, 'cannot read a secret for delivery; instances that need it wait');
      }
    }
    return out;
  };
}
