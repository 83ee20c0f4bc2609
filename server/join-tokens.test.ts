import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { formatCredential, formatJoinToken, hashSecret, MAX_TOKEN_CHARS, newTokenParts, parseCredential, parseJoinToken, secretMatches } from './join-tokens.js';

const HASH = 'ab'.repeat(32);
const good = () => {
  const { id, secret } = newTokenParts();
  return { caHash: HASH, id, secret };
};

describe('join token text', () => {
  it('round-trips: orca1.<CA hash>.<id>.<secret>, and tolerates surrounding whitespace (a token file ends in a newline)', () => {
    const t = good();
    const text = formatJoinToken(t);
    expect(text).toMatch(/^orca1\.[0-9a-f]{64}\.[a-z0-9]{12}\.[A-Za-z0-9_-]{43}$/);
    expect(parseJoinToken(text)).toEqual({ ok: true, value: t });
    expect(parseJoinToken(`  ${text}\n`)).toEqual({ ok: true, value: t });
    // An upper-case hash (copied from openssl's fingerprint) is the same pin.
    expect(parseJoinToken(text.replace(HASH, HASH.toUpperCase()))).toEqual({ ok: true, value: t });
  });

  it('every token has its own id and secret', () => {
    const a = good();
    const b = good();
    expect(a.id).not.toBe(b.id);
    expect(a.secret).not.toBe(b.secret);
  });

  it('refuses hostile text without quoting it', () => {
    const t = formatJoinToken(good());
    const bad: unknown[] = [
      undefined,
      null,
      42,
      {},
      '',
      'orca1',
      t.replace(/^orca1/, 'orca2'),
      t.replace(/^orca1/, 'ORCA1'),
      `${t}.extra`,
      t.slice(0, -1),
      `${t}x`,
      t.replace(HASH, 'zz'.repeat(32)),
      t.replace(/\.([a-z0-9]{12})\./, '.ABCDEFGHIJKL.'),
      t.replace('.', '.\n'),
      t.replace(/.$/, 'é'),
      'x'.repeat(MAX_TOKEN_CHARS + 1),
      `${' '.repeat(MAX_TOKEN_CHARS)}${t}`,
    ];
    for (const b of bad) {
      const r = parseJoinToken(b);
      expect(r.ok, JSON.stringify(b)?.slice(0, 60)).toBe(false);
      if (!r.ok && typeof b === 'string' && b.length > 20) expect(r.errors).not.toContain(b.trim().slice(-20));
    }
  });

  it('never throws, whatever the text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), (s) => {
        const r = parseJoinToken(s);
        const c = parseCredential(s);
        return typeof r.ok === 'boolean' && typeof c.ok === 'boolean';
      }),
    );
  });
});

describe('node credential text', () => {
  it('round-trips orcan1.<node>.<secret>; a name that is not a DNS label is refused', () => {
    const { secret } = newTokenParts();
    expect(parseCredential(formatCredential({ node: 'n2', secret }))).toEqual({ ok: true, value: { node: 'n2', secret } });
    for (const node of ['N2', '-n2', 'n2-', 'a.b', 'a'.repeat(64), '']) expect(parseCredential(`orcan1.${node}.${secret}`).ok, node).toBe(false);
    expect(parseCredential(formatJoinToken(good())).ok).toBe(false);
  });
});

describe('secret hashing', () => {
  it('stores sha256 only; matches the secret and nothing else; a malformed stored hash matches nothing', () => {
    const { secret } = newTokenParts();
    const h = hashSecret(secret);
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(h).not.toContain(secret);
    expect(secretMatches(secret, h)).toBe(true);
    expect(secretMatches(secret.slice(0, -1) + (secret.endsWith('A') ? 'B' : 'A'), h)).toBe(false);
    expect(secretMatches(secret, '')).toBe(false);
    expect(secretMatches(secret, h.slice(2))).toBe(false);
    expect(secretMatches(secret, 'zz'.repeat(32))).toBe(false);
  });
});
