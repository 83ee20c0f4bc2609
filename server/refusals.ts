import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import { excerpt } from './http-util.js';

export interface RefusalLogOptions {
  /** At most one log line per remote address per window. Default 60 s. */
  windowMs?: number;
  /** Remote addresses remembered (the oldest is forgotten past this). Default 1024. */
  maxRemotes?: number;
}

/**
 * The log of refused (401) API requests, rate-limited: at most one 'unauthorized API request'
 * line per remote address per window, carrying how many refusals from that address were not
 * logged since its last line (`suppressed`). Every refusal still reaches `count` (the metric).
 * The line never holds the presented token: only method, a short excerpt of the path and the
 * remote address. Memory is bounded by maxRemotes.
 */
export class RefusalLog {
  private readonly remotes = new Map<string, { loggedAt: number; suppressed: number }>();
  private readonly windowMs: number;
  private readonly maxRemotes: number;

  constructor(
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly count: () => void = () => undefined,
    opts: RefusalLogOptions = {},
  ) {
    this.windowMs = opts.windowMs ?? 60_000;
    this.maxRemotes = opts.maxRemotes ?? 1024;
  }

  refused(remote: string | undefined, method: string | undefined, path: string): void {
    this.count();
    const key = remote ?? 'unknown';
    const now = this.clock.now();
    const seen = this.remotes.get(key);
    if (seen && now - seen.loggedAt < this.windowMs) {
      seen.suppressed++;
      return;
    }
    this.remotes.delete(key);
    this.remotes.set(key, { loggedAt: now, suppressed: 0 });
    if (this.remotes.size > this.maxRemotes) {
      const oldest = this.remotes.keys().next().value;
      if (oldest !== undefined) this.remotes.delete(oldest);
    }
    this.log.warn(
      { method: excerpt(method ?? '?', 16), path: excerpt(path), remote: key, suppressed: seen?.suppressed ?? 0, windowSecs: this.windowMs / 1000 },
      'unauthorized API request',
    );
  }
}
