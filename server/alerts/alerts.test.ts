import { describe, expect, it } from 'vitest';
import { ManualClock, flushMicrotasks } from '../../core/clock.js';
import { createLogger } from '../../core/log.js';
import { OrcaError } from '../../core/errors.js';
import { instanceHash } from '../../controllers/container/instance-hash.js';
import type { InstanceReport } from '../../protocol/reports.js';
import { memoryStore } from '../../store/index.js';
import type { EventRecord, ServiceRecord, Store } from '../../store/types.js';
import { aSpec } from '../../test/builders.js';
import type { NodeState } from '../nodes.js';
import { ALERT_KINDS } from './config.js';
import { ALERT_STATE_KEY, AlertService } from './alerts.js';
import type { NodeView } from './facts.js';

const spec = aSpec({ name: 'web', replicas: 1 });
const web: ServiceRecord = { name: 'web', revision: 1, spec, specHash: 'h1', createdAt: 't', updatedAt: 't' };
const report = (over: Partial<InstanceReport>): InstanceReport => ({
  id: 'web-1-0-aaaa',
  service: 'web',
  slot: 0,
  revision: 1,
  specHash: instanceHash(spec),
  node: 'n1',
  state: 'running',
  ready: true,
  restarts: 0,
  lastExit: null,
  containerId: 'c0',
  address: '127.0.0.1:40000',
  nextRetryAt: null,
  startedAt: '2026-01-01T00:00:00.000Z',
  current: true,
  rolloutFailed: null,
  ...over,
});
const crashloop = report({ id: 'web-1-0-bbbb', state: 'crashloop', ready: false, containerId: null, address: null, restarts: 3, lastExit: { code: 1, reason: 'Error', at: '2026-01-01T00:00:00.000Z' } });

class FakeNode implements NodeView {
  reports: InstanceReport[] = [];
  nodeState: NodeState = 'ready';
  constructor(readonly name: string) {}
  state(): NodeState {
    return this.nodeState;
  }
  lastHeartbeat(): string {
    return '2026-01-01T00:00:00.000Z';
  }
  lastReports(): InstanceReport[] {
    return this.reports;
  }
}

async function openedStore(): Promise<Store> {
  const s = memoryStore();
  await s.open();
  return s;
}

async function setup(o: { store?: Store; leading?: () => boolean } = {}) {
  const clock = new ManualClock();
  const store = o.store ?? (await openedStore());
  const sent: Array<{ kind: string; service: string | null; node: string | null }> = [];
  const events: EventRecord[] = [];
  const n1 = new FakeNode('n1');
  const n2 = new FakeNode('n2');
  const alerts = new AlertService({
    clock,
    log: createLogger({ level: 'silent' }),
    store,
    webhooks: [{ name: 'alert[0]', url: 'http://127.0.0.1:9/', kinds: [...ALERT_KINDS], headers: {} }],
    leading: o.leading ?? (() => true),
    services: () => [web],
    nodes: () => [n1, n2],
    certs: async () => [],
    record: (e) => events.push(e),
    settleMs: 15_000,
    post: async (_url, body) => {
      const a = JSON.parse(body) as { kind: string; service: string | null; node: string | null };
      sent.push({ kind: a.kind, service: a.service, node: a.node });
      return { ok: true, status: 200 };
    },
  });
  const ac = new AbortController();
  alerts.start(ac.signal);
  const settle = async (ms = 20_000) => clock.advanceAsync(ms, 250);
  return { clock, store, sent, events, n1, n2, alerts, ac, settle };
}

