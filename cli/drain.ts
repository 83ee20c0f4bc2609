import type { Writable } from 'node:stream';

/** Resolves when `out` drains (or closes, or the signal aborts): a CLI that streams honours backpressure. */
export function drained(out: Pick<Writable, 'once' | 'off'>, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      out.off('drain', done);
      out.off('close', done);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    out.once('drain', done);
    out.once('close', done);
    signal?.addEventListener('abort', done, { once: true });
  });
}
