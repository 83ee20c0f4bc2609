import type { Clock, TimerHandle } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { BackoffPolicy } from '../core/backoff.js';
import { WorkQueue, type HandlerResult } from './work-queue.js';

export type { HandlerResult as ReconcileResult } from './work-queue.js';

/** The four reconcilers of SPEC §3.2 (a metric and event label). */
export type ReconcilerName = 'container' | 'health' | 'route' | 'node';

/**
 * One controller shape for every reconciler (in the manner of controller-runtime): it is given a
 * key, looks at the whole desired and observed state for that key, plans with a pure planner
 * `(desired, observed, now) → actions`, has its executor apply the actions, and says when to look
 * again. It never learns "what happened": events and the periodic resync only say *when* to look.
 * Reconcilers never call each other; they share the store and observed state.
 */
export interface Reconciler {
  readonly name: ReconcilerName;
  /** Converges one key. Throwing means "retry this key with backoff". */
  reconcile(key: string): Promise<HandlerResult>;
  /** Every key there is to look at (for the periodic resync). */
  keys(): Iterable<string> | Promise<Iterable<string>>;
}

export interface ControllerOptions {
  reconciler: Reconciler;
  clock: Clock;
  log: Logger;
  /** Full resync period (the watchdog); 0 or less for none. */
  resyncMs: number;
  retry: BackoffPolicy;
  /** Keys reconciled at once (never the same key twice at once). */
  concurrency?: number;
}

/**
 * Drives a Reconciler: a keyed, deduplicating work queue with per-key retry backoff (see
 * WorkQueue), triggered by events (`trigger`) and by a periodic full resync. Constructing does
 * no I/O; start(signal) starts, and everything stops when the signal aborts.
 */
export class Controller {
  private readonly queue: WorkQueue;
  private resyncTimer: TimerHandle | null = null;
  private signal: AbortSignal | null = null;

  constructor(private readonly o: ControllerOptions) {
    this.queue = new WorkQueue({
      clock: o.clock,
      log: o.log,
      handler: (key) => o.reconciler.reconcile(key),
      retry: o.retry,
      ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}),
    });
  }

  get name(): ReconcilerName {
    return this.o.reconciler.name;
  }

  start(signal: AbortSignal): void {
    this.signal = signal;
    this.queue.start(signal);
    signal.addEventListener(
      'abort',
      () => {
        if (this.resyncTimer) this.o.clock.clearTimeout(this.resyncTimer);
        this.resyncTimer = null;
      },
      { once: true },
    );
    this.scheduleResync();
  }

  /** Something about this key changed: look at it as soon as a worker is free. */
  trigger(key: string): void {
    this.queue.add(key);
  }

  /** Looks at the key after ms (unless it is due sooner). */
  triggerAfter(key: string, ms: number): void {
    this.queue.addAfter(key, ms);
  }

  /** Queues every key now and resolves once the queue is idle. */
  async resyncAll(): Promise<void> {
    for (const k of await this.o.reconciler.keys()) this.queue.add(k);
    await this.queue.idle();
  }

  /** Resolves when nothing is queued or running (delayed keys do not count). */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  private scheduleResync(): void {
    if (this.o.resyncMs <= 0 || this.signal?.aborted) return;
    this.resyncTimer = this.o.clock.setTimeout(() => {
      this.resyncTimer = null;
      void this.resyncAll()
        .catch((err: unknown) => this.o.log.warn({ err }, 'resync failed'))
        .finally(() => this.scheduleResync());
    }, this.o.resyncMs);
  }
}
