/**
 * When the leader orders a certificate from the ACME CA (SPEC §3.12), pure: renewal once a third
 * of the certificate's lifetime is left, a failed order retried with exponential backoff (hours
 * against a real CA: its rate limits count failures too), and never an order for a host that has
 * a certificate not yet due — whatever restarted in between, since the certificate and the
 * order's standing are in the store.
 */
import { backoffDelayMs, type BackoffPolicy } from '../core/backoff.js';

/** Against a real CA: 1 h, doubling, at most 24 h (Let's Encrypt's failed-validation limit is per hour). */
export const ACME_RETRY: BackoffPolicy = { initialMs: 3_600_000, maxMs: 86_400_000, factor: 2 };

/** When a certificate valid from notBefore to notAfter is renewed: a third of its lifetime before notAfter. */
export function renewAtMs(notBefore: string, notAfter: string): number {
  const from = Date.parse(notBefore);
  const to = Date.parse(notAfter);
  return to - Math.max(0, to - from) / 3;
}

export interface OrderInput {
  /** The stored certificate's validity, if any. */
  cert?: { notBefore: string; notAfter: string } | undefined;
  /** The order's standing, if an order is under way or failed. */
  order?: { status: 'pending' | 'failed'; nextAttemptAt?: string | undefined } | undefined;
  nowMs: number;
}

export type OrderDecision =
  /** Nothing to do until `atMs` (renewal due, or the next retry). */
  | { kind: 'wait'; untilMs: number; why: 'valid' | 'backoff' }
  /** Order now. */
  | { kind: 'order'; why: 'missing' | 'renewal' | 'retry' | 'expired' };

/**
 * What to do for one host with tls = "acme". A failed order waits out its backoff even when the
 * certificate is missing or expiring (rate-limit safety); a certificate not due is never ordered
 * again.
 */
export function decideOrder(i: OrderInput): OrderDecision {
  if (i.order?.status === 'failed' && i.order.nextAttemptAt !== undefined) {
    const next = Date.parse(i.order.nextAttemptAt);
    if (Number.isFinite(next) && next > i.nowMs) return { kind: 'wait', untilMs: next, why: 'backoff' };
  }
  if (!i.cert) return { kind: 'order', why: i.order?.status === 'failed' ? 'retry' : 'missing' };
  const due = renewAtMs(i.cert.notBefore, i.cert.notAfter);
  if (due > i.nowMs) return { kind: 'wait', untilMs: due, why: 'valid' };
  if (i.order?.status === 'failed') return { kind: 'order', why: 'retry' };
  return { kind: 'order', why: Date.parse(i.cert.notAfter) <= i.nowMs ? 'expired' : 'renewal' };
}

/** The delay after the `failures`-th failure in a row (1 = the first). */
export function retryDelayMs(policy: BackoffPolicy, failures: number): number {
  return backoffDelayMs(policy, Math.max(0, failures - 1));
}
