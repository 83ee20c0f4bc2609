import type { Rng } from './clock.js';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

export function randomSuffix(rng: Rng, length = 4): string {
  let s = '';
  for (let i = 0; i < length; i++) s += ALPHABET[Math.floor(rng.next() * ALPHABET.length)] ?? 'x';
  return s;
}

/** Instance ids look like `web-3-0-k2j9`: service, revision, replica slot, random suffix. */
export function instanceId(service: string, revision: number, slot: number, rng: Rng): string {
  return `${service}-${revision}-${slot}-${randomSuffix(rng)}`;
}

/** A hex token of `bytes` random bytes, from node's CSPRNG (not the injected Rng: it is a secret). */
export async function secretToken(bytes = 32): Promise<string> {
  const { randomBytes } = await import('node:crypto');
  return randomBytes(bytes).toString('hex');
}
