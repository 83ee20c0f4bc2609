/** Exit codes of SPEC §4. */
export const EXIT = { ok: 0, failed: 1, invalid: 2, unreachable: 3 } as const;

/** An error for the user: one clear message, no stack trace, and an exit code. */
export class CliError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}
