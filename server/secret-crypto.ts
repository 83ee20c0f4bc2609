/**
 * Encryption of secret values with the cluster key (SPEC §3.9): AES-256-GCM, a fresh random
 * 12-byte IV per write, and the secret's name and version as additional authenticated data, so
 * a ciphertext moved to another name or version fails to open instead of revealing its value
 * there. No I/O; the IV comes from node's CSPRNG (not the injected Rng: it must not repeat).
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { OrcaError } from '../core/errors.js';

/** The cluster key is exactly this many bytes. */
export const CLUSTER_KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** Bumped if the sealing scheme changes; part of the additional data, so old and new never mix. */
const SCHEME = 'orca.secret.v1';

/** A sealed value as the store keeps it: base64 fields, never the plaintext. */
export interface SealedValue {
  iv: string;
  tag: string;
  data: string;
}

function aad(name: string, version: number): Buffer {
  return Buffer.from(`${SCHEME}\0${name}\0${version}`, 'utf8');
}

function checkKey(key: Buffer): void {
  if (key.length !== CLUSTER_KEY_BYTES) throw new OrcaError('ORCA_INTERNAL', `bug: a cluster key of ${key.length} bytes reached secret-crypto`);
}

/** Encrypts `value` for secret `name` at `version`. `iv` is for tests only (never reuse one). Throws only for a key of the wrong size (a bug). */
export function sealValue(key: Buffer, name: string, version: number, value: Buffer, iv: Buffer = randomBytes(IV_BYTES)): SealedValue {
  checkKey(key);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad(name, version));
  const data = Buffer.concat([cipher.update(value), cipher.final()]);
  return { iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), data: data.toString('base64') };
}

/**
 * Decrypts a sealed value of secret `name` at `version`. Throws OrcaError ORCA_STORE_CORRUPT
 * when it does not open: a damaged record, another key, or a record moved to another name or
 * version. The message names the secret, never any of its bytes.
 */
export function openValue(key: Buffer, name: string, version: number, sealed: SealedValue): Buffer {
  checkKey(key);
  const iv = Buffer.from(sealed.iv, 'base64');
  const tag = Buffer.from(sealed.tag, 'base64');
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES || typeof sealed.data !== 'string') {
    throw new OrcaError('ORCA_STORE_CORRUPT', `secret "${name}" version ${version}: the stored record is damaged`);
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad(name, version));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(Buffer.from(sealed.data, 'base64')), decipher.final()]);
  } catch {
    throw new OrcaError(
      'ORCA_STORE_CORRUPT',
      `secret "${name}" version ${version} does not decrypt: the stored record is damaged, or it was sealed with another cluster key`,
    );
  }
}

/**
 * A fingerprint of the key (HMAC, one way): the store records it with the first secret, so a
 * server started with another key says so at once instead of failing secret by secret.
 */
export function keyFingerprint(key: Buffer): string {
  checkKey(key);
  return createHmac('sha256', key).update('orca.cluster-key.fingerprint.v1').digest('hex').slice(0, 32);
}
