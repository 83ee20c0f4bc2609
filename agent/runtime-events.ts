import { sleep, type Clock } from '../core/clock.js';
import { backoffDelayMs, type BackoffPolicy } from '../core/backoff.js';
import type { Logger } from '../core/log.js';
import type { Runtime, RuntimeEvent } from '../runtime/types.js';
import { LABEL } from '../runtime/labels.js';

export interface RuntimeEventsOptions {
  runtime: Pick<Runtime, 'events'>;
  /** Only containers with these labels (this node's of this cluster). */
  labels: Record<string, string>;
  clock: Clock;
  log: Logger;
  /** Re-open delays after the stream breaks (reset by the next event). */
  reconnect: BackoffPolicy;
  /** Each event, in order. Must not throw. */
  onEvent: (ev: RuntimeEvent) => void;
  /**
   * The stream was opened again after it broke: whatever happened meanwhile was not seen, so
   * the host resyncs everything. Must not throw.
   */
  onReopen: () => void;
}

/**
 * Follows the runtime's event stream until the signal aborts. Events only say *when* to look
 * (the reconcilers re-read Docker); a broken stream is re-opened with backoff and each re-open is
 * reported so the host can resync. Resolves when the signal aborts; never rejects.
 */
export async function followRuntimeEvents(o: RuntimeEventsOptions, signal: AbortSignal): Promise<void> {
  let attempt = 0;
  let openedBefore = false;
  while (!signal.aborted) {
    try {
      const events = o.runtime.events(o.labels, signal);
      if (openedBefore) o.onReopen();
      openedBefore = true;
      for await (const ev of events) {
        attempt = 0;
        o.onEvent(ev);
      }
    } catch (err) {
      if (signal.aborted) return;
      o.log.warn({ err }, 'runtime event stream broke; reconnecting');
    }
    if (signal.aborted) return;
    try {
      await sleep(o.clock, backoffDelayMs(o.reconnect, attempt++), signal);
    } catch {
      return;
    }
  }
}

/** An instance's container died or was destroyed, as one runtime event says. */
export interface InstanceGone {
  instance: string;
  kind: 'die' | 'destroy';
  /** The exit code a `die` carries; null for `destroy` (or a `die` without one). */
  exitCode: number | null;
  /** The kernel's OOM killer ended it (an `oom` for the same container came first). */
  oomKilled: boolean;
  /** ms since epoch as reported by the engine. */
  timeMs: number;
}

/** How many dead containers the watch remembers for a late `oom` (FIFO beyond that). */
export const DEATH_WATCH_MAX_DEAD = 1024;

/**
 * Reads instance deaths off the runtime's event stream, for the fast path that takes a dead
 * instance out of service before the next listing. Docker's `die` carries no OOM flag; for an
 * OOM kill it usually sends `oom` for the same container first (the fact inspect later shows as
 * State.OOMKilled), so the watch marks containers with an `oom` until their `die` or `destroy`.
 *
 * Not always first: Docker 20.10 records the exit when containerd's TaskExit arrives, and when
 * containerd's TaskOOM comes after it (a loaded host), the `die` goes out — and inspect keeps
 * OOMKilled=false for that run — before the `oom`. So the watch also remembers containers whose
 * `die` it saw (until their `start` or `destroy`, at most DEATH_WATCH_MAX_DEAD), and an `oom`
 * for one of them marks that run as OOM-killed after all: lateOomKilled(id) says so, for the
 * reconciler to correct what it recorded from inspect.
 *
 * Marks are bounded by the node's containers and dropped when the stream is re-opened (`reset`):
 * what happened meanwhile was not seen, and the resync that follows reads Docker's own flag.
 * Never throws.
 */
export class DeathWatch {
  private readonly oom = new Set<string>();
  /** Containers whose `die` was seen and that have not started again or gone (insertion order). */
  private readonly dead = new Set<string>();
  /** Of those, the ones whose `oom` came after their `die`. */
  private readonly lateOom = new Set<string>();

  /** Feeds one event in stream order; returns the death it reports, or null. */
  see(ev: RuntimeEvent): InstanceGone | null {
    const id = ev.containerId;
    if (ev.kind === 'oom') {
      if (this.dead.has(id)) this.lateOom.add(id);
      else this.oom.add(id);
      return null;
    }
    if (ev.kind === 'start') {
      // A new run: what the last one died of is the past.
      this.forgetDead(id);
      return null;
    }
    if (ev.kind !== 'die' && ev.kind !== 'destroy') return null;
    const oomKilled = this.oom.has(id);
    // A die is followed by a destroy (or a start again): the mark has been read either way.
    this.oom.delete(id);
    if (ev.kind === 'die') this.noteDead(id);
    else this.forgetDead(id);
    const instance = ev.labels[LABEL.instance];
    if (!instance) return null;
    return { instance, kind: ev.kind, exitCode: ev.exitCode ?? null, oomKilled: ev.kind === 'die' && oomKilled, timeMs: ev.timeMs };
  }

  /** The container's last run was OOM-killed, as an `oom` that came after its `die` says. */
  lateOomKilled(containerId: string): boolean {
    return this.lateOom.has(containerId);
  }

  /** Forgets every mark (the stream was re-opened). */
  reset(): void {
    this.oom.clear();
    this.dead.clear();
    this.lateOom.clear();
  }

  private noteDead(id: string): void {
    this.forgetDead(id);
    this.dead.add(id);
    if (this.dead.size > DEATH_WATCH_MAX_DEAD) {
      const oldest = this.dead.values().next().value as string;
      this.forgetDead(oldest);
    }
  }

  private forgetDead(id: string): void {
    this.dead.delete(id);
    this.lateOom.delete(id);
  }
}
