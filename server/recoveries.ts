/** One crash → ready recovery, as the dashboard shows it (SPEC §6). */
export interface Recovery {
  /** ISO-8601: when the replacement was ready. */
  time: string;
  service: string;
  /** The replacement, now ready. */
  instance: string;
  node: string;
  /** Milliseconds from the failure to the replacement being ready. */
  ms: number;
  /** Why the failed instance ended (its lastExit reason: exited, oom-killed, liveness, …). */
  reason: string;
}

/**
 * The recoveries this server saw (where orca_recovery_seconds is observed), the latest `keep` in
 * memory, fanned out to subscribers (the dashboard's streams). Bounded; lost at restart.
 */
export class RecoveryFeed {
  private readonly recent: Recovery[] = [];
  private readonly subscribers = new Set<(r: Recovery) => void>();

  constructor(private readonly keep = 500) {}

  publish(r: Recovery): void {
    this.recent.push(r);
    if (this.recent.length > this.keep) this.recent.splice(0, this.recent.length - this.keep);
    for (const fn of this.subscribers) fn(r);
  }

  /** The latest recoveries, oldest first. */
  list(): Recovery[] {
    return [...this.recent];
  }

  /** Subscribes to new recoveries; returns the unsubscribe function. */
  subscribe(fn: (r: Recovery) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }
}
