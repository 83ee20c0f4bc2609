import { describe, expect, it } from 'vitest';
import { aContainer } from '../../test/builders.js';
import { clusterNetwork, LABEL } from '../../runtime/labels.js';
import type { ObservedContainer, ObservedNetwork } from '../../runtime/types.js';
import { planNetwork } from './planner.js';

const desired = clusterNetwork('test');
const web0 = aContainer({ service: 'web', slot: 0, instance: 'web-1-0-aaaa' });
const web1 = aContainer({ service: 'web', slot: 1, instance: 'web-1-1-bbbb' });
const db0 = aContainer({ service: 'db', slot: 0, instance: 'db-1-0-cccc' });
const exited = aContainer({ service: 'web', slot: 2, instance: 'web-1-2-dddd', status: 'exited' });
const created = aContainer({ service: 'web', slot: 3, instance: 'web-1-3-eeee', status: 'created' });
const otherNode = aContainer({ service: 'web', slot: 4, instance: 'web-1-4-ffff', node: 'n2' });
const orphan: ObservedContainer = { ...aContainer({ instance: 'stray' }), labels: { [LABEL.cluster]: 'test' } };

const net = (containers: string[], driver = 'bridge'): ObservedNetwork => ({ id: 'nid', name: desired.name, driver, labels: desired.labels, containers, gateway: '198.51.100.1' });
const summary = (observed: ObservedNetwork | undefined, containers: ObservedContainer[]) =>
  planNetwork({ desired, observed, containers, node: 'n1' }).map((a) => (a.kind === 'network.create' ? `create ${a.network} (${a.reason})` : `connect ${a.instance} as ${a.aliases.join(',')} (${a.reason})`));

describe('planNetwork', () => {
  it.each([
    ['all attached: nothing', net([web0.id, web1.id, db0.id]), [web0, web1, db0], []],
    ['no instances, network there: nothing', net([]), [], []],
    ['no instances, no network: the network only', undefined, [], ['create orca-test (missing)']],
    [
      'network gone: made again, then every running instance of this node attached with <service> and <instance-id>',
      undefined,
      [web0, web1, db0],
      ['create orca-test (missing)', 'connect web-1-0-aaaa as web,web-1-0-aaaa (network-missing)', 'connect web-1-1-bbbb as web,web-1-1-bbbb (network-missing)', 'connect db-1-0-cccc as db,db-1-0-cccc (network-missing)'],
    ],
    ['one container disconnected: that one only', net([web0.id, db0.id]), [web0, web1, db0], ['connect web-1-1-bbbb as web,web-1-1-bbbb (not-attached)']],
    ['stopped, not-yet-started, other nodes and orphans are left alone', net([]), [exited, created, otherNode, orphan], []],
    ['a network of that name with another driver: a create that reports it, no attachment', net([], 'macvlan'), [web0], ['create orca-test (not-a-bridge)']],
  ] as const)('%s', (_name, observed, containers, want) => {
    expect(summary(observed, [...containers])).toEqual(want);
  });

  it('keys are stable and carry the container to attach', () => {
    const [create, connect] = planNetwork({ desired, observed: undefined, containers: [web0], node: 'n1' });
    expect(create).toEqual({ kind: 'network.create', key: 'network:orca-test', reason: 'missing', network: 'orca-test', labels: { [LABEL.cluster]: 'test' } });
    expect(connect).toMatchObject({ kind: 'network.connect', key: 'connect:web-1-0-aaaa', service: 'web', instance: 'web-1-0-aaaa', containerId: web0.id, network: 'orca-test' });
  });
});
