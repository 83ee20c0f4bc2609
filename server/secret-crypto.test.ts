import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { isOrcaError } from '../core/errors.js';
import { keyFingerprint, openValue, sealValue } from './secret-crypto.js';

const key = randomBytes(32);
const value = Buffer.from('hunter2-RECOGNISABLE\n');

function openFails(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(isOrcaError(e, 'ORCA_STORE_CORRUPT')).toBe(true);
    return (e as Error).message;
  }
  throw new Error('expected it not to open');
}

describe('sealValue / openValue (AES-256-GCM)', () => {
  it('gives back the value byte for byte, and the sealed form holds no plaintext', () => {
    const sealed = sealValue(key, 'db-password', 1, value);
    expect(openValue(key, 'db-password', 1, sealed)).toEqual(value);
    expect(JSON.stringify(sealed)).not.toContain('hunter2');
    expect(Buffer.from(sealed.data, 'base64').toString('latin1')).not.toContain('hunter2');
  });

  it('draws a fresh IV for every write, so equal values seal differently', () => {
    const a = sealValue(key, 'x', 1, value);
    const b = sealValue(key, 'x', 1, value);
    expect(a.iv).not.toBe(b.iv);
    expect(a.data).not.toBe(b.data);
    expect(Buffer.from(a.iv, 'base64')).toHaveLength(12);
  });

  it('does not open under another name, another version or another key, and says so without the value', () => {
    const sealed = sealValue(key, 'db-password', 2, value);
    const m1 = openFails(() => openValue(key, 'api-key', 2, sealed));
    openFails(() => openValue(key, 'db-password', 1, sealed));
    openFails(() => openValue(randomBytes(32), 'db-password', 2, sealed));
    expect(m1).toContain('secret "api-key" version 2 does not decrypt');
    expect(m1).not.toContain('hunter2');
  });

  it('does not open a tampered ciphertext, tag or IV', () => {
    const sealed = sealValue(key, 'n', 1, value);
    const flip = (b64: string) => {
      const b = Buffer.from(b64, 'base64');
      b[0] = (b[0] ?? 0) ^ 1;
      return b.toString('base64');
    };
    openFails(() => openValue(key, 'n', 1, { ...sealed, data: flip(sealed.data) }));
    openFails(() => openValue(key, 'n', 1, { ...sealed, tag: flip(sealed.tag) }));
    openFails(() => openValue(key, 'n', 1, { ...sealed, iv: flip(sealed.iv) }));
    openFails(() => openValue(key, 'n', 1, { ...sealed, iv: '' }));
  });

  it('fingerprints a key one way: the same key the same print, another key another', () => {
    expect(keyFingerprint(key)).toBe(keyFingerprint(Buffer.from(key)));
    expect(keyFingerprint(key)).not.toBe(keyFingerprint(randomBytes(32)));
    expect(keyFingerprint(key)).not.toContain(key.toString('hex').slice(0, 8));
  });
});
