import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { capEventRecord, MAX_EVENT_RECORD_CHARS, MAX_EVENT_TEXT_CHARS } from './event-cap.js';
import type { EventRecord } from './types.js';

const base: EventRecord = {
  time: '2026-01-01T00:00:00.000Z',
  reconciler: 'container',
  service: 'web',
  instance: 'web-1-0-abcd',
  node: 'n1',
  action: 'container.create',
  reason: 'missing',
  outcome: 'ok',
  durationMs: 12,
};

describe('capEventRecord', () => {
  it('leaves an ordinary record as it is', () => {
    expect(capEventRecord(base)).toBe(base);
    const withMessage = { ...base, message: 'raise resources.memory' };
    expect(capEventRecord(withMessage)).toEqual(withMessage);
  });

  it('cuts a 1 MB reason to its bound, marked, and keeps the rest', () => {
    const e = capEventRecord({ ...base, reason: 'r'.repeat(1_000_000) });
    expect(e.reason).toHaveLength(MAX_EVENT_TEXT_CHARS);
    expect(e.reason.endsWith('…[cut]')).toBe(true);
    expect({ ...e, reason: 'x' }).toEqual({ ...base, reason: 'x' });
  });

  it('drops unknown fields and mends a bad duration', () => {
    const e = capEventRecord({ ...base, durationMs: Number.NaN, extra: 'y'.repeat(100_000) } as unknown as EventRecord);
    expect(e).toEqual({ ...base, durationMs: 0 });
  });

  it('no record, however large its fields, exceeds the per-record bound as JSON', () => {
    const big = fc.oneof(fc.string({ maxLength: 20_000 }), fc.string({ unit: 'binary', maxLength: 5_000 }), fc.constant('"\\\u0001'.repeat(3000)));
    fc.assert(
      fc.property(big, big, big, big, big, big, big, big, big, (time, reconciler, service, instance, node, action, reason, outcome, message) => {
        const e = capEventRecord({ time, reconciler, service, instance, node, action, reason, outcome, message, durationMs: 1 });
        expect(JSON.stringify(e).length).toBeLessThanOrEqual(MAX_EVENT_RECORD_CHARS);
      }),
      { numRuns: 50 },
    );
  });
});
