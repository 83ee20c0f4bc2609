import type { Writable } from 'node:stream';
import type { Clock, TimerHandle } from '../core/clock.js';

/** The writable half a StreamWriter needs (a ServerResponse, or any Writable). */
export type Sink = Pick<Writable, 'write' | 'end' | 'destroy' | 'once' | 'off' | 'destroyed' | 'writableEnded'>;

/**
 * Writes a long stream (`logs -f`, `events -f`) to one HTTP client, honouring backpressure:
 * when the sink's buffer is full, write() waits for 'drain' before the caller produces more, so
 * a reader that stops reading stops the producer instead of growing memory. A reader that takes
 * nothing for stallMs is given up on: write() resolves false and `stalled` is set; the caller
 * then finish()es with a message. Never throws.
 */
export class StreamWriter {
  private done = false;
  stalled = false;

  constructor(
    private readonly sink: Sink,
    private readonly clock: Clock,
    private readonly stallMs: number,
  ) {}

  /** False once the stream is closed, ended or stalled: stop producing. */
  get open(): boolean {
    return !this.done && !this.sink.destroyed && !this.sink.writableEnded;
  }

  /** Writes text; resolves true once the sink can take more, false when the caller should stop. */
  write(text: string): Promise<boolean> {
    if (!this.open) return Promise.resolve(false);
    if (this.sink.write(text)) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      let timer: TimerHandle | null = null;
      const settle = (value: boolean) => {
        if (timer) this.clock.clearTimeout(timer);
        this.sink.off('drain', onDrain);
        this.sink.off('close', onClose);
        if (!value) this.done = true;
        resolve(value);
      };
      const onDrain = () => settle(this.open);
      const onClose = () => settle(false);
      timer = this.clock.setTimeout(() => {
        this.stalled = true;
        settle(false);
      }, this.stallMs);
      this.sink.once('drain', onDrain);
      this.sink.once('close', onClose);
    });
  }

  /**
   * Ends the stream with a last line (for example why it ended). A sink that was stalled is
   * destroyed after graceMs if its reader still does not take the end, so nothing stays held.
   */
  finish(lastLine?: string, graceMs = 5_000): void {
    this.done = true;
    if (this.sink.destroyed || this.sink.writableEnded) return;
    this.sink.end(lastLine);
    if (!this.stalled) return;
    const timer = this.clock.setTimeout(() => this.sink.destroy(), graceMs);
    this.sink.once('close', () => this.clock.clearTimeout(timer));
  }
}

/**
 * A bounded FIFO for a follower that may fall behind: past `max` items the oldest are dropped
 * and counted, so memory stays bounded whatever the producer does. take() hands out the count
 * of items dropped since the last take (so the consumer can say so) and then the next item.
 */
export class DroppingQueue<T> {
  private items: T[] = [];
  private head = 0;
  private droppedSince = 0;
  private closed = false;
  private wake: (() => void) | null = null;

  constructor(private readonly max: number) {}

  get size(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    if (this.closed) return;
    this.items.push(item);
    if (this.size > this.max) {
      this.head++;
      this.droppedSince++;
    }
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    this.wake?.();
  }

  /** Ends the queue: take() resolves null once it is empty. */
  close(): void {
    this.closed = true;
    this.wake?.();
  }

  /** The next item (with how many were dropped before it), or null once closed. */
  async take(): Promise<{ dropped: number; item: T } | null> {
    while (this.size === 0) {
      if (this.closed) return null;
      await new Promise<void>((r) => (this.wake = r));
      this.wake = null;
    }
    const item = this.items[this.head] as T;
    this.items[this.head] = undefined as T;
    this.head++;
    const dropped = this.droppedSince;
    this.droppedSince = 0;
    return { dropped, item };
  }
}
