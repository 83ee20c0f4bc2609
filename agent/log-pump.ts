/**
 * Flow control of a log stream, the agent's side. The server grants credit (in characters: a
 * line costs its length + 1) when it asks for logs and again as its reader takes lines; the
 * pump pulls lines from Docker's log iterator only while it has credit, so a reader that stops
 * reading stops Docker's log stream (its socket fills and Docker waits) instead of growing a
 * buffer anywhere. A batch is sent when it is full, when it would spend the credit left, or on
 * the next turn of the event loop (so `logs -f` stays live); the credit can go below zero by at
 * most one batch, which the server's inbox allows for.
 */

import { LOG_BATCH_CHARS, LOG_BATCH_LINES } from '../protocol/messages.js';

export { LOG_BATCH_CHARS, LOG_BATCH_LINES };

/** What a line costs against the credit. */
export const lineCost = (line: string): number => line.length + 1;

export class LogPump {
  private credit: number;
  private wake: (() => void) | null = null;

  /** window: the first credit; undefined means no flow control (a server that grants none). */
  constructor(window: number | undefined, private readonly signal: AbortSignal) {
    this.credit = window ?? Infinity;
    signal.addEventListener('abort', () => this.wake?.(), { once: true });
  }

  /** The server's reader took `chars` more: the pump may send that much more. */
  grant(chars: number): void {
    this.credit += chars;
    this.wake?.();
  }

  /**
   * Sends the lines of `source` through `send` in batches until it ends (or the signal aborts),
   * never more than the credit allows. Whatever was batched is sent before it returns or throws.
   */
  async run(source: AsyncIterable<string>, send: (lines: string[]) => void): Promise<void> {
    let batch: string[] = [];
    let batchChars = 0;
    let scheduled = false;
    const flush = () => {
      if (batch.length === 0) return;
      send(batch);
      this.credit -= batchChars;
      batch = [];
      batchChars = 0;
    };
    try {
      for await (const line of source) {
        if (this.signal.aborted) return;
        batch.push(line);
        batchChars += lineCost(line);
        if (batch.length >= LOG_BATCH_LINES || batchChars >= LOG_BATCH_CHARS || batchChars >= this.credit) {
          flush();
          // Out of credit: Docker's stream is not read until the server's reader catches up.
          while (this.credit <= 0 && !this.signal.aborted) await new Promise<void>((r) => (this.wake = r));
          this.wake = null;
        } else if (!scheduled) {
          scheduled = true;
          setImmediate(() => {
            scheduled = false;
            flush();
          });
        }
      }
    } finally {
      flush();
    }
  }
}
