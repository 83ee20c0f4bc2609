import type { ProbeSpec } from '../../manifest/types.js';

export type ProbeKind = 'readiness' | 'liveness';

export interface ProbeCounters {
  successes: number;
  failures: number;
  /** readiness starts `unknown` (not ready); liveness starts `passing` (alive until shown otherwise). */
  status: 'unknown' | 'passing' | 'failing';
}

export function initialCounters(kind: ProbeKind): ProbeCounters {
  return { successes: 0, failures: 0, status: kind === 'readiness' ? 'unknown' : 'passing' };
}

/**
 * Folds one probe result into the counters (SPEC §2 thresholds, as Kubernetes does):
 * `success_threshold` consecutive passes make a probe passing, `failure_threshold`
 * consecutive failures make it failing. Returns what changed, if anything. Pure.
 */
export function applyProbeResult(c: ProbeCounters, ok: boolean, spec: ProbeSpec): { counters: ProbeCounters; changed: 'pass' | 'fail' | null } {
  if (ok) {
    const successes = c.successes + 1;
    const pass = c.status !== 'passing' && successes >= spec.successThreshold;
    return { counters: { successes, failures: 0, status: pass ? 'passing' : c.status }, changed: pass ? 'pass' : null };
  }
  const failures = c.failures + 1;
  const fail = c.status !== 'failing' && failures >= spec.failureThreshold;
  return { counters: { successes: 0, failures, status: fail ? 'failing' : c.status }, changed: fail ? 'fail' : null };
}
