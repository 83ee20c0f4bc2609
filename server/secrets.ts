/**
 * The secrets of SPEC §3.9, kept in the store's kv namespace, sealed with the cluster key:
 *
 *   kv secret/<name>      SecretRecord: name, version, updated, the sealed value (or a tombstone)
 *   kv secret-key         { fingerprint }: which cluster key sealed them (see keyFingerprint)
 *
 * Versions count 1, 2, … per name and are never reused, even across rm and set again (a removed
 * secret leaves a tombstone with its last version), so a version names one value for good.
 * Values never leave this module except through reveal(); nothing here logs or quotes them.
 */
import { timingSafeEqual } from 'node:crypto';
import { OrcaError } from '../core/errors.js';
import { NAME_RE } from '../manifest/index.js';
import type { Store } from '../store/types.js';
import { keyFingerprint, openValue, sealValue, type SealedValue } from './secret-crypto.js';

/** The largest value, in bytes (SPEC §3.9). */
export const MAX_SECRET_BYTES = 64 * 1024;
const PREFIX = 'secret/';
/** The kv key of the fingerprint of the key that seals the secrets. */
export const FINGERPRINT_KEY = 'secret-key';

/** What may be shown about a secret: never its value. */
export interface SecretInfo {
  name: string;
  version: number;
  /** ISO-8601. */
  updated: string;
}

interface SecretRecord extends SecretInfo {
  /** Absent on a tombstone (a removed secret). */
  sealed?: SealedValue;
}

export type SetResult = { info: SecretInfo; change: 'created' | 'updated' | 'unchanged' };

/** Why `name` cannot be a secret's name, or null. */
export function secretNameProblem(name: string): string | null {
  return NAME_RE.test(name) ? null : 'must be a DNS label: 1-63 lower-case letters, digits or "-", starting and ending with a letter or digit';
}

/** Why `value` cannot be a secret's value, or null. */
export function secretValueProblem(value: Buffer): string | null {
  if (value.length === 0) return 'the value is empty';
  if (value.length > MAX_SECRET_BYTES) return `the value is larger than ${MAX_SECRET_BYTES / 1024} KiB (${MAX_SECRET_BYTES} bytes)`;
  return null;
}

export class SecretStore {
  private constructor(
    private readonly store: Store,
    private readonly key: Buffer,
  ) {}

  /**
   * The secrets of `store`, sealed with `key`. Throws OrcaError ORCA_UNAUTHORIZED when the store's
   * secrets were sealed with another key (`keyPath` is named in the message, so the operator
   * knows which file to restore). Records the key's fingerprint on first use (of servers starting
   * together on one shared store with different keys, one records its key and the others refuse).
   */
  static async open(store: Store, key: Buffer, keyPath: string): Promise<SecretStore> {
    const fingerprint = keyFingerprint(key);
    let known = await store.getKv<{ fingerprint?: unknown }>(FINGERPRINT_KEY);
    if (!known && !(await store.createKv(FINGERPRINT_KEY, { fingerprint }))) known = await store.getKv<{ fingerprint?: unknown }>(FINGERPRINT_KEY);
    if (known && typeof known === 'object' && known.fingerprint !== fingerprint) {
      throw new OrcaError(
        'ORCA_UNAUTHORIZED',
        `the cluster key ${keyPath} is not the key this store's secrets were sealed with: restore the original ` +
          `cluster.key from a backup (or point --cluster-key-file at it); with another key no secret can be read`,
      );
    }
    return new SecretStore(store, key);
  }

  /** Live secrets, sorted by name. */
  async list(): Promise<SecretInfo[]> {
    const all = await this.store.listKv<SecretRecord>(PREFIX);
    return all.filter((e) => isRecord(e.value) && e.value.sealed !== undefined).map((e) => info(e.value));
  }

  /** Name → current version of every live secret. */
  async versions(): Promise<Map<string, number>> {
    return new Map((await this.list()).map((s) => [s.name, s.version]));
  }

  async get(name: string): Promise<SecretInfo | undefined> {
    const r = await this.record(name);
    return r?.sealed ? info(r) : undefined;
  }

  /**
   * Stores `value` as the secret's next version; a value equal to the current one changes
   * nothing (`unchanged`, so a script that sets the same value again rolls nothing out).
   * Throws OrcaError ORCA_USAGE for a bad name or value (the message never quotes the value).
   */
  async set(name: string, value: Buffer, at: string): Promise<SetResult> {
    const bad = secretNameProblem(name) ?? secretValueProblem(value);
    if (bad) throw new OrcaError('ORCA_USAGE', `secret "${name.slice(0, 63)}": ${bad}`);
    const prev = await this.record(name);
    if (prev?.sealed) {
      // A record that no longer opens (damaged) is simply replaced: setting the value again is the fix.
      const current = tryOpen(() => openValue(this.key, name, prev.version, prev.sealed as SealedValue));
      if (current && current.length === value.length && timingSafeEqual(current, value)) return { info: info(prev), change: 'unchanged' };
    }
    const version = (prev?.version ?? 0) + 1;
    const record: SecretRecord = { name, version, updated: at, sealed: sealValue(this.key, name, version, value) };
    await this.store.putKv(PREFIX + name, record);
    return { info: info(record), change: prev?.sealed ? 'updated' : 'created' };
  }

  /** Removes a secret, keeping its last version number. False when there was none. */
  async remove(name: string, at: string): Promise<boolean> {
    const prev = await this.record(name);
    if (!prev?.sealed) return false;
    const tombstone: SecretRecord = { name, version: prev.version, updated: at };
    await this.store.putKv(PREFIX + name, tombstone);
    return true;
  }

  /**
   * The value of a secret, for delivery into an instance. With `version`, only that version:
   * an assignment made for an older version gets ORCA_CONFLICT (its new revision is on the way).
   * Undefined when there is no such secret. Throws ORCA_STORE_CORRUPT when it does not decrypt.
   */
  async reveal(name: string, version?: number): Promise<{ name: string; version: number; value: Buffer } | undefined> {
    const r = await this.record(name);
    if (!r?.sealed) return undefined;
    if (version !== undefined && r.version !== version) {
      throw new OrcaError('ORCA_CONFLICT', `secret "${name}" is at version ${r.version}, not ${version}`);
    }
    return { name, version: r.version, value: openValue(this.key, name, r.version, r.sealed) };
  }

  private async record(name: string): Promise<SecretRecord | undefined> {
    if (secretNameProblem(name)) return undefined;
    const r = await this.store.getKv<SecretRecord>(PREFIX + name);
    return isRecord(r) ? r : undefined;
  }
}

function tryOpen(f: () => Buffer): Buffer | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}

function info(r: SecretRecord): SecretInfo {
  return { name: r.name, version: r.version, updated: r.updated };
}

function isRecord(v: unknown): v is SecretRecord {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return typeof r.name === 'string' && typeof r.version === 'number' && typeof r.updated === 'string';
}
