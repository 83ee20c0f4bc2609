import type { Clock } from '../core/clock.js';
import type { Agent } from '../agent/agent.js';
import type { Runtime } from '../runtime/types.js';
import type { NodeLink, NodeState } from './nodes.js';

/** The embedded agent seen through the same NodeLink a remote agent's session provides. */
export class LocalNode implements NodeLink {
  constructor(
    private readonly agent: Agent,
    private readonly runtime: Runtime,
    private readonly clock: Clock,
    private readonly advertise: string,
    private readonly nodeLabels: Record<string, string> = {},
  ) {}

  get name(): string {
    return this.agent.node;
  }
  labels() {
    return this.nodeLabels;
  }
  state(): NodeState {
    return 'ready';
  }
  address() {
    return this.advertise;
  }
  lastHeartbeat() {
    return new Date(this.clock.now()).toISOString();
  }
  setAssignments(list: Parameters<Agent['setAssignments']>[0]) {
    return this.agent.setAssignments(list);
  }
  observe() {
    return this.agent.observe();
  }
  containers(service: string) {
    return this.agent.containers(service);
  }
  logs(containerId: string, opts: { tail?: number; follow?: boolean; signal?: AbortSignal }) {
    return this.runtime.logs(containerId, opts);
  }
}
