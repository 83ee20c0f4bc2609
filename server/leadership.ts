/**
 * Who leads the control plane (SPEC §3.11). One server on the embedded store always leads
 * (soloLeadership). Several servers on one etcd elect one: each holds a lease
 * (`--leader-lease-secs`) and a key under `<prefix>/election/` bound to it; the key with the lowest
 * create revision leads (etcd's own election recipe, written out so that the lease's keepalive
 * can be watched). The leader's writes are fenced: the store's every write transaction also
 * checks that the leader's own election key still holds its value (the lease id is in it), so a
 * leader whose lease ran out — a paused process, a partition — writes nothing, whatever it
 * believes. A leader also stops believing it leads once its last successful keepalive is older
 * than the lease, without waiting to hear that the lease is gone.
 */
import type { Etcd3, Lease } from 'etcd3';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { Reconciler } from '../controllers/controller.js';
import { OrcaError } from '../core/errors.js';

/** A control-plane member as `orca servers` lists it. */
export interface ServerMember {
  name: string;
  /** Its API URL. */
  address: string;
  role: 'leader' | 'standby';
  /** ISO-8601: when it joined (standby) or took the lead (leader). */
  since: string;
}

export interface Leadership {
  /** Whether this server leads now (and its lease is known to be alive). */
  isLeader(): boolean;
  /** The leader's API URL, as last seen; null while none is elected. */
  leaderAddress(): string | null;
  /** Every member, the leader first. Throws ORCA_STORE_UNAVAILABLE when the store cannot be read. */
  members(): Promise<ServerMember[]>;
  /** Why no server can lead from here now (the store cannot be reached), or null. */
  problem(): string | null;
  /** Called with the new role on every change (never re-entered; errors are the callee's). */
  onChange(cb: (leading: boolean) => void): void;
  start(): Promise<void>;
  /** Resigns (a standby leads at once) and stops. */
  stop(): Promise<void>;
}

/** The one server of an embedded store: it always leads, from its start. */
export function soloLeadership(self: { name: string; address: () => string }, clock: Clock): Leadership {
  const since = new Date(clock.now()).toISOString();
  return {
    isLeader: () => true,
    leaderAddress: () => self.address(),
    members: async () => [{ name: self.name, address: self.address(), role: 'leader', since }],
    problem: () => null,
    onChange: () => undefined,
    start: async () => undefined,
    stop: async () => undefined,
  };
}

/** What the store's fence checks: this key holds this value (SPEC §3.11 fencing). */
export interface Fence {
  key: string;
  value: string;
}

interface Candidate {
  name: string;
  address: string;
  lease: string;
  since: string;
}

export interface EtcdLeadershipDeps {
  client: Etcd3;
  /** The store's prefix (`/orca/<cluster-id>`): the election and member keys live under it. */
  prefix: string;
  self: { name: string; address: () => string };
  leaseSecs: number;
  clock: Clock;
  log: Logger;
  /** Sets the store's write fence (null: writes unfenced, as a standby's API writes are). */
  setFence: (f: Fence | null) => void;
}

const MAX_MEMBERS = 64;

/**
 * Leader election on etcd. A campaign is a lease, a member key and an election key; a lease
 * that is lost (expired, revoked, or its keepalive failing for longer than the lease) ends the
 * campaign — the server steps down at once — and a new one starts.
 */
export class EtcdLeadership implements Leadership {
  private lease: Lease | null = null;
  private mine: { key: string; value: string; lease: string } | null = null;
  private leading = false;
  private leader: Candidate | null = null;
  private lastKeepaliveMs = 0;
  private readonly listeners: Array<(leading: boolean) => void> = [];
  private stopped = false;
  private watcher: { cancel(): Promise<void> } | null = null;
  private since = '';
  private checkTimer: ReturnType<Clock['setTimeout']> | null = null;
  private campaigning: Promise<void> | null = null;
  private trouble: string | null = null;
  /** When the current spell of trouble began (clock ms). */
  private troubleSince = 0;

  constructor(private readonly deps: EtcdLeadershipDeps) {}

  private get electionPrefix(): string {
    return `${this.deps.prefix}/election/`;
  }
  private get membersPrefix(): string {
    return `${this.deps.prefix}/servers/`;
  }

