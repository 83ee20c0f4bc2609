import { describe, expect, it } from 'vitest';
import { nextNodeCheckInMs, nodeStateAt } from './node-reconciler.js';

const cfg = { heartbeatTimeoutMs: 15_000, nodeDownGraceMs: 60_000 };

describe('node reconciler planner', () => {
  it.each([
    [0, false, 'ready'],
    [15_000, false, 'ready'],
    [15_001, false, 'unreachable'],
    [75_000, false, 'unreachable'],
    [75_001, false, 'down'],
    [0, true, 'draining'],
    [20_000, true, 'unreachable'],
    [80_000, true, 'down'],
  ] as const)('silent %i ms, drained %s → %s', (silent, drained, want) => {
    expect(nodeStateAt({ lastHeartbeatMs: 1_000_000 - silent, drained }, 1_000_000, cfg)).toBe(want);
  });

  it('says when to look next', () => {
    expect(nextNodeCheckInMs({ lastHeartbeatMs: 0 }, 5_000, cfg)).toBe(10_001);
    expect(nextNodeCheckInMs({ lastHeartbeatMs: 0 }, 20_000, cfg)).toBe(55_001);
    expect(nextNodeCheckInMs({ lastHeartbeatMs: 0 }, 80_000, cfg)).toBeNull();
  });
});
