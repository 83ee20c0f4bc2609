import { describe, expect, it } from 'vitest';
import { LABEL } from '../runtime/labels.js';
import { aContainer } from '../test/builders.js';
import { planResync } from './orphans.js';

const broken = (id: string, labels: Record<string, string>) => ({ ...aContainer(), id, labels: { [LABEL.cluster]: 'test', ...labels } });

describe('planResync', () => {
  it.each<[string, ReturnType<typeof aContainer>[], string[], string[]]>([
    ['an instance of this node: its service is looked at, nothing removed', [aContainer({ service: 'web' })], ['web'], []],
    ['an instance of another node: neither', [aContainer({ service: 'api', node: 'n2' })], [], []],
    ['cluster label only: an orphan of this node', [broken('x', {})], [], ['x']],
    ['malformed instance labels with this node: an orphan', [broken('y', { [LABEL.node]: 'n1', [LABEL.service]: 'web', [LABEL.slot]: 'zero' })], [], ['y']],
    ['malformed instance labels of another node: left to that node', [broken('z', { [LABEL.node]: 'n2' })], [], []],
  ])('%s', (_name, containers, services, removed) => {
    const plan = planResync(containers, 'n1');
    expect([...plan.services]).toEqual(services);
    expect(plan.orphans.map((a) => a.containerId)).toEqual(removed);
  });

  it('orphans are forced removals with their reason and service, if labelled', () => {
    const { orphans } = planResync([broken('y', { [LABEL.service]: 'web' })], 'n1');
    expect(orphans).toEqual([{ kind: 'container.remove', key: 'remove:y', reason: 'orphan-without-instance-labels', service: 'web', instance: null, containerId: 'y', force: true }]);
  });
});
