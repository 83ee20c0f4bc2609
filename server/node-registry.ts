import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { Store } from '../store/types.js';
import type { NodeObservation } from '../controllers/node/planner.js';
import type { NodeState } from './nodes.js';
import { RemoteNode, type NodeInfo } from './remote-node.js';
import type { SecretResolver } from './secret-delivery.js';

export interface NodeRegistryDeps {
  store: Store;
  clock: Clock;
  log: Logger;
  /**
   * Something the node reconciler looks at changed for this node (a heartbeat, a hello, the
   * drain flag): the host triggers the node reconciler. Must not throw.
   */
  onNodeChanged?: (name: string) => void;
  /** Resolves once the node reconciler has looked at the node (drain / uncordon answer with the new state). */
  settle?: (name: string) => Promise<void>;
  /** Reads the secret values a node's slots use, sent with its assignments (SPEC §3.9). */
  revealSecrets?: SecretResolver;
}

const KEY = (name: string) => `node/${name}`;

/**
 * Every node the cluster knows: its facts (address, labels, capacity, drained — kept in the
 * store, so after a server restart known nodes get a heartbeat deadline to come back before
 * anything of theirs moves), its last sign of life and the state the node reconciler gave it
 * (server/node-reconciler.ts). It decides nothing: every change is told to the host
 * (onNodeChanged), which triggers the node reconciler.
 */
export class NodeRegistry {
  private readonly nodes = new Map<string, RemoteNode>();

  constructor(private readonly deps: NodeRegistryDeps) {}

  async load(): Promise<void> {
    for (const { value } of await this.deps.store.listKv<NodeInfo>('node/')) {
      const n = new RemoteNode(value, this.deps.clock, this.deps.log, this.deps.revealSecrets);
      n.nodeState = value.drained ? 'draining' : 'ready';
      this.nodes.set(value.name, n);
    }
  }

  /**
   * Reads the nodes from the store again, for a server that begins to lead (SPEC §3.11): nodes
   * another leader recorded are added, forgotten ones dropped, and every node gets a fresh
   * heartbeat deadline — a failover never makes a node unreachable. Only called while no agent
   * session is attached (a standby holds none).
   */
  async reload(): Promise<void> {
    const stored = await this.deps.store.listKv<NodeInfo>('node/');
    const names = new Set(stored.map((e) => e.value.name));
    for (const name of [...this.nodes.keys()]) if (!names.has(name)) this.nodes.delete(name);
    for (const { value } of stored) {
      const n = this.nodes.get(value.name) ?? new RemoteNode(value, this.deps.clock, this.deps.log, this.deps.revealSecrets);
      n.info = value;
      n.nodeState = value.drained ? 'draining' : 'ready';
      n.lastHeartbeatMs = this.deps.clock.now();
      this.nodes.set(value.name, n);
    }
  }

  list(): RemoteNode[] {
    return [...this.nodes.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  names(): string[] {
    return [...this.nodes.keys()];
  }

  get(name: string): RemoteNode | undefined {
    return this.nodes.get(name);
  }

  /** What the node planner looks at for a node, or undefined for a node never seen. */
  observe(name: string): NodeObservation | undefined {
    const n = this.nodes.get(name);
    return n && { name, lastHeartbeatMs: n.lastHeartbeatMs, drained: n.info.drained, state: n.nodeState };
  }

  /** The node reconciler's verdict (see NodeExecutor). */
  setState(name: string, to: NodeState): void {
    const n = this.nodes.get(name);
    if (n) n.nodeState = to;
  }

  /** A node said hello: known or new, its facts are recorded and it is heard from now. */
  async hello(info: Omit<NodeInfo, 'drained'>): Promise<RemoteNode> {
    let n = this.nodes.get(info.name);
    if (!n) {
      n = new RemoteNode({ ...info, drained: false }, this.deps.clock, this.deps.log, this.deps.revealSecrets);
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
    this.deps.onNodeChanged?.(name);
  }

  /**
   * Forgets a node (`orca nodes rm`): its record leaves the store and the registry, so the next
   * scheduling pass places its replicas elsewhere. Its session, if any, must be ended first (the
   * hub). False when the node was not known.
   */
  async remove(name: string): Promise<boolean> {
    if (!this.nodes.has(name)) return false;
    await this.deps.store.delKv(KEY(name));
    this.nodes.delete(name);
    this.deps.onNodeChanged?.(name);
    return true;
  }

  /** Drains (or uncordons) a node; resolves once the node reconciler has looked at it. */
  async setDrained(name: string, drained: boolean): Promise<RemoteNode | undefined> {
    const n = this.nodes.get(name);
    if (!n) return undefined;
    n.info = { ...n.info, drained };
    await this.deps.store.putKv(KEY(name), n.info);
    this.deps.onNodeChanged?.(name);
    await this.deps.settle?.(name);
    return n;
  }
}
