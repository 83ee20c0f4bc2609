/**
 * The CLI in pipes. When the reader of stdout goes away (`orca events | head -1`), the next
 * write fails with EPIPE; Node reports it as an 'error' event on process.stdout, which without
 * a listener is an uncaught exception and a stack trace. This is the one place that handles it:
 * a closed stdout ends the command quietly with exit 0, as `head` expects of a good citizen.
 */

interface ErrorSource {
  on(event: 'error', listener: (err: NodeJS.ErrnoException) => void): unknown;
}

/**
 * Listens for errors on stdout (and stderr). EPIPE on stdout → `exit(0)` at once (the writes
 * still queued are pointless, and a streaming command must not keep its connection open);
 * EPIPE on stderr → ignored (there is no one left to tell); any other stdout error →
 * one line on stderr and `exit(1)`.
 */
export function endQuietlyOnClosedPipe(
  stdout: ErrorSource,
  stderr: ErrorSource & { write(s: string): unknown },
  exit: (code: number) => void,
): void {
  let ended = false;
  stdout.on('error', (err) => {
    if (ended) return;
    ended = true;
    if (err.code === 'EPIPE') return exit(0);
    stderr.write(`error: cannot write the output: ${err.code ?? err.message}\n`);
    exit(1);
  });
  stderr.on('error', (err) => {
    if (err.code !== 'EPIPE') throw err;
  });
}
