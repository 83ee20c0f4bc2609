/**
 * A push-driven async iterable: producers push, end or fail; one consumer iterates. Items
 * pushed before the consumer reads are buffered. Used by FakeRuntime for events and logs.
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private waiter: (() => void) | undefined;
  private ended = false;
  private error: unknown;
  private failed = false;

  /** Calls onClose once when the queue ends, fails, or the consumer stops early. */
  constructor(private readonly onClose: () => void = () => {}) {}

  get closed(): boolean {
    return this.ended || this.failed;
  }

  push(item: T): void {
    if (this.closed) return;
    this.items.push(item);
    this.wake();
  }

  /** Ends the iteration after the buffered items. */
  end(): void {
    if (this.closed) return;
    this.ended = true;
    this.onClose();
    this.wake();
  }

  /** Throws `error` from the iteration after the buffered items. */
  fail(error: unknown): void {
    if (this.closed) return;
    this.failed = true;
    this.error = error;
    this.onClose();
    this.wake();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    try {
      for (;;) {
        if (this.items.length > 0) {
          yield this.items.shift() as T;
          continue;
        }
        if (this.failed) throw this.error;
        if (this.ended) return;
        await new Promise<void>((resolve) => {
          this.waiter = resolve;
        });
      }
    } finally {
      this.end();
    }
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }
}
