/**
 * A promise-chain mutex: run() calls fn only after every earlier fn has settled, so writers that
 * read-then-write (revision counters, the event count) never interleave inside one process.
 * A rejected fn does not block later ones.
 */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** Resolves once everything queued so far has settled. Never rejects. */
  async idle(): Promise<void> {
    await this.tail;
  }
}
