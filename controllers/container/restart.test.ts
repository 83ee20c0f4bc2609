import { describe, expect, it } from 'vitest';
import { decideRestart, RESTART_REASON } from './restart.js';

const policy = { policy: 'always' as const, backoffInitialSecs: 1, backoffMaxSecs: 60, resetAfterSecs: 60 };
const T = 1_000_000;

describe('decideRestart', () => {
  it.each([
    // consecutive failures before, ran ms, expected delay
    [0, 1000, 0],
    [1, 1000, 1000],
    [2, 1000, 2000],
    [3, 1000, 4000],
    [6, 1000, 32000],
    [7, 1000, 60000],
    [20, 1000, 60000],
    [5, 60_000, 0], // ran for reset_after_secs: the count starts over
  ])('after %i failures and a run of %i ms the delay is %i ms', (before, ran, delay) => {
    const d = decideRestart({ consecutiveFailures: before, startedAtMs: T, endedAtMs: T + ran }, { reason: 'exited', code: 1 }, policy);
    expect(d.kind).toBe('restart');
    if (d.kind === 'restart') expect(d.delayMs).toBe(delay);
  });

  it('heals exit code 0 under always', () => {
    const d = decideRestart({ consecutiveFailures: 0, startedAtMs: T, endedAtMs: T + 5 }, { reason: 'completed', code: 0 }, policy);
    expect(d).toMatchObject({ kind: 'restart', delayMs: 0, reason: RESTART_REASON.firstFailure });
  });

  it('on-failure does not heal exit 0 but heals a crash', () => {
    const onFailure = { ...policy, policy: 'on-failure' as const };
    expect(decideRestart({ consecutiveFailures: 0, startedAtMs: T, endedAtMs: T }, { reason: 'completed', code: 0 }, onFailure)).toMatchObject({
      kind: 'no-restart',
      reason: RESTART_REASON.policyOnFailureSuccess,
    });
    expect(decideRestart({ consecutiveFailures: 0, startedAtMs: T, endedAtMs: T }, { reason: 'oom-killed', code: 137 }, onFailure).kind).toBe('restart');
  });

  it('never heals nothing but still counts the failure', () => {
    const d = decideRestart({ consecutiveFailures: 2, startedAtMs: T, endedAtMs: T }, { reason: 'exited', code: 1 }, { ...policy, policy: 'never' });
    expect(d).toMatchObject({ kind: 'no-restart', reason: RESTART_REASON.policyNever, consecutiveFailures: 3 });
  });

  it('a container that never started counts as a failure in the current run', () => {
    const d = decideRestart({ consecutiveFailures: 1, startedAtMs: null, endedAtMs: T }, { reason: 'removed', code: null }, policy);
    expect(d).toMatchObject({ kind: 'restart', delayMs: 1000, consecutiveFailures: 2 });
  });
});
