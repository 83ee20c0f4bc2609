import { describe, expect, it } from 'vitest';
import { applyProbeResult, initialCounters, type ProbeKind } from './probe-state.js';
import type { ProbeSpec } from '../../manifest/types.js';

const spec = (failureThreshold: number, successThreshold: number): ProbeSpec => ({
  check: { kind: 'tcp', port: 80 },
  intervalSecs: 1,
  timeoutSecs: 1,
  failureThreshold,
  successThreshold,
  initialDelaySecs: 0,
});

/** Runs a sequence of results ('+' pass, '-' fail) and returns the transitions, '.' for none. */
function run(kind: ProbeKind, seq: string, s: ProbeSpec): string {
  let c = initialCounters(kind);
  let out = '';
  for (const ch of seq) {
    const r = applyProbeResult(c, ch === '+', s);
    c = r.counters;
    out += r.changed === 'pass' ? 'P' : r.changed === 'fail' ? 'F' : '.';
  }
  return out;
}

describe('applyProbeResult', () => {
  it.each([
    // kind, results, failure_threshold, success_threshold, transitions
    ['readiness', '+', 3, 1, 'P'],
    ['readiness', '++', 3, 2, '.P'],
    ['readiness', '+-+', 3, 2, '...'],
    ['readiness', '+--', 2, 1, 'P.F'],
    ['readiness', '+-+-+--', 2, 1, 'P......'.slice(0, 6) + 'F'],
    ['readiness', '+--+', 2, 1, 'P.FP'],
    ['readiness', '---', 3, 1, '..F'],
    ['liveness', '--', 3, 1, '..'],
    ['liveness', '---', 3, 1, '..F'],
    ['liveness', '--+---', 3, 1, '.....F'],
    ['liveness', '-', 1, 1, 'F'],
  ] as const)('%s %s (failure %i, success %i) → %s', (kind, seq, f, sc, want) => {
    expect(run(kind, seq, spec(f, sc))).toBe(want);
  });
});
