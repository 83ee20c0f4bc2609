import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../core/clock.js';
import { fail, ok, OrcaError, type Result } from '../core/errors.js';
import type { Store } from '../store/types.js';
import { Mutex } from '../store/mutex.js';
import { caFingerprint } from '../protocol/tls-trust.js';
import { formatCredential, formatJoinToken, NO_CA_HASH, hashSecret, newSecret, newTokenParts, parseCredential, parseJoinToken, secretMatches } from './join-tokens.js';

/** A join token as stored: never its secret, only the secret's sha256. */
export interface JoinTokenRecord {
  id: string;
  secretHash: string;
  /** ISO-8601. */
  createdAt: string;
  expiresAt: string;
  /** How many joins it allows; null: unlimited. */
  uses: number | null;
  used: number;
  /** Set by `orca token rm`: kept a while so that a join with it is told why it fails. */
  removedAt?: string;
}

/** A node's credential as stored: the sha256 of its secret, bound to the node's name. */
export interface NodeCredentialRecord {
  node: string;
  secretHash: string;
  createdAt: string;
  /** The join token it was exchanged for. */
  tokenId: string;
}

/** What `orca token ls` shows of a token (never the secret). */
export interface TokenListing {
  id: string;
  created: string;
  expires: string;
  /** null: unlimited. */
  uses: number | null;
  used: number;
  /** null: unlimited. */
  left: number | null;
  state: 'valid' | 'expired' | 'used-up';
}

/** Who presented a bearer token: the admin, or the agent of one node. */
export type Principal = { role: 'admin' } | { role: 'node'; node: string };

export type JoinRefusalReason = 'malformed' | 'unknown' | 'removed' | 'expired' | 'used-up' | 'name-taken';
export interface JoinRefusal {
  reason: JoinRefusalReason;
  message: string;
}

/** Bounds of `orca token create`. */
export const TOKEN_LIMITS = { maxTtlMs: 365 * 86_400_000, minTtlMs: 1000, maxUses: 1_000_000 } as const;
export const DEFAULT_TOKEN_TTL_MS = 24 * 3_600_000;
/** Removed and expired tokens are forgotten this long after: a join with one is then "unknown". */
const FORGET_AFTER_MS = 7 * 86_400_000;

const TOKEN_KEY = (id: string) => `join-token/${id}`;
const CREDENTIAL_KEY = (node: string) => `node-credential/${node}`;
/** Compared against when no record matches, so a miss costs what a hit costs. */
const DUMMY_HASH = hashSecret('orca: no such credential');

/**
 * Join tokens and node credentials (SPEC §3.10) and who a bearer token is. Records live in the
 * store (hashes only) and in memory, so authenticating a request or an upgrade is synchronous
 * and reads no disk; every change goes through here (write-through, serialised). One server
 * process owns them: a second control plane would have to re-read them.
 */
export class Access {
  private readonly tokens = new Map<string, JoinTokenRecord>();
  private readonly credentials = new Map<string, NodeCredentialRecord>();
  private readonly adminHash: Buffer;
  private readonly writes = new Mutex();

