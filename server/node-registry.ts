import type { Clock, TimerHandle } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { EventRecord, Store } from '../store/types.js';
import type { NodeState } from './nodes.js';
import { RemoteNode, type NodeInfo } from './remote-node.js';
import { nextNodeCheckInMs, nodeStateAt, type NodeTimingConfig } from './node-reconciler.js';

export interface NodeRegistryDeps {
  store: Store;
  clock: Clock;
  log: Logger;
  timing: NodeTimingConfig;
  record: (e: EventRecord) => void;
  /** A node changed state (routes follow at once; `down` and `ready` change scheduling). */
  onStateChange: (node: RemoteNode, from: NodeState, to: NodeState) => void;
}

const KEY = (name: string) => `node/${name}`;

/**
 * Every node the cluster knows, with the node reconciler driving their states from
 * heartbeats (see node-reconciler.ts). Node facts (address, labels, capacity, drained) are
 * kept in the store, so after a server restart known nodes get a heartbeat deadline to come
 * back before anything of theirs moves.
 */
export class NodeRegistry {
  private readonly nodes = new Map<string, RemoteNode>();
  private timer: TimerHandle | null = null;
  private stopped = false;

  constructor(private readonly deps: NodeRegistryDeps) {}

  async load(): Promise<void> {
    for (const { value } of await this.deps.store.listKv<NodeInfo>('node/')) {
      const n = new RemoteNode(value, this.deps.clock, this.deps.log);
      n.nodeState = value.drained ? 'draining' : 'ready';
      this.nodes.set(value.name, n);
    }
    this.schedule();
  }

  list(): RemoteNode[] {
    return [...this.nodes.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  get(name: string): RemoteNode | undefined {
    return this.nodes.get(name);
  }

  /** A node said hello: known or new, its facts are recorded and it is heard from now. */
  async hello(info: Omit<NodeInfo, 'drained'>): Promise<RemoteNode> {
    let n = this.nodes.get(info.name);
    if (!n) {
      n = new RemoteNode({ ...info, drained: false }, this.deps.clock, this.deps.log);
      this.nodes.set(info.name, n);
    } else n.info = { ...info, drained: n.info.drained };
    await this.deps.store.putKv(KEY(info.name), n.info);
    this.heard(info.name);
    return n;
  }

  /** Any message from a node is a sign of life. */
  heard(name: string): void {
    const n = this.nodes.get(name);
    if (!n) return;
    n.lastHeartbeatMs = this.deps.clock.now();
    this.evaluate(n, 'heartbeat');
  }

  async setDrained(name: string, drained: boolean): Promise<RemoteNode | undefined> {
    const n = this.nodes.get(name);
    if (!n) return undefined;
    n.info = { ...n.info, drained };
    await this.deps.store.putKv(KEY(name), n.info);
    this.evaluate(n, drained ? 'drained-by-operator' : 'uncordoned-by-operator');
    return n;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) this.deps.clock.clearTimeout(this.timer);
  }

  private evaluate(n: RemoteNode, reason: string): void {
    const now = this.deps.clock.now();
    const next = nodeStateAt({ lastHeartbeatMs: n.lastHeartbeatMs, drained: n.info.drained }, now, this.deps.timing);
    const from = n.nodeState;
    if (next === from) return;
    n.nodeState = next;
    const why = next === 'unreachable' || next === 'down' ? `no heartbeat for ${Math.round((now - n.lastHeartbeatMs) / 100) / 10}s` : reason;
    this.deps.log.info({ reconciler: 'node', node: n.name, from, to: next, reason: why }, 'node state changed');
    this.deps.record({
      time: new Date(now).toISOString(),
      reconciler: 'node',
      service: null,
      instance: null,
      node: n.name,
      action: `node.${next}`,
      reason: why,
      outcome: 'ok',
      durationMs: 0,
    });
    this.deps.onStateChange(n, from, next);
    this.schedule();
  }

  /** Wakes when the next node would change state with no news. */
  private schedule(): void {
    if (this.stopped) return;
    if (this.timer) this.deps.clock.clearTimeout(this.timer);
    const now = this.deps.clock.now();
    let soonest: number | null = null;
    for (const n of this.nodes.values()) {
      const ms = nextNodeCheckInMs(n, now, this.deps.timing);
      if (ms !== null) soonest = soonest === null ? ms : Math.min(soonest, ms);
    }
    if (soonest === null) return;
    this.timer = this.deps.clock.setTimeout(() => {
      this.timer = null;
      for (const n of this.nodes.values()) this.evaluate(n, 'deadline');
      this.schedule();
    }, soonest);
  }
}