describe('AlertService', () => {
  it('a crash-looping service alerts once through many crashes, and its problem is kept in the store', async () => {
    const t = await setup();
    await t.settle();
    t.n1.reports = [crashloop];
    t.alerts.poke();
    await t.settle(1_000);
    expect(t.sent).toEqual([{ kind: 'crashloop', service: 'web', node: 'n1' }]);
    for (let i = 0; i < 20; i++) {
      t.n1.reports = [i % 2 ? crashloop : report({ id: `web-1-0-x${i}`, ready: false })];
      t.alerts.poke();
      await t.settle(1_000);
    }
    expect(t.sent).toHaveLength(1);
    expect(Object.keys((await t.store.getKv<object>(ALERT_STATE_KEY)) ?? {})).toEqual(['crashloop/web']);
    // Healthy for reset_after_secs (60 s), then crash-looping again: a second alert.
    t.n1.reports = [report({ restarts: 3 })];
    await t.settle(55_000);
    t.n1.reports = [crashloop];
    await t.settle(6_000);
    expect(t.sent).toHaveLength(1);
    t.n1.reports = [report({ restarts: 4 })];
    await t.settle(70_000);
    t.n1.reports = [{ ...crashloop, restarts: 5 }];
    t.n1.reports = [crashloop];
    await t.settle(6_000);
    expect(t.sent).toEqual([
      { kind: 'crashloop', service: 'web', node: 'n1' },
      { kind: 'crashloop', service: 'web', node: 'n1' },
    ]);
    t.ac.abort();
  });

  it('a restarted server (or a new leader) on the same store does not alert again what was alerted', async () => {
    const first = await setup();
    first.n1.reports = [crashloop];
    first.n2.nodeState = 'unreachable';
    await first.settle();
    expect(first.sent.map((s) => s.kind).sort()).toEqual(['crashloop', 'node-unreachable']);
    first.ac.abort();

    const second = await setup({ store: first.store });
    // The agents have not reported yet: web looks pending, n2 ready with a fresh deadline.
    await second.settle(5_000);
    second.n1.reports = [crashloop];
    second.n2.nodeState = 'unreachable';
    await second.settle(30_000);
    expect(second.sent).toEqual([]);
    // n2 goes down: that is new.
    second.n2.nodeState = 'down';
    await second.settle(6_000);
    expect(second.sent).toEqual([{ kind: 'node-down', service: null, node: 'n2' }]);
    second.ac.abort();
  });

  it('only the leader alerts; a server whose write is fenced (it lost the lead) sends nothing', async () => {
    let leading = false;
    const t = await setup({ leading: () => leading });
    t.n1.reports = [crashloop];
    await t.settle();
    t.alerts.onEvent(oomEvent());
    await t.settle(1_000);
    expect(t.sent).toEqual([]);

    const fenced = await openedStore();
    fenced.putKv = async () => {
      throw new OrcaError('ORCA_NOT_LEADER', 'this server no longer leads', { transient: true });
    };
    const f = await setup({ store: fenced });
    f.n1.reports = [crashloop];
    await f.settle();
    expect(f.sent).toEqual([]);

    leading = true;
    await t.settle();
    expect(t.sent).toEqual([{ kind: 'crashloop', service: 'web', node: 'n1' }]);
    t.ac.abort();
    f.ac.abort();
  });

  it('OOM kills from the reconciliation log: one alert, the next within the minute held back', async () => {
    const t = await setup();
    t.alerts.onEvent(oomEvent());
    t.alerts.onEvent(oomEvent());
    await t.settle(1_000);
    expect(t.sent).toEqual([{ kind: 'oom', service: 'web', node: 'n1' }]);
    await t.settle(60_000);
    t.alerts.onEvent(oomEvent());
    await flushMicrotasks();
    await t.settle(1_000);
    expect(t.sent.filter((s) => s.kind === 'oom')).toHaveLength(2);
    t.ac.abort();
  });
});

function oomEvent(): EventRecord {
  return { time: '2026-01-01T00:00:00.000Z', reconciler: 'container', service: 'web', instance: 'web-1-0-aaaa', node: 'n1', action: 'slot.update', reason: 'oom-killed; restart now', outcome: 'ok', durationMs: 0 };
}
