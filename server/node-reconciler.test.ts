import { describe, expect, it } from 'vitest';
import { ManualClock, flushMicrotasks } from '../core/clock.js';
import { silentLogger } from '../core/log.js';
import { memoryStore } from '../store/index.js';
import { Controller } from '../controllers/controller.js';
import { NodeExecutor } from '../controllers/node/executor.js';
import { NodeRegistry } from './node-registry.js';
import { NodeReconciler, nextNodeCheckInMs, nodeStateAt } from './node-reconciler.js';

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

describe('node reconciler (Controller + registry + executor)', () => {
  async function setup() {
    const clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z'));
    const log = silentLogger();
    const store = memoryStore();
    await store.open();
    const records: Array<{ action: string; node: string | null; at: number }> = [];
    const published: string[] = [];
    const routed: string[] = [];
    let nodes: Controller | null = null;
    const reg = new NodeRegistry({
      store,
      clock,
      log,
      onNodeChanged: (n) => nodes?.trigger(n),
      settle: async (n) => {
        nodes?.trigger(n);
        await nodes?.idle();
      },
    });
    await reg.load();
    const executor = new NodeExecutor({
      clock,
      log,
      setState: (n, to) => reg.setState(n, to),
      linger: () => undefined,
      record: (e) => records.push({ action: e.action, node: e.node, at: Date.parse(e.time) - t0 }),
      onNodeStateChanged: (n, _from, to) => routed.push(`${n}:${to}`),
      onSchedulingChanged: (n) => published.push(n),
    });
    const t0 = clock.now();
    nodes = new Controller({
      reconciler: new NodeReconciler({ clock, timing: { heartbeatTimeoutMs: 1000, nodeDownGraceMs: 1500 }, observe: (n) => reg.observe(n), names: () => reg.names(), executor }),
      clock,
      log,
      resyncMs: 30_000,
      retry: { initialMs: 100, maxMs: 1000 },
    });
    const ac = new AbortController();
    nodes.start(ac.signal);
    return { clock, reg, records, published, routed, flush: () => flushMicrotasks(20), stop: () => ac.abort() };
  }

  it('a silent node is unreachable just after heartbeat_timeout and down node_down_grace later; heard again, it is ready', async () => {
    const { clock, reg, records, published, routed, flush, stop } = await setup();
    await reg.hello({ name: 'n2', advertise: '127.0.0.1', labels: {}, capacity: {} });
    await flush();
    expect(reg.get('n2')?.state()).toBe('ready');
    await clock.advanceAsync(1000, 100);
    expect(reg.get('n2')?.state()).toBe('ready');
    await clock.advanceAsync(1, 1);
    expect(reg.get('n2')?.state()).toBe('unreachable');
    await clock.advanceAsync(1499, 100);
    expect(reg.get('n2')?.state()).toBe('unreachable');
    await clock.advanceAsync(1, 1);
    expect(reg.get('n2')?.state()).toBe('down');
    reg.heard('n2');
    await flush();
    expect(reg.get('n2')?.state()).toBe('ready');
    expect(records).toEqual([
      { action: 'node.ready', node: 'n2', at: 0 },
      { action: 'node.unreachable', node: 'n2', at: 1001 },
      { action: 'node.down', node: 'n2', at: 2501 },
      { action: 'node.ready', node: 'n2', at: 2501 },
    ]);
    // Routes follow every change; scheduling follows all but "unreachable".
    expect(routed).toEqual(['n2:ready', 'n2:unreachable', 'n2:down', 'n2:ready']);
    expect(published).toEqual(['n2', 'n2', 'n2']);
    stop();
  });

  it('heartbeats keep a node ready; drain and uncordon answer with the new state', async () => {
    const { clock, reg, records, flush, stop } = await setup();
    await reg.hello({ name: 'n2', advertise: '127.0.0.1', labels: {}, capacity: {} });
    for (let i = 0; i < 10; i++) {
      await clock.advanceAsync(500, 100);
      reg.heard('n2');
    }
    await flush();
    expect(reg.get('n2')?.state()).toBe('ready');
    expect((await reg.setDrained('n2', true))?.state()).toBe('draining');
    expect((await reg.setDrained('n2', false))?.state()).toBe('ready');
    expect(records.map((r) => r.action)).toEqual(['node.ready', 'node.draining', 'node.ready']);
    stop();
  });
});
