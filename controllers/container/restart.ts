import type { ServiceSpec } from '../../manifest/types.js';
import type { ExitReason } from './types.js';

export type RestartDecision =
  | { kind: 'restart'; delayMs: number; reason: RestartReason; consecutiveFailures: number }
  | { kind: 'no-restart'; reason: RestartReason; consecutiveFailures: number };

/** Reason constants; they flow into events, logs and status. */
export const RESTART_REASON = {
  firstFailure: 'first-failure-restart-now',
  crashLoop: 'crash-loop-backoff',
  policyNever: 'policy-never',
  policyOnFailureSuccess: 'policy-on-failure-exit-0',
} as const;
export type RestartReason = (typeof RESTART_REASON)[keyof typeof RESTART_REASON];

export interface FailureHistory {
  /** Failures counted so far in the current run of failures (before this one). */
  consecutiveFailures: number;
  /** ms since epoch the failed instance started running, or null if it never ran. */
  startedAtMs: number | null;
  /** ms since epoch it stopped. */
  endedAtMs: number;
}

/**
 * Decides whether and when a failed instance is replaced (SPEC §3.3).
 * The first replacement after a failure starts at once; after that the delay doubles from
 * backoff_initial_secs up to backoff_max_secs; an instance that ran for reset_after_secs
 * resets the count. `on-failure` does not heal exit code 0; `never` heals nothing.
 * Pure.
 */
export function decideRestart(
  history: FailureHistory,
  exit: { reason: ExitReason; code: number | null },
  restart: ServiceSpec['restart'],
): RestartDecision {
  const ranMs = history.startedAtMs === null ? 0 : history.endedAtMs - history.startedAtMs;
  const prior = ranMs >= restart.resetAfterSecs * 1000 ? 0 : history.consecutiveFailures;
  const consecutiveFailures = prior + 1;

  if (restart.policy === 'never') return { kind: 'no-restart', reason: RESTART_REASON.policyNever, consecutiveFailures };
  if (restart.policy === 'on-failure' && exit.reason === 'completed') {
    return { kind: 'no-restart', reason: RESTART_REASON.policyOnFailureSuccess, consecutiveFailures };
  }
  if (consecutiveFailures <= 1) {
    return { kind: 'restart', delayMs: 0, reason: RESTART_REASON.firstFailure, consecutiveFailures };
  }
  const delayMs = Math.min(
    restart.backoffMaxSecs * 1000,
    restart.backoffInitialSecs * 1000 * Math.pow(2, consecutiveFailures - 2),
  );
  return { kind: 'restart', delayMs, reason: RESTART_REASON.crashLoop, consecutiveFailures };
}
