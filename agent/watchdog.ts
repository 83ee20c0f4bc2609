import type { Clock, TimerHandle } from '../core/clock.js';

/**
 * Runs `pass` every intervalMs (measured from the end of the previous pass, so passes never
 * overlap) until the signal aborts. The first pass is one interval after start. `pass` must not
 * reject.
 */
export function startWatchdog(clock: Clock, intervalMs: number, signal: AbortSignal, pass: () => Promise<void>): void {
  let timer: TimerHandle | null = null;
  const schedule = () => {
    if (signal.aborted) return;
    timer = clock.setTimeout(() => {
      timer = null;
      void pass().finally(schedule);
    }, intervalMs);
  };
  signal.addEventListener(
    'abort',
    () => {
      if (timer) clock.clearTimeout(timer);
      timer = null;
    },
    { once: true },
  );
  schedule();
}
