/** Exit codes of SPEC §4. */
export const EXIT = { ok: 0, failed: 1, invalid: 2, unreachable: 3 } as const;

/**
 * Marks a CliError. bin/orca runs the bundled CLI (dist/cli/orca.cjs) and loads the heavy
 * commands (server, agent) from their own modules: each side has its own copy of this class,
 * so `instanceof` cannot tell a CliError thrown on the other side; the brand can.
 */
const BRAND = Symbol.for('orca.cli-error');

/** An error for the user: one clear message, no stack trace, and an exit code. */
export class CliError extends Error {
  readonly [BRAND] = true;
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

/** Whether `err` is a CliError, whichever copy of this module made it. */
export function isCliError(err: unknown): err is CliError {
  return typeof err === 'object' && err !== null && (err as { [BRAND]?: unknown })[BRAND] === true && typeof (err as CliError).exitCode === 'number';
}
