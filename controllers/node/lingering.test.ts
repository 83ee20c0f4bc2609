import { describe, expect, it } from 'vitest';
import { aSpec, slotsOf } from '../../test/builders.js';
import { planLingering, type ReadinessReport } from './lingering.js';

const web = slotsOf(aSpec({ name: 'web', replicas: 2 }));
const [web0, web1] = [web[0]!, web[1]!];
const ready = (node: string, slot: number, over: Partial<ReadinessReport> = {}): ReadinessReport => ({ node, service: 'web', slot, ready: true, current: true, ...over });

describe('planLingering (start-first drain)', () => {
  // web/0 moved from n2 (draining) to n1; web/1 stays on n1.
  const base = {
    lingering: new Map([['web/0', 'n2']]),
    placement: new Map([
      ['web/0', 'n1'],
      ['web/1', 'n1'],
    ]),
    assignments: new Map([
      ['n1', [web0, web1]],
      ['n2', []],
    ]),
    live: (s: string) => s === 'web',
    reports: [] as ReadinessReport[],
  };

  it.each([
    ['no replacement yet', {}, true],
    ['replacement running but not ready', { reports: [ready('n1', 0, { ready: false })] }, true],
    ['ready, but of an older revision', { reports: [ready('n1', 0, { current: false })] }, true],
    ['ready on another node than its placement', { reports: [ready('n3', 0)] }, true],
    ['another slot ready', { reports: [ready('n1', 1)] }, true],
    ['replacement ready where placed', { reports: [ready('n1', 0)] }, false],
    ['service deleted', { live: () => false }, false],
    ['placed nowhere', { placement: new Map([['web/1', 'n1']]) }, false],
    ['placed back on the node it was leaving', { placement: new Map([['web/0', 'n2']]) }, false],
  ] as const)('%s → lingers: %s', (_name, over, lingers) => {
    const plan = planLingering({ ...base, ...over });
    expect([...plan.lingering]).toEqual(lingers ? [['web/0', 'n2']] : []);
    // What each node is sent: its own assignments, plus the slot while it lingers there.
    expect(plan.sets.get('n1')).toEqual([web0, web1]);
    expect(plan.sets.get('n2')).toEqual(lingers ? [web0] : []);
  });

  it('leaves its inputs alone', () => {
    planLingering({ ...base, reports: [ready('n1', 0)] });
    expect([...base.lingering]).toEqual([['web/0', 'n2']]);
    expect(base.assignments.get('n2')).toEqual([]);
  });
});

describe('planLingering: a rollout’s move keeps the old revision where it was', () => {
  it('sends the node it leaves the held assignment (the old revision), not the new one, until the new one is ready', () => {
    const v2 = slotsOf(aSpec({ name: 'web', replicas: 2, env: { V: '2' } }), 2);
    const input = {
      lingering: new Map([['web/1', 'n1']]),
      placement: new Map([
        ['web/0', 'n1'],
        ['web/1', 'n2'],
      ]),
      assignments: new Map([
        ['n1', [v2[0]!]],
        ['n2', [v2[1]!]],
      ]),
      live: () => true,
      reports: [] as ReadinessReport[],
      held: new Map([['web/1', web1]]),
    };
    const waiting = planLingering(input);
    expect(waiting.sets.get('n1')).toEqual([v2[0], web1]);
    expect(waiting.sets.get('n2')).toEqual([v2[1]]);
    const done = planLingering({ ...input, reports: [ready('n2', 1)] });
    expect([...done.lingering]).toEqual([]);
    expect(done.sets.get('n1')).toEqual([v2[0]]);
  });
});
