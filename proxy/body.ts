import type { Readable } from 'node:stream';

/** Chunks of an idempotent request's body kept for a replay; above this it is not retried. */
export const REPLAY_BUFFER_MAX_BYTES = 64 * 1024;

type Pulled = { done: true } | { done: false; value: Buffer; index: number };

/**
 * A client's request body, read only when an upstream attempt pulls it and replayable for a retry
 * while that is safe.
 *
 * undici pulls the body only once the request is being written on a connected socket, so a
 * refused or timed-out connect leaves it untouched (`consumed` false) and any method may be
 * retried. Once bytes have been read they have gone to a backend; an idempotent request can
 * still be replayed from the chunks kept here (up to REPLAY_BUFFER_MAX_BYTES), a non-idempotent
 * one cannot.
 *
 * Streaming: one chunk at a time, pulled on demand, so upstream backpressure reaches the client.
 */
export class RequestBody {
  /** Created on the first pull: until then Node can still discard an unread body after the response. */
  private source: AsyncIterator<Buffer> | null = null;
  /** Every chunk read so far while keeping them; null when not kept (or over the cap). */
  private kept: Buffer[] | null;
  private keptBytes = 0;
  private pending: Promise<Pulled> | null = null;
  /** Number of chunks read from the client. */
  private count = 0;
  private ended = false;

  constructor(
    private readonly req: Readable,
    keepForReplay: boolean,
  ) {
    this.kept = keepForReplay ? [] : null;
  }

  /** Whether any byte has been read from the client. */
  get consumed(): boolean {
    return this.count > 0;
  }

  /** Whether a new attempt can send the whole body again. */
  replayable(): boolean {
    return this.count === 0 || this.kept !== null;
  }

  /** Whether the client's body has been read to its end. */
  get complete(): boolean {
    return this.ended;
  }

  /** A fresh async iterable for one upstream attempt. */
  attempt(): AttemptBody {
    return new AttemptBody(this);
  }

  /** @internal the chunk at index i if kept. */
  keptAt(i: number): Buffer | undefined {
    return this.kept?.[i];
  }

  /** @internal */
  get readCount(): number {
    return this.count;
  }

  /** @internal one shared read from the client; concurrent callers get the same chunk. */
  pull(): Promise<Pulled> {
    if (this.pending) return this.pending;
    this.source ??= (this.req as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    const p = this.source.next().then(
      (r): Pulled => {
        this.pending = null;
        if (r.done) {
          this.ended = true;
          return { done: true };
        }
        const value = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
        const index = this.count++;
        if (this.kept) {
          this.keptBytes += value.length;
          if (this.keptBytes > REPLAY_BUFFER_MAX_BYTES) this.kept = null;
          else this.kept.push(value);
        }
        return { done: false, value, index };
      },
      (err: unknown) => {
        this.pending = null;
        throw err;
      },
    );
    this.pending = p;
    return p;
  }
}

/** The body as one upstream attempt reads it; cancel() ends a read the attempt waits on. */
export class AttemptBody implements AsyncIterableIterator<Buffer> {
  private i = 0;
  private cancelled: Error | null = null;
  private rejectWait: ((err: Error) => void) | null = null;

  constructor(private readonly body: RequestBody) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<Buffer>> {
    for (;;) {
      if (this.cancelled) throw this.cancelled;
      if (this.i < this.body.readCount) {
        const chunk = this.body.keptAt(this.i);
        if (!chunk) throw new Error('request body cannot be replayed');
        this.i++;
        return { done: false, value: chunk };
      }
      if (this.body.complete) return { done: true, value: undefined };
      const pulled = await this.waitFor(this.body.pull());
      if (pulled.done) return { done: true, value: undefined };
      if (pulled.index === this.i) {
        this.i++;
        return { done: false, value: pulled.value };
      }
      // Another attempt's read landed first; it is kept, loop to take it from there.
    }
  }

  /** Called by undici when it stops iterating; the client's stream is left alone (a retry may need it). */
  async return(): Promise<IteratorResult<Buffer>> {
    this.cancel(new Error('attempt ended'));
    return { done: true, value: undefined };
  }

  /** Ends this attempt's reading: a pending next() rejects with err; the shared read goes on. */
  cancel(err: Error): void {
    if (this.cancelled) return;
    this.cancelled = err;
    this.rejectWait?.(err);
  }

  private waitFor<T>(p: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.rejectWait = reject;
      p.then(
        (v) => {
          this.rejectWait = null;
          resolve(v);
        },
        (err: unknown) => {
          this.rejectWait = null;
          reject(err);
        },
      );
    });
  }
}