  private constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    adminToken: string,
  ) {
    this.adminHash = createHash('sha256').update(adminToken).digest();
  }

  /** Loads the records of an open store. */
  static async open(store: Store, clock: Clock, adminToken: string): Promise<Access> {
    const a = new Access(store, clock, adminToken);
    await a.reload();
    return a;
  }

  /**
   * Reads tokens and credentials from the store again (a server that begins to lead on a shared
   * store: another server may have made or revoked some since this one read them).
   */
  async reload(): Promise<void> {
    await this.writes.run(async () => {
      const tokens = await this.store.listKv<JoinTokenRecord>('join-token/');
      const credentials = await this.store.listKv<NodeCredentialRecord>('node-credential/');
      this.tokens.clear();
      this.credentials.clear();
      for (const { value } of tokens) this.tokens.set(value.id, value);
      for (const { value } of credentials) this.credentials.set(value.node, value);
    });
  }

  /**
   * Who presented this bearer token: the admin (the cluster token), a node (a credential whose
   * secret matches, constant time), or nobody (null). Never logs, never throws.
   */
  authenticate(presented: string | undefined): Principal | null {
    if (!presented || presented.length > 4096) return null;
    const p = createHash('sha256').update(presented).digest();
    if (timingSafeEqual(p, this.adminHash)) return { role: 'admin' };
    const c = parseCredential(presented);
    if (!c.ok) return null;
    const rec = this.credentials.get(c.value.node);
    const matches = secretMatches(c.value.secret, rec?.secretHash ?? DUMMY_HASH);
    return rec && matches ? { role: 'node', node: rec.node } : null;
  }

  /** True when the node's name is bound to a credential. */
  bound(node: string): boolean {
    return this.credentials.has(node);
  }

  /**
   * A new join token: returns its text (the only time the secret exists outside the agent that
   * will hold it) and its listing. `caHash`: the cluster CA's fingerprint. Throws ORCA_USAGE for
   * a TTL or a number of uses outside TOKEN_LIMITS.
   */
  async createToken(o: { ttlMs?: number; uses?: number | null; caHash: string }): Promise<{ token: string; listing: TokenListing }> {
    const ttlMs = o.ttlMs ?? DEFAULT_TOKEN_TTL_MS;
    if (!Number.isFinite(ttlMs) || ttlMs < TOKEN_LIMITS.minTtlMs || ttlMs > TOKEN_LIMITS.maxTtlMs) {
      throw new OrcaError('ORCA_USAGE', `ttl: must be between 1 s and 365 days`);
    }
    const uses = o.uses ?? null;
    if (uses !== null && (!Number.isInteger(uses) || uses < 1 || uses > TOKEN_LIMITS.maxUses)) {
      throw new OrcaError('ORCA_USAGE', `uses: must be a whole number from 1 to ${TOKEN_LIMITS.maxUses}`);
    }
    return this.writes.run(async () => {
      await this.forgetOld();
      const { id, secret } = newTokenParts();
      const now = this.clock.now();
      const rec: JoinTokenRecord = {
        id,
        secretHash: hashSecret(secret),
        createdAt: new Date(now).toISOString(),
        expiresAt: new Date(now + Math.round(ttlMs)).toISOString(),
        uses,
        used: 0,
      };
      await this.store.putKv(TOKEN_KEY(id), rec);
      this.tokens.set(id, rec);
      return { token: formatJoinToken({ caHash: o.caHash, id, secret }), listing: this.listing(rec) };
    });
  }

  /** Tokens not removed, oldest first (expired and used-up ones included, with their state). */
  listTokens(): TokenListing[] {
    return [...this.tokens.values()]
      .filter((t) => !t.removedAt)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id))
      .map((t) => this.listing(t));
  }

  /** Removes a token (joins with it are refused, saying so). False when there was none. Credentials it made stay. */
  async removeToken(id: string): Promise<boolean> {
    return this.writes.run(async () => {
      const t = this.tokens.get(id);
      if (!t || t.removedAt) return false;
      const next = { ...t, removedAt: new Date(this.clock.now()).toISOString() };
      await this.store.putKv(TOKEN_KEY(id), next);
      this.tokens.set(id, next);
      return true;
    });
  }

  /**
   * Exchanges a join token for a credential bound to `node`: checks the secret (constant time)
   * before anything about the token is said, then that it is not removed, expired or used up, and
   * that the name is free (not bound to a credential and no live session: `live`). One use is
   * counted, then the credential is stored; exchanges run one at a time, so a token's last use
   * goes to one node only. The refusal says why (never quoting the token).
   */
  async join(text: unknown, node: string, live: (node: string) => boolean): Promise<Result<{ credential: string; tokenId: string }, JoinRefusal>> {
    const parsed = parseJoinToken(text);
    if (!parsed.ok) return fail({ reason: 'malformed', message: parsed.errors });
    const { id, secret } = parsed.value;
    return this.writes.run(async () => {
      const t = this.tokens.get(id);
      const matches = secretMatches(secret, t?.secretHash ?? DUMMY_HASH);
      if (!t || !matches) return fail({ reason: 'unknown', message: 'the join token is not known to this server (wrong cluster, or a mistyped token)' });
      const now = this.clock.now();
      if (t.removedAt) return fail({ reason: 'removed', message: `join token ${id} was removed (orca token rm) at ${t.removedAt}: ask for a new one (orca token create)` });
      if (Date.parse(t.expiresAt) <= now) return fail({ reason: 'expired', message: `join token ${id} expired at ${t.expiresAt}: ask for a new one (orca token create)` });
      if (t.uses !== null && t.used >= t.uses) return fail({ reason: 'used-up', message: `join token ${id} is used up (${t.used} of ${t.uses} uses): ask for a new one (orca token create)` });
      if (this.credentials.has(node)) {
        return fail({ reason: 'name-taken', message: `node name ${node} is already joined with another credential: choose another --node-name, or remove the old node first (orca nodes rm ${node})` });
      }
      if (live(node)) return fail({ reason: 'name-taken', message: `node name ${node} has a live session: choose another --node-name` });
      const used = { ...t, used: t.used + 1 };
      await this.store.putKv(TOKEN_KEY(id), used);
      this.tokens.set(id, used);
      const credSecret = newSecret();
      const rec: NodeCredentialRecord = { node, secretHash: hashSecret(credSecret), createdAt: new Date(now).toISOString(), tokenId: id };
      await this.store.putKv(CREDENTIAL_KEY(node), rec);
      this.credentials.set(node, rec);
      return ok({ credential: formatCredential({ node, secret: credSecret }), tokenId: id });
    });
  }

  /** Revokes a node's credential: it authenticates nobody from now on. False when the node had none. */
  async revoke(node: string): Promise<boolean> {
    return this.writes.run(async () => {
      if (!this.credentials.has(node)) return false;
      await this.store.delKv(CREDENTIAL_KEY(node));
      this.credentials.delete(node);
      return true;
    });
  }

  private listing(t: JoinTokenRecord): TokenListing {
    const expired = Date.parse(t.expiresAt) <= this.clock.now();
    const usedUp = t.uses !== null && t.used >= t.uses;
    return {
      id: t.id,
      created: t.createdAt,
      expires: t.expiresAt,
      uses: t.uses,
      used: t.used,
      left: t.uses === null ? null : Math.max(0, t.uses - t.used),
      state: expired ? 'expired' : usedUp ? 'used-up' : 'valid',
    };
  }

  /** Drops tokens removed or expired more than FORGET_AFTER_MS ago. Call under the write mutex. */
  private async forgetOld(): Promise<void> {
    const cutoff = this.clock.now() - FORGET_AFTER_MS;
    for (const t of [...this.tokens.values()]) {
      const gone = Math.min(Date.parse(t.removedAt ?? t.expiresAt), Date.parse(t.expiresAt));
      if (gone < cutoff) {
        await this.store.delKv(TOKEN_KEY(t.id));
        this.tokens.delete(t.id);
      }
    }
  }
}

/**
 * The CA hash a new join token carries: the fingerprint of `<dataDir>/tls/ca.crt` (SPEC §3.10),
 * read at each call (the CA may be made after this server started its API). NO_CA_HASH when
 * there is no CA file; throws ORCA_INTERNAL for one that holds no certificate.
 */
export async function clusterCaHash(dataDir: string): Promise<string> {
  let pem: string;
  try {
    pem = await readFile(join(dataDir, 'tls', 'ca.crt'), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return NO_CA_HASH;
    throw new OrcaError('ORCA_INTERNAL', `cannot read the cluster CA: ${(err as Error).message}`);
  }
  try {
    return caFingerprint(pem);
  } catch {
    throw new OrcaError('ORCA_INTERNAL', `the cluster CA ${join(dataDir, 'tls', 'ca.crt')} holds no certificate`);
  }
}
