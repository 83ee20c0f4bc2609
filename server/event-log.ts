import { EventEmitter } from 'node:events';
import type { Logger } from '../core/log.js';
import type { EventRecord, Store } from '../store/types.js';
import { capEventRecord } from '../store/event-cap.js';

/**
 * The reconciliation log: every action, from any reconciler on any node. Records are
 * written to the store in small batches (a capped ring) and fanned out live to
 * `orca events -f` followers.
 */
export class EventLog {
  private readonly emitter = new EventEmitter();
  private pending: EventRecord[] = [];
  private flushing: Promise<void> | null = null;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    /** Sees every record first (metrics). */
    private readonly onRecord?: (e: EventRecord) => void,
  ) {
    this.emitter.setMaxListeners(0);
  }

  /** Records one event, its fields cut to the ring's bounds first (capEventRecord). */
  record(event: EventRecord): void {
    const e = capEventRecord(event);
    this.onRecord?.(e);
    this.pending.push(e);
    this.emitter.emit('event', e);
    if (!this.flushing) this.flushing = this.flush();
  }

  /** Subscribes to new records; returns the unsubscribe function. */
  follow(fn: (e: EventRecord) => void): () => void {
    this.emitter.on('event', fn);
    return () => this.emitter.off('event', fn);
  }

  /** Waits until everything recorded so far is in the store. */
  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private async flush(): Promise<void> {
    // Let a burst of records from one plan collect into one batch.
    await new Promise<void>((r) => setImmediate(r));
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0);
      try {
        await this.store.appendEvents(batch);
      } catch (err) {
        this.log.error({ err, dropped: batch.length }, 'could not write the reconciliation log');
      }
    }
    this.flushing = null;
  }
}
