import type { InstanceReport } from '../protocol/reports.js';
import type { VolumeRecord } from '../protocol/messages.js';
import type { SlotAssignment } from '../controllers/container/types.js';
import type { ObservedContainer } from '../runtime/types.js';
import type { NodeState } from '../controllers/node/actions.js';

export type { NodeState };

/**
 * The server's handle on one node's agent: the embedded local agent today, a WebSocket
 * session for remote agents. The control plane talks to every node through this alone.
 */
export interface NodeLink {
  readonly name: string;
  labels(): Record<string, string>;
  /** What the node can hold (for declared memory). */
  capacity(): { memoryBytes?: number };
  state(): NodeState;
  address(): string;
  /** ISO-8601 of the last sign of life. */
  lastHeartbeat(): string;
  /** Sends the node its full assignment set. */
  setAssignments(list: SlotAssignment[]): Promise<void>;
  /** Ready instances of the node and where they answer (cheap: called on every change). */
  endpoints(): Array<{ service: string; instance: string; address: string }>;
  /** What the node last reported (no round trip). */
  lastReports(): InstanceReport[];
  /** The node's instances as observed now. */
  observe(): Promise<InstanceReport[]>;
  /** Directories the node allows host mounts under (`--allow-host-path`). */
  allowHostPaths(): string[];
  /** The agent protocol version the node speaks (an agent one release behind speaks the previous one). */
  protocol(): number;
  /** The node's named volumes now, or what it last listed (`stale`) when it cannot be asked. */
  volumes(): Promise<{ volumes: VolumeRecord[]; stale: boolean }>;
  /** Removes a service's volumes on the node. Throws when the node cannot be asked. */
  removeVolumes(service: string): Promise<{ removed: string[]; failed: Array<{ name: string; error: string }> }>;
  /** Containers of a service on that node (for logs). */
  containers(service: string): Promise<ObservedContainer[]>;
  logs(containerId: string, opts: { tail?: number; follow?: boolean; signal?: AbortSignal }): AsyncIterable<string>;
}
