import type { Clock } from '../core/clock.js';

/**
 * Rate limit for repetitive log lines (dropped agent records, refusals): the first occurrence of
 * a key is logged, then at most one line per window, carrying how many were suppressed since.
 * Keeps at most `maxKeys` keys (forgets them all past that: a flood of keys costs no memory).
 */
export class LogLimiter {
  private readonly last = new Map<string, { atMs: number; suppressed: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly windowMs = 10_000,
    private readonly maxKeys = 1000,
  ) {}

  /** Whether to log now; `suppressed` is how many were held back since the last line of this key. */
  allow(key: string): { log: boolean; suppressed: number } {
    const now = this.clock.now();
    const e = this.last.get(key);
    if (e && now - e.atMs < this.windowMs) {
      e.suppressed++;
      return { log: false, suppressed: e.suppressed };
    }
    if (!e && this.last.size >= this.maxKeys) this.last.clear();
    const suppressed = e?.suppressed ?? 0;
    this.last.set(key, { atMs: now, suppressed: 0 });
    return { log: true, suppressed };
  }
}
