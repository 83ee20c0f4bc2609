import { sleep, type Clock } from '../core/clock.js';
import { backoffDelayMs, type BackoffPolicy } from '../core/backoff.js';
import type { Logger } from '../core/log.js';
import type { Runtime, RuntimeEvent } from '../runtime/types.js';

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
