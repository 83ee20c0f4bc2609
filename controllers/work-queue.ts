import type { Clock, TimerHandle } from '../core/clock.js';
import { backoffDelayMs, type BackoffPolicy } from '../core/backoff.js';
import type { Logger } from '../core/log.js';
import { DEFAULTS } from '../core/defaults.js';
import { isTerminal } from '../core/errors.js';

/** What a handler says about a key it just processed. */
export type HandlerResult =
  /** Converged: forget the key until something adds it again. */
  | { kind: 'done' }
  /** Look again soon (actions were taken; their effect should be observed). */
  | { kind: 'requeue' }
  /** Look again after ms (for example a crash-loop backoff ends then). */
  | { kind: 'after'; ms: number };

export type Handler = (key: string) => Promise<HandlerResult>;

export interface WorkQueueOptions {
  clock: Clock;
  handler: Handler;
  log: Logger;
  /** Keys processed at once (never the same key twice at once). */
  concurrency?: number;
  /** Per-key retry backoff after the handler throws. */
  retry: BackoffPolicy;
  /**
   * After the handler throws a terminal error (isTerminal: an OrcaError that is not transient),
   * the key comes back after this instead of the fast backoff. Default DEFAULTS.terminalRetryMs.
   */
  terminalRetryMs?: number;
}

/**
 * A keyed, deduplicating work queue in the manner of client-go's workqueue:
 * a key added many times before it runs is processed once; a key added while it is being
 * processed runs again right after; a key never runs twice at once; a handler that throws
 * is retried with per-key exponential backoff, reset by the next success — unless what it
 * threw is terminal (an OrcaError that is not transient), which is retried slowly
 * (`terminalRetryMs`): retrying a missing image every second changes nothing.
 */
export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly delayed = new Map<string, { due: number; handle: TimerHandle }>();
  private readonly idleWaiters: Array<() => void> = [];
  private running = false;
  private active = 0;

  constructor(private readonly opts: WorkQueueOptions) {}

  /** Starts processing; everything stops when the signal aborts. */
  start(signal: AbortSignal): void {
    this.running = true;
    signal.addEventListener('abort', () => this.stop(), { once: true });
    this.pump();
  }

  stop(): void {
    this.running = false;
    for (const { handle } of this.delayed.values()) this.opts.clock.clearTimeout(handle);
    this.delayed.clear();
  }

  /** Marks a key for processing as soon as a worker is free. */
  add(key: string): void {
    const d = this.delayed.get(key);
    if (d) {
      this.opts.clock.clearTimeout(d.handle);
      this.delayed.delete(key);
    }
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.pump();
  }

  /** Adds the key after ms, unless it is already due sooner. */
  addAfter(key: string, ms: number): void {
    if (ms <= 0) return this.add(key);
    if (this.queued.has(key)) return;
    const due = this.opts.clock.now() + ms;
    const existing = this.delayed.get(key);
    if (existing && existing.due <= due) return;
    if (existing) this.opts.clock.clearTimeout(existing.handle);
    const handle = this.opts.clock.setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, ms);
    this.delayed.set(key, { due, handle });
  }

  /** Keys waiting, running or scheduled. */
  size(): number {
    return this.queue.length + this.processing.size + this.delayed.size;
  }

  /** Resolves when nothing is queued or running (delayed keys do not count). */
  idle(): Promise<void> {
    if (this.queue.length === 0 && this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    if (!this.running) return;
    const limit = this.opts.concurrency ?? 4;
    while (this.active < limit && this.queue.length > 0) {
      const key = this.queue.shift() as string;
      this.queued.delete(key);
      this.processing.add(key);
      this.active++;
      void this.process(key);
    }
    if (this.queue.length === 0 && this.active === 0) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private async process(key: string): Promise<void> {
    let result: HandlerResult;
    try {
      result = await this.opts.handler(key);
      this.failures.delete(key);
    } catch (err) {
      const n = this.failures.get(key) ?? 0;
      this.failures.set(key, n + 1);
      if (isTerminal(err)) {
        const ms = this.opts.terminalRetryMs ?? DEFAULTS.terminalRetryMs;
        this.opts.log.warn({ key, err, code: err.code, retryInMs: ms, attempt: n + 1 }, 'reconcile failed with a terminal error; retrying slowly');
        result = { kind: 'after', ms };
      } else {
        const ms = backoffDelayMs(this.opts.retry, n);
        this.opts.log.warn({ key, err, retryInMs: ms, attempt: n + 1 }, 'reconcile failed; will retry');
        result = { kind: 'after', ms };
      }
    }
    this.processing.delete(key);
    this.active--;
    if (this.running) {
      if (this.dirty.delete(key) || result.kind === 'requeue') this.add(key);
      else if (result.kind === 'after') this.addAfter(key, result.ms);
    }
    this.pump();
  }
}
