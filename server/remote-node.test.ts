import { describe, expect, it } from 'vitest';
import { ManualClock, flushMicrotasks } from '../core/clock.js';
import { silentLogger } from '../core/log.js';
import { memoryChannelPair } from '../protocol/channel.js';
import { decodeServerMessage, type ServerMessage } from '../protocol/messages.js';
import { aSpec, slotsOf } from '../test/builders.js';
import { RemoteNode } from './remote-node.js';

function setup() {
  const node = new RemoteNode({ name: 'n1', advertise: '127.0.0.1', labels: {}, capacity: {}, drained: false }, new ManualClock(), silentLogger());
  const [serverEnd, agentEnd] = memoryChannelPair();
  const got: ServerMessage[] = [];
  agentEnd.onMessage((t) => {
    const d = decodeServerMessage(t);
    if (d.ok) got.push(d.msg);
  });
  return { node, serverEnd, got };
}

describe('RemoteNode assignments', () => {
  it('never sends a full set before the control plane has published one (an agent would remove all it runs)', async () => {
    const { node, serverEnd, got } = setup();
    node.attach(serverEnd, [], []);
    await flushMicrotasks(5);
    expect(got).toEqual([]);
    const web = slotsOf(aSpec({ replicas: 2 }));
    await node.setAssignments(web);
    await flushMicrotasks(5);
    expect(got).toEqual([{ type: 'assignments', full: true, slots: JSON.parse(JSON.stringify(web)) }]);
  });

  it('sends the full set on a new session, then per-service deltas, and nothing when nothing changed', async () => {
    const { node, serverEnd, got } = setup();
    const web = slotsOf(aSpec({ replicas: 2 }));
    const api = slotsOf(aSpec({ name: 'api' }));
    await node.setAssignments([...web, ...api]);
    node.attach(serverEnd, [], []);
    await node.setAssignments([...web, ...api]);
    await node.setAssignments(web);
    await flushMicrotasks(5);
    expect(got.map((m) => (m.type === 'assignments' ? (m.full ? `full:${m.slots?.length}` : `delta:${Object.keys(m.services ?? {}).join(',')}:${m.services?.api?.length}`) : m.type))).toEqual([
      'full:3',
      'delta:api:0',
    ]);
  });
});
