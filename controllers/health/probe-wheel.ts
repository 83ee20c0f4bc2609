import type { Clock, TimerHandle } from '../../core/clock.js';
import { DEFAULTS } from '../../core/defaults.js';

/** A check waiting on the wheel; pass it to cancel(). */
export interface WheelEntry {
  readonly at: number;
}

interface Slot {
  timer: TimerHandle;
  entries: Set<Entry>;
}

interface Entry extends WheelEntry {
  fn: () => void;
}

/**
 * The probe timers of one node on a shared grid: rather than one timer per probe, a check due at
 * time T with interval I runs at the nearest multiple of I / phasesPerInterval (wall time, never
 * before now), and every check due at the same grid time runs from one timer. A hundred probes
 * every second then wake the process 4 times a second, not a hundred. Grids of intervals that
 * divide one another line up (1 s and 2 s probes share the 500 ms marks).
 *
 * The trade-off: a check may run up to half a phase (⅛ of its interval) early or late. It does
 * not drift: a probe asking for its next check one interval after the grid time it ran at stays
 * on its grid, so it runs every interval.
 */
export class ProbeWheel {
  private readonly slots = new Map<number, Slot>();

  constructor(
    private readonly clock: Clock,
    private readonly phasesPerInterval = DEFAULTS.probePhasesPerInterval,
  ) {}

  /** The grid time a check due at `due` with this interval runs at. */
  slotFor(due: number, intervalMs: number): number {
    const now = this.clock.now();
    const phase = intervalMs / this.phasesPerInterval;
    if (!(phase >= 1)) return Math.max(now, due);
    let at = Math.round(due / phase) * phase;
    if (at < now) at = Math.ceil(now / phase) * phase;
    return at;
  }

  /** Runs fn once, at the grid time nearest `due` (ms since the epoch) for a probe of this interval. */
  schedule(fn: () => void, due: number, intervalMs: number): WheelEntry {
    const at = this.slotFor(due, intervalMs);
    const entry: Entry = { at, fn };
    let slot = this.slots.get(at);
    if (!slot) {
      const entries = new Set<Entry>();
      slot = { entries, timer: this.clock.setTimeout(() => this.fire(at), at - this.clock.now()) };
      this.slots.set(at, slot);
    }
    slot.entries.add(entry);
    return entry;
  }

  cancel(entry: WheelEntry): void {
    const slot = this.slots.get(entry.at);
    if (!slot) return;
    slot.entries.delete(entry as Entry);
    if (slot.entries.size === 0) {
      this.clock.clearTimeout(slot.timer);
      this.slots.delete(entry.at);
    }
  }

  /** Timers the wheel holds (one per grid time with checks due). */
  timers(): number {
    return this.slots.size;
  }

  private fire(at: number): void {
    const slot = this.slots.get(at);
    this.slots.delete(at);
    for (const e of slot?.entries ?? []) e.fn();
  }
}
