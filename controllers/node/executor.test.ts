import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../core/clock.js';
import { silentLogger } from '../../core/log.js';
import type { EventRecord } from '../../store/types.js';
import type { NodeState } from './actions.js';
import { NodeExecutor } from './executor.js';
import { planNode, planReschedules } from './planner.js';

function setup() {
  const clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z'));
  const states = new Map<string, NodeState>();
  const lingering = new Map<string, string>();
  const records: EventRecord[] = [];
  const changed: string[] = [];
  const scheduled: string[] = [];
  const ex = new NodeExecutor({
    clock,
    log: silentLogger(),
    setState: (n, to) => states.set(n, to),
    linger: (k, from) => lingering.set(k, from),
    record: (e) => records.push(e),
    onNodeStateChanged: (n, from, to) => changed.push(`${n}:${from}→${to}`),
    onSchedulingChanged: (n) => scheduled.push(n),
  });
  return { clock, ex, states, lingering, records, changed, scheduled };
}

const timing = { heartbeatTimeoutMs: 1000, nodeDownGraceMs: 1500 };

describe('NodeExecutor', () => {
  it('applies a mark: the state is set, recorded as node.<state> in the shape the log always had, and told as events', () => {
    const { clock, ex, states, records, changed, scheduled } = setup();
    const now = clock.now();
    ex.execute(planNode({ name: 'n2', lastHeartbeatMs: now - 2_600, drained: false, state: 'unreachable' }, timing, now).actions);
    expect(states.get('n2')).toBe('down');
    expect(records).toEqual([
      { time: new Date(now).toISOString(), reconciler: 'node', service: null, instance: null, node: 'n2', action: 'node.down', reason: 'no heartbeat for 2.6s', outcome: 'ok', durationMs: 0 },
    ]);
    expect(changed).toEqual(['n2:unreachable→down']);
    expect(scheduled).toEqual(['n2']);
  });

  it('an unreachable node is told to the routes but asks no scheduling pass', () => {
    const { clock, ex, states, changed, scheduled } = setup();
    const now = clock.now();
    ex.execute(planNode({ name: 'n2', lastHeartbeatMs: now - 1_001, drained: false, state: 'ready' }, timing, now).actions);
    expect(states.get('n2')).toBe('unreachable');
    expect(changed).toEqual(['n2:ready→unreachable']);
    expect(scheduled).toEqual([]);
  });

  it('records moved slots on the node they go to (unplaced when none), and keeps a slot leaving a draining node there', () => {
    const { ex, lingering, records } = setup();
    const stateOf = (n: string): NodeState | undefined => ({ n1: 'ready', n2: 'draining', n3: 'down' } as Record<string, NodeState>)[n];
    ex.execute(
      planReschedules(
        [
          { key: 'web/0', from: 'n2', to: 'n1' },
          { key: 'web/1', from: 'n3', to: 'n1' },
          { key: 'db/0', from: 'n2', to: null },
        ],
        stateOf,
      ),
    );
    expect(records.map((r) => [r.action, r.service, r.node, r.reason, r.outcome])).toEqual([
      ['slot.reschedule', 'web', 'n1', 'web/0 from n2 (draining) to n1', 'ok'],
      ['slot.reschedule', 'web', 'n1', 'web/1 from n3 (down) to n1', 'ok'],
      ['slot.reschedule', 'db', null, 'db/0 from n2 (draining) to nowhere', 'unplaced'],
    ]);
    expect([...lingering]).toEqual([['web/0', 'n2']]);
  });
});
