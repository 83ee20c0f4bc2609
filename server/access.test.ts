import { describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { memoryStore } from '../store/index.js';
import { Access, TOKEN_LIMITS } from './access.js';
import { parseJoinToken } from './join-tokens.js';

const CA = 'cd'.repeat(32);
const ADMIN = 'admin-token-0123456789';
const nobodyLive = () => false;

async function setup() {
  const store = memoryStore();
  await store.open();
  const clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z'));
  const access = await Access.open(store, clock, ADMIN);
  return { store, clock, access };
}

describe('Access: join tokens', () => {
  it('a token lasts 24 h by default: the first join works, one after the TTL is refused as expired', async () => {
    const { access, clock } = await setup();
    const { token, listing } = await access.createToken({ caHash: CA });
    expect(parseJoinToken(token)).toMatchObject({ ok: true, value: { caHash: CA, id: listing.id } });
    expect(listing).toMatchObject({ created: '2026-01-01T00:00:00.000Z', expires: '2026-01-02T00:00:00.000Z', uses: null, used: 0, left: null, state: 'valid' });
    expect((await access.join(token, 'n1', nobodyLive)).ok).toBe(true);
    clock.advance(24 * 3_600_000 - 1);
    expect((await access.join(token, 'n2', nobodyLive)).ok).toBe(true);
    clock.advance(1);
    const r = await access.join(token, 'n3', nobodyLive);
    expect(r).toEqual({ ok: false, errors: { reason: 'expired', message: expect.stringContaining(`join token ${listing.id} expired at 2026-01-02T00:00:00.000Z`) } });
    expect(access.listTokens()[0]).toMatchObject({ used: 2, state: 'expired' });
    expect(access.bound('n3')).toBe(false);
  });

  it('--uses N: N joins, then "used up"; a refused join uses nothing', async () => {
    const { access } = await setup();
    const { token } = await access.createToken({ caHash: CA, uses: 2, ttlMs: 60_000 });
    expect((await access.join(token, 'n1', nobodyLive)).ok).toBe(true);
    // The name is taken: refused, and no use is spent.
    expect(await access.join(token, 'n1', nobodyLive)).toMatchObject({ ok: false, errors: { reason: 'name-taken' } });
    expect(access.listTokens()[0]).toMatchObject({ used: 1, left: 1, state: 'valid' });
    expect((await access.join(token, 'n2', nobodyLive)).ok).toBe(true);
    expect(await access.join(token, 'n3', nobodyLive)).toMatchObject({ ok: false, errors: { reason: 'used-up', message: expect.stringContaining('used up (2 of 2 uses)') } });
    expect(access.listTokens()[0]).toMatchObject({ used: 2, left: 0, state: 'used-up' });
  });

  it('the last use goes to one node only, however many join at once', async () => {
    const { access } = await setup();
    const { token } = await access.createToken({ caHash: CA, uses: 1 });
    const results = await Promise.all(['n1', 'n2', 'n3', 'n4'].map((n) => access.join(token, n, nobodyLive)));
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    expect(results.filter((r) => !r.ok && r.errors.reason === 'used-up')).toHaveLength(3);
  });

  it('a removed token is refused as removed; an unknown id, a wrong secret and a malformed text say nothing about any token', async () => {
    const { access } = await setup();
    const { token, listing } = await access.createToken({ caHash: CA });
    expect(await access.removeToken(listing.id)).toBe(true);
    expect(await access.removeToken(listing.id)).toBe(false);
    expect(access.listTokens()).toEqual([]);
    expect(await access.join(token, 'n1', nobodyLive)).toMatchObject({ ok: false, errors: { reason: 'removed' } });
    const other = await access.createToken({ caHash: CA });
    const wrongSecret = other.token.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'));
    const wrong = await access.join(wrongSecret, 'n1', nobodyLive);
    expect(wrong).toMatchObject({ ok: false, errors: { reason: 'unknown' } });
    expect(JSON.stringify(wrong)).not.toContain(other.listing.id);
    expect(await access.join('orca1.' + 'ab'.repeat(32) + '.zzzzzzzzzzzz.' + 'A'.repeat(43), 'n1', nobodyLive)).toMatchObject({ ok: false, errors: { reason: 'unknown' } });
    const malformed = await access.join(`${other.token}\u0000`, 'n1', nobodyLive);
    expect(malformed).toMatchObject({ ok: false, errors: { reason: 'malformed' } });
    expect(JSON.stringify(malformed)).not.toContain(other.token.slice(-43));
  });

  it('refuses a name with a live session even when no credential is bound to it', async () => {
    const { access } = await setup();
    const { token } = await access.createToken({ caHash: CA });
    expect(await access.join(token, 'n1', (n) => n === 'n1')).toMatchObject({ ok: false, errors: { reason: 'name-taken', message: expect.stringContaining('live session') } });
  });

  it('bounds TTL and uses', async () => {
    const { access } = await setup();
    for (const o of [{ ttlMs: 0 }, { ttlMs: -5 }, { ttlMs: TOKEN_LIMITS.maxTtlMs + 1 }, { ttlMs: Number.NaN }, { uses: 0 }, { uses: 1.5 }, { uses: TOKEN_LIMITS.maxUses + 1 }]) {
      await expect(access.createToken({ caHash: CA, ...o }), JSON.stringify(o)).rejects.toMatchObject({ code: 'ORCA_USAGE' });
    }
    expect(access.listTokens()).toEqual([]);
  });

  it('forgets tokens a week after they expired or were removed (a join is then "unknown")', async () => {
    const { access, clock } = await setup();
    const { token } = await access.createToken({ caHash: CA, ttlMs: 1000 });
    clock.advance(8 * 86_400_000);
    await access.createToken({ caHash: CA });
    expect(access.listTokens()).toHaveLength(1);
    expect(await access.join(token, 'n1', nobodyLive)).toMatchObject({ ok: false, errors: { reason: 'unknown' } });
  });
});

describe('Access: credentials and roles', () => {
  it('the admin token is admin; a credential is its node; anything else is nobody', async () => {
    const { access } = await setup();
    const { token } = await access.createToken({ caHash: CA });
    const r = await access.join(token, 'n2', nobodyLive);
    if (!r.ok) throw new Error('join failed');
    expect(access.authenticate(ADMIN)).toEqual({ role: 'admin' });
    expect(access.authenticate(r.value.credential)).toEqual({ role: 'node', node: 'n2' });
    expect(access.authenticate(token)).toBeNull();
    expect(access.authenticate(r.value.credential.replace('orcan1.n2.', 'orcan1.n3.'))).toBeNull();
    expect(access.authenticate(r.value.credential.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')))).toBeNull();
    expect(access.authenticate(undefined)).toBeNull();
    expect(access.authenticate('')).toBeNull();
    expect(access.authenticate(`${ADMIN}x`)).toBeNull();
    expect(access.authenticate('x'.repeat(100_000))).toBeNull();
  });

  it('stores hashes only: neither the token secret nor the credential is in the store', async () => {
    const { access, store } = await setup();
    const { token } = await access.createToken({ caHash: CA });
    const r = await access.join(token, 'n2', nobodyLive);
    if (!r.ok) throw new Error('join failed');
    const all = JSON.stringify(await store.listKv(''));
    expect(all).toContain('"node":"n2"');
    expect(all).not.toContain(token.slice(-43));
    expect(all).not.toContain(r.value.credential.slice(-43));
  });

  it('revoke: the credential authenticates nobody, the name is free to join again — and it stays so after a restart', async () => {
    const { access, store, clock } = await setup();
    const { token } = await access.createToken({ caHash: CA });
    const r = await access.join(token, 'n2', nobodyLive);
    if (!r.ok) throw new Error('join failed');
    // Records survive a restart of the server (a new Access over the same store).
    const again = await Access.open(store, clock, ADMIN);
    expect(again.authenticate(r.value.credential)).toEqual({ role: 'node', node: 'n2' });
    expect(await again.revoke('n2')).toBe(true);
    expect(await again.revoke('n2')).toBe(false);
    expect(again.authenticate(r.value.credential)).toBeNull();
    expect(again.bound('n2')).toBe(false);
    expect((await Access.open(store, clock, ADMIN)).authenticate(r.value.credential)).toBeNull();
    const fresh = await again.join(token, 'n2', nobodyLive);
    expect(fresh.ok).toBe(true);
    if (fresh.ok) expect(fresh.value.credential).not.toBe(r.value.credential);
  });
});
