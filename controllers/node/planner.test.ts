import { describe, expect, it } from 'vitest';
import type { NodeState } from './actions.js';
import { planNode, planReschedules, reschedulesOn, type NodeObservation } from './planner.js';

const cfg = { heartbeatTimeoutMs: 15_000, nodeDownGraceMs: 60_000 };
const NOW = 1_000_000;
const node = (silentMs: number, state: NodeState, drained = false): NodeObservation => ({ name: 'n2', lastHeartbeatMs: NOW - silentMs, drained, state });

describe('planNode', () => {
  it.each([
    // silent ms, drained, state now → action (null: none), reason, reschedule, next look (ms)
    [0, false, 'ready', null, '', false, 15_001],
    [15_000, false, 'ready', null, '', false, 1],
    [15_001, false, 'ready', 'node.mark-unreachable', 'no heartbeat for 15s', false, 60_000],
    [15_001, false, 'unreachable', null, '', false, 60_000],
    [75_000, false, 'unreachable', null, '', false, 1],
    [75_001, false, 'unreachable', 'node.mark-down', 'no heartbeat for 75s', true, null],
    // A deadline missed altogether (a stalled event loop): straight to down.
    [80_000, false, 'ready', 'node.mark-down', 'no heartbeat for 80s', true, null],
    [80_000, false, 'down', null, '', false, null],
    // Heard again (or for the first time: a new node starts unreachable): back, and placed anew.
    [0, false, 'unreachable', 'node.mark-ready', 'heartbeat', true, 15_001],
    [0, false, 'down', 'node.mark-ready', 'heartbeat', true, 15_001],
    [0, true, 'down', 'node.mark-draining', 'heartbeat', true, 15_001],
    // The operator's flag.
    [0, true, 'ready', 'node.mark-draining', 'drained-by-operator', true, 15_001],
    [0, false, 'draining', 'node.mark-ready', 'uncordoned-by-operator', true, 15_001],
    [0, true, 'draining', null, '', false, 15_001],
    // Silence wins over the flag.
    [20_000, true, 'draining', 'node.mark-unreachable', 'no heartbeat for 20s', false, 55_001],
    [20_000, false, 'unreachable', null, '', false, 55_001],
  ] as const)('silent %i ms, drained %s, %s → %s (%s)', (silent, drained, state, kind, reason, reschedule, next) => {
    const plan = planNode(node(silent, state, drained), cfg, NOW);
    expect(plan.requeueAfterMs).toBe(next);
    if (kind === null) return expect(plan.actions).toEqual([]);
    expect(plan.actions).toEqual([{ kind, key: 'n2', node: 'n2', reason, from: state, to: kind.slice('node.mark-'.length), reschedule }]);
  });

  it('is idempotent: the state it marks plans nothing more', () => {
    for (const silent of [0, 10_000, 15_001, 50_000, 75_001, 200_000]) {
      for (const drained of [false, true]) {
        for (const state of ['ready', 'unreachable', 'down', 'draining'] as const) {
          const [a] = planNode(node(silent, state, drained), cfg, NOW).actions;
          if (a?.kind === 'slot.reschedule' || !a) continue;
          expect(planNode(node(silent, a.to, drained), cfg, NOW).actions).toEqual([]);
        }
      }
    }
  });
});

describe('reschedulesOn', () => {
  it.each([
    ['ready', 'unreachable', false],
    ['draining', 'unreachable', false],
    ['unreachable', 'ready', true],
    ['unreachable', 'draining', true],
    ['unreachable', 'down', true],
    ['down', 'ready', true],
    ['ready', 'draining', true],
    ['draining', 'ready', true],
  ] as const)('%s → %s: %s', (from, to, want) => {
    expect(reschedulesOn(from, to)).toBe(want);
  });
});

describe('planReschedules', () => {
  const states: Record<string, NodeState> = { n1: 'ready', n2: 'down', n3: 'draining' };
  it.each([
    [{ key: 'web/3', from: 'n1', to: 'n3', reason: 'rebalance' as const }, 'rebalance', true],
    [{ key: 'web/3', from: 'n1', to: 'n3', reason: 'rollout' as const }, 'rollout', true],
    [{ key: 'web/3', from: 'n1', to: 'n3' }, 'web/3 from n1 (ready) to n3', false],
    [{ key: 'web/0', from: 'n2', to: 'n1' }, 'web/0 from n2 (down) to n1', false],
    [{ key: 'web/1', from: 'n3', to: 'n1' }, 'web/1 from n3 (draining) to n1', true],
    [{ key: 'web/2', from: 'n3', to: null }, 'web/2 from n3 (draining) to nowhere', false],
    [{ key: 'db/0', from: 'gone', to: 'n1' }, 'db/0 from gone (gone) to n1', false],
  ] as const)('%j → %s (lingers: %s)', (m, reason, linger) => {
    const asked = 'reason' in m ? { message: `${m.key} from ${m.from} (${states[m.from] ?? 'gone'}) to ${m.to ?? 'nowhere'}` } : {};
    expect(planReschedules([m], (n) => states[n])).toEqual([
      { kind: 'slot.reschedule', key: m.key, reason, ...asked, service: m.key.split('/')[0], from: m.from, to: m.to, linger },
    ]);
  });
});
