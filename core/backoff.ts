import type { Rng } from './clock.js';

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  /** Multiplier per attempt; 2 doubles. */
  factor?: number;
  /** Fraction of the delay to randomise, ±; 0.2 = ±20 %. */
  jitter?: number;
}

/**
 * Delay before attempt number `attempt` (0-based: attempt 0 waits initialMs).
 * Pure apart from the injected Rng; without jitter the Rng is not consulted.
 */
export function backoffDelayMs(policy: BackoffPolicy, attempt: number, rng?: Rng): number {
  const factor = policy.factor ?? 2;
  const base = Math.min(policy.maxMs, policy.initialMs * Math.pow(factor, Math.max(0, attempt)));
  const jitter = policy.jitter ?? 0;
  if (!jitter || !rng) return base;
  const spread = base * jitter;
  return Math.max(0, base - spread + rng.next() * 2 * spread);
}
