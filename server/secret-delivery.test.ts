import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { ManualClock, flushMicrotasks } from '../core/clock.js';
import { silentLogger } from '../core/log.js';
import { memoryStore } from '../store/index.js';
import { memoryChannelPair } from '../protocol/channel.js';
import { PROTOCOL_VERSION } from '../protocol/messages.js';
import type { ServiceRecord } from '../store/types.js';
import { aSpec } from '../test/builders.js';
import { instanceHash } from '../controllers/container/instance-hash.js';
import { SecretStore } from './secrets.js';
import { secretResolver } from './secret-delivery.js';
import { RemoteNode } from './remote-node.js';
import { schedule } from './scheduler.js';

const AT = '2026-01-01T00:00:00.000Z';
const VALUE = Buffer.from('RECOGNISABLE-db-pw\n\u0000\u00ff');

async function secretStore() {
  const store = memoryStore();
  await store.open();
  return SecretStore.open(store, randomBytes(32), '/data/cluster.key');
}

function record(name: string, over: Parameters<typeof aSpec>[0], secretVersions?: Record<string, number>): ServiceRecord {
  const spec = aSpec({ name, ...over });
  return { name, revision: 1, spec, specHash: instanceHash(spec, secretVersions), ...(secretVersions ? { secretVersions } : {}), createdAt: AT, updatedAt: AT };
}

function nodeWithChannel(name: string, resolve: ReturnType<typeof secretResolver>) {
  const node = new RemoteNode({ name, advertise: '127.0.0.1', labels: { name }, capacity: {}, drained: false, protocol: PROTOCOL_VERSION }, new ManualClock(), silentLogger(), resolve);
  const [serverEnd, agentEnd] = memoryChannelPair();
  const raw: string[] = [];
  agentEnd.onMessage((t) => raw.push(t));
  node.attach(serverEnd, [], []);
  return { node, raw };
}

describe('secret delivery (SPEC §3.9)', () => {
  it('the scheduler gives each slot the versions of its secrets; the resolver reads exactly those', async () => {
    const secrets = await secretStore();
    await secrets.set('db-password', VALUE, AT);
    await secrets.set('unused', Buffer.from('nope'), AT);
    const { assignments } = schedule([record('web', { secrets: ['db-password'] }, { 'db-password': 1 }), record('plain', {})], [{ name: 'n1', labels: {}, schedulable: true }]);
    const slots = assignments.get('n1') ?? [];
    expect(slots.find((a) => a.service === 'web')?.secretVersions).toEqual({ 'db-password': 1 });
    expect(slots.find((a) => a.service === 'plain')?.secretVersions).toBeUndefined();
    const values = await secretResolver(secrets, silentLogger())(slots);
    expect(values.map((v) => [v.name, v.version, Buffer.from(v.value, 'base64')])).toEqual([['db-password', 1, VALUE]]);
  });

  it('leaves out a version the store has moved past, and a removed secret', async () => {
    const secrets = await secretStore();
    await secrets.set('a', Buffer.from('one'), AT);
    await secrets.set('a', Buffer.from('two'), AT);
    await secrets.set('b', Buffer.from('bee'), AT);
    await secrets.remove('b', AT);
    const slot = { service: 'web', slot: 0, revision: 1, specHash: 'h', spec: aSpec(), secretVersions: { a: 1, b: 1 } };
    expect(await secretResolver(secrets, silentLogger())([slot])).toEqual([]);
    expect((await secretResolver(secrets, silentLogger())([{ ...slot, secretVersions: { a: 2 } }])).map((v) => Buffer.from(v.value, 'base64').toString())).toEqual(['two']);
  });

  it('only the node whose slots use a secret is sent its value', async () => {
    const secrets = await secretStore();
    await secrets.set('db-password', VALUE, AT);
    const resolve = secretResolver(secrets, silentLogger());
    const services = [record('web', { secrets: ['db-password'], placement: { labels: { name: 'n1' } } }, { 'db-password': 1 }), record('plain', { placement: { labels: { name: 'n2' } } })];
    const n1 = nodeWithChannel('n1', resolve);
    const n2 = nodeWithChannel('n2', resolve);
    const { assignments } = schedule(services, [n1.node, n2.node].map((n) => ({ name: n.name, labels: n.labels(), schedulable: true })));
    await n1.node.setAssignments(assignments.get('n1') ?? []);
    await n2.node.setAssignments(assignments.get('n2') ?? []);
    await flushMicrotasks(5);
    const b64 = VALUE.toString('base64');
    expect(n1.raw.join('\n')).toContain(b64);
    expect(n2.raw.length).toBeGreaterThan(0);
    expect(n2.raw.join('\n')).not.toContain(b64);
    expect(n2.raw.join('\n')).not.toContain('RECOGNISABLE');
  });
});
