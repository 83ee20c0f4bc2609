import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { fail, ok, type Result } from '../core/errors.js';

/**
 * The texts of SPEC §3.10, pure: join tokens `orca1.<ca-hash>.<id>.<secret>` and node
 * credentials `orcan1.<node>.<secret>`. Everything here parses hostile text with bounds and
 * returns Results; a problem message never quotes the secret.
 *
 * - ca-hash: sha256 of the cluster CA certificate's DER bytes, 64 lowercase hex (64 zeros when
 *   the server had no CA: nothing can be pinned then).
 * - id: 12 characters [a-z0-9], not secret (shown by `orca token ls`, used by `orca token rm`).
 * - secret: 32 random bytes in base64url (43 characters). Only its sha256 is ever stored.
 */

export const JOIN_TOKEN_PREFIX = 'orca1';
export const CREDENTIAL_PREFIX = 'orcan1';
/** Longer presented texts are refused before any parsing. */
export const MAX_TOKEN_CHARS = 256;
/** The CA hash of a token made by a server without a CA. */
export const NO_CA_HASH = '0'.repeat(64);

const TOKEN_RE = /^orca1\.([0-9a-fA-F]{64})\.([a-z0-9]{12})\.([A-Za-z0-9_-]{43})$/;
const CREDENTIAL_RE = /^orcan1\.([a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)\.([A-Za-z0-9_-]{43})$/;
const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

export interface JoinToken {
  caHash: string;
  id: string;
  secret: string;
}

export interface NodeCredential {
  node: string;
  secret: string;
}

/** A new token's id and secret (node's CSPRNG: they are not the injected Rng's business). */
export function newTokenParts(): { id: string; secret: string } {
  const raw = randomBytes(12);
  let id = '';
  // 36 does not divide 256: the tiny bias of `% 36` does not matter for an id that is not secret.
  for (const b of raw) id += ID_ALPHABET[b % ID_ALPHABET.length];
  return { id, secret: newSecret() };
}

/** 32 random bytes, base64url. */
export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function formatJoinToken(t: JoinToken): string {
  return `${JOIN_TOKEN_PREFIX}.${t.caHash}.${t.id}.${t.secret}`;
}

export function formatCredential(c: NodeCredential): string {
  return `${CREDENTIAL_PREFIX}.${c.node}.${c.secret}`;
}

/** True for text shaped like a join token's start (to tell it from an admin token); no validation. */
export function looksLikeJoinToken(text: string): boolean {
  return text.trim().startsWith(`${JOIN_TOKEN_PREFIX}.`);
}

/** Parses a join token (surrounding whitespace allowed). The problem never quotes the text. */
export function parseJoinToken(text: unknown): Result<JoinToken, string> {
  if (typeof text !== 'string') return fail('the join token must be text');
  if (text.length > MAX_TOKEN_CHARS) return fail(`the join token is longer than ${MAX_TOKEN_CHARS} characters`);
  const m = TOKEN_RE.exec(text.trim());
  if (!m) return fail(`not a join token: expected ${JOIN_TOKEN_PREFIX}.<64 hex: CA hash>.<12 characters: id>.<43 characters: secret> (orca token create prints one)`);
  return ok({ caHash: (m[1] as string).toLowerCase(), id: m[2] as string, secret: m[3] as string });
}

/** Parses a node credential (surrounding whitespace allowed). The problem never quotes the text. */
export function parseCredential(text: unknown): Result<NodeCredential, string> {
  if (typeof text !== 'string') return fail('the node credential must be text');
  if (text.length > MAX_TOKEN_CHARS) return fail(`the node credential is longer than ${MAX_TOKEN_CHARS} characters`);
  const m = CREDENTIAL_RE.exec(text.trim());
  if (!m) return fail(`not a node credential: expected ${CREDENTIAL_PREFIX}.<node>.<secret>`);
  return ok({ node: m[1] as string, secret: m[2] as string });
}

/** What is stored of a secret: its sha256, hex. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Constant-time: does `secret` hash to `storedHash` (64 hex)? False for a malformed stored hash. */
export function secretMatches(secret: string, storedHash: string): boolean {
  const a = createHash('sha256').update(secret, 'utf8').digest();
  const b = Buffer.from(storedHash, 'hex');
  if (b.length !== a.length) return false;
  return timingSafeEqual(a, b);
}
