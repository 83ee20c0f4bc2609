import pino, { type Logger } from 'pino';
import { createRequire } from 'node:module';

export type { Logger };

export interface LogOptions {
  level?: string;
  /** Pretty-print for humans; defaults to whether the destination (stdout) is a TTY. */
  pretty?: boolean;
  /** Where to write; defaults to stdout. */
  destination?: NodeJS.WritableStream;
}

/**
 * The one logger factory. Built once in a composition root and passed down; components take
 * children (`log.child({ reconciler: 'container' })`), and a key a child binds is never passed
 * again in a call (pino would print it twice).
 *
 * JSON lines by default; on a TTY (or with `pretty`), human-readable lines formatted in-process
 * and written synchronously, so nothing is lost when the process exits right after.
 */
export function createLogger(opts: LogOptions = {}): Logger {
  const level = opts.level ?? process.env.ORCA_LOG_LEVEL ?? 'info';
  const out = opts.destination ?? process.stdout;
  const pretty = opts.pretty ?? (out as { isTTY?: boolean }).isTTY === true;
  const base = {
    level,
    base: undefined,
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['token', '*.token', 'authorization', '*.authorization', 'headers.authorization'], censor: '[redacted]' },
  };
  if (pretty) {
    // Loaded only for pretty output (a terminal): a server writing JSON lines never pays for it.
    const { prettyFactory } = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');
    const format = prettyFactory({ colorize: (out as { isTTY?: boolean }).isTTY === true, translateTime: 'HH:MM:ss.l' });
    return pino(base, { write: (line: string) => void out.write(format(line)) });
  }
  return opts.destination ? pino(base, opts.destination as pino.DestinationStream) : pino(base);
}

/** A logger that drops everything, for tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