  isLeader(): boolean {
    // A keepalive not answered within the lease: the lease may be gone already, act as if it were.
    return this.leading && this.deps.clock.now() - this.lastKeepaliveMs < this.deps.leaseSecs * 1000;
  }

  leaderAddress(): string | null {
    const leader = this.leader;
    // This server, last seen leading, has stepped down: there is no leader to pass requests to
    // until the election says who (not itself: that would forward to itself).
    if (!leader || (!this.leading && leader.name === this.deps.self.name)) return null;
    return leader.address;
  }

  onChange(cb: (leading: boolean) => void): void {
    this.listeners.push(cb);
  }

  /**
   * Trouble that lasts: a moment of it — a member just killed, its circuit still open in the
   * client, an election under way — is "no leader yet", which clients retry; only trouble that
   * has lasted a lease is reported as the store's (SPEC §3.11: with one member of three down,
   * apply keeps working).
   */
  problem(): string | null {
    if (this.leading || this.trouble === null) return null;
    return this.deps.clock.now() - this.troubleSince >= this.deps.leaseSecs * 1000 ? this.trouble : null;
  }

  private setTrouble(why: string | null): void {
    if (why !== null && this.trouble === null) this.troubleSince = this.deps.clock.now();
    this.trouble = why;
  }

  async members(): Promise<ServerMember[]> {
    let res: Record<string, string>;
    let leader: Candidate | null;
    try {
      res = await this.deps.client.getAll().prefix(this.membersPrefix).limit(MAX_MEMBERS).strings();
      leader = await this.currentLeader();
    } catch (err) {
      throw new OrcaError('ORCA_STORE_UNAVAILABLE', `the control plane's store (etcd) cannot be read: ${(err as Error).message.slice(0, 300)} (has etcd lost its quorum?)`, { transient: true });
    }
    const out: ServerMember[] = [];
    for (const v of Object.values(res)) {
      const c = parseCandidate(v);
      if (!c) continue;
      const isLeader = leader !== null && leader.name === c.name && leader.lease === c.lease;
      out.push({ name: c.name, address: c.address, role: isLeader ? 'leader' : 'standby', since: isLeader ? leader!.since : c.since });
    }
    return out.sort((a, b) => (a.role === b.role ? a.name.localeCompare(b.name) : a.role === 'leader' ? -1 : 1));
  }

  async start(): Promise<void> {
    const watcher = await this.deps.client.watch().prefix(this.electionPrefix).create();
    watcher.on('put', () => void this.look());
    watcher.on('delete', () => void this.look());
    watcher.on('error', (err: Error) => this.deps.log.warn({ err: { message: err.message } }, 'election watch error'));
    this.watcher = watcher;
    await this.campaign();
    if (!this.leading) this.deps.log.info({ leader: this.leader?.name ?? null }, 'standing by (another server leads)');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.checkTimer) this.deps.clock.clearTimeout(this.checkTimer);
    await this.watcher?.cancel().catch(() => undefined);
    this.setLeading(false);
    // Revoking the lease deletes both keys: a standby leads at once instead of after the lease.
    await this.lease?.revoke().catch(() => undefined);
  }

  /** A new lease, member key and election key; then looks who leads. */
  private async campaign(): Promise<void> {
    if (this.stopped) return;
    if (this.campaigning) return this.campaigning;
    this.campaigning = (async () => {
      const { client, leaseSecs, self, log } = this.deps;
      const lease = client.lease(leaseSecs, { autoKeepAlive: true });
      this.lease = lease;
      const id = await lease.grant();
      this.lastKeepaliveMs = this.deps.clock.now();
      lease.on('keepaliveSucceeded', () => {
        if (this.lease === lease) this.lastKeepaliveMs = this.deps.clock.now();
      });
      lease.on('lost', (err) => {
        if (this.lease !== lease || this.stopped) return;
        this.setTrouble(`the lease was lost (${err.message.slice(0, 200)}): the control plane's store (etcd) may have lost its quorum`);
        log.warn({ err: { message: err.message } }, 'leader lease lost: stepping down and campaigning again');
        this.lease = null;
        this.mine = null;
        this.setLeading(false);
        void this.retryCampaign();
      });
      const since = new Date(this.deps.clock.now()).toISOString();
      const value = JSON.stringify({ name: self.name, address: self.address(), lease: id, since } satisfies Candidate);
      const key = `${this.electionPrefix}${id}`;
      await client.put(`${this.membersPrefix}${self.name}`).value(value).lease(id).exec();
      await client.put(key).value(value).lease(id).exec();
      this.mine = { key, value, lease: id };
      await this.look();
    })().finally(() => {
      this.campaigning = null;
    });
    return this.campaigning;
  }

  private async retryCampaign(): Promise<void> {
    for (let delay = 200; !this.stopped; delay = Math.min(delay * 2, 5000)) {
      try {
        await this.campaign();
        this.setTrouble(null);
        return;
      } catch (err) {
        this.setTrouble(`no server can lead: the control plane's store (etcd) does not answer (${(err as Error).message.slice(0, 200)}); has it lost its quorum?`);
        this.deps.log.warn({ err: { message: (err as Error).message } }, 'campaign failed; retrying');
        await new Promise((r) => this.deps.clock.setTimeout(() => r(undefined), delay));
      }
    }
  }

  /** The candidate whose election key is the oldest. */
  private async currentLeader(): Promise<Candidate | null> {
    const res = await this.deps.client.getAll().prefix(this.electionPrefix).sort('Create', 'Ascend').limit(1).exec();
    const kv = res.kvs[0];
    return kv ? parseCandidate(kv.value.toString('utf8')) : null;
  }

  private async look(): Promise<void> {
    if (this.stopped) return;
    try {
      this.leader = await this.currentLeader();
      const leads = this.mine !== null && this.leader !== null && this.leader.lease === this.mine.lease && this.leader.name === this.deps.self.name;
      if (leads && !this.leading) this.since = new Date(this.deps.clock.now()).toISOString();
      this.setLeading(leads);
    } catch (err) {
      this.deps.log.warn({ err: { message: (err as Error).message } }, 'could not read the election');
    }
  }

  private setLeading(leading: boolean): void {
    if (this.checkTimer) {
      this.deps.clock.clearTimeout(this.checkTimer);
      this.checkTimer = null;
    }
    if (leading) {
      this.deps.setFence({ key: this.mine!.key, value: this.mine!.value });
      this.scheduleCheck();
    }
    if (leading === this.leading) return;
    this.leading = leading;
    // A deposed leader keeps its (now failing) fence until it has stopped acting: cleared here, after.
    this.deps.log.info({ leading, since: this.since }, leading ? 'leading the control plane' : 'standing by (another server leads)');
    for (const cb of this.listeners) cb(leading);
    if (!leading) this.deps.setFence(null);
  }

  /** Steps down when the keepalive has gone unanswered for the lease (a partition, a pause). */
  private scheduleCheck(): void {
    this.checkTimer = this.deps.clock.setTimeout(() => {
      this.checkTimer = null;
      if (!this.leading) return;
      if (this.isLeader()) return this.scheduleCheck();
      this.setTrouble('the leader could not renew its lease: the control plane\'s store (etcd) does not answer (has it lost its quorum?)');
      this.deps.log.warn({ lastKeepalive: new Date(this.lastKeepaliveMs).toISOString() }, 'leader lease not renewed within its lifetime: stepping down');
      this.mine = null;
      const old = this.lease;
      this.lease = null;
      this.setLeading(false);
      void old?.revoke().catch(() => undefined);
      void this.retryCampaign();
    }, Math.max(100, (this.deps.leaseSecs * 1000) / 4));
  }
}

function parseCandidate(text: string): Candidate | null {
  try {
    const v = JSON.parse(text) as Partial<Candidate>;
    if (typeof v.name !== 'string' || typeof v.address !== 'string' || typeof v.lease !== 'string' || typeof v.since !== 'string') return null;
    return { name: v.name.slice(0, 253), address: v.address.slice(0, 2048), lease: v.lease, since: v.since };
  } catch {
    return null;
  }
}

/**
 * A reconciler that acts only while `may()` says so (the leader's node and route reconcilers:
 * a standby keeps its last route table and marks no node). Otherwise a key is done untouched;
 * the leader's term starts with a trigger of every key.
 */
export function whileLeading(r: Reconciler, may: () => boolean): Reconciler {
  return {
    name: r.name,
    reconcile: (key) => (may() ? r.reconcile(key) : Promise.resolve({ kind: 'done' })),
    keys: () => r.keys(),
  };
}
