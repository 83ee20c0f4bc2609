import type { SlotAssignment } from '../controllers/container/types.js';
import type { ServiceRecord } from '../store/types.js';
import { instanceHash } from '../controllers/container/instance-hash.js';

export interface SchedulableNode {
  name: string;
  labels: Record<string, string>;
  /** Only schedulable nodes receive new slots. */
  schedulable: boolean;
}

/**
 * Assigns every replica slot of every live service to a node. Pure and deterministic:
 * the same inputs give the same placement. A slot keeps its node while that node stays
 * schedulable and still fits the placement; otherwise it goes to the eligible node with
 * the fewest slots (ties by name).
 */
export function schedule(
  services: ServiceRecord[],
  nodes: SchedulableNode[],
  previous: ReadonlyMap<string, string> = new Map(),
): { assignments: Map<string, SlotAssignment[]>; placement: Map<string, string>; unplaced: string[] } {
  const assignments = new Map<string, SlotAssignment[]>();
  const placement = new Map<string, string>();
  const unplaced: string[] = [];
  const load = new Map<string, number>(nodes.map((n) => [n.name, 0]));
  for (const n of nodes) assignments.set(n.name, []);

  const sorted = [...services].filter((s) => !s.deletedAt).sort((a, b) => a.name.localeCompare(b.name));
  for (const svc of sorted) {
    const hash = instanceHash(svc.spec);
    const eligible = nodes.filter((n) => n.schedulable && fits(svc, n));
    for (let slot = 0; slot < svc.spec.replicas; slot++) {
      const key = `${svc.name}/${slot}`;
      const prev = previous.get(key);
      let node = prev !== undefined ? eligible.find((n) => n.name === prev) : undefined;
      if (!node) {
        node = [...eligible].sort(
          (a, b) => (load.get(a.name) ?? 0) - (load.get(b.name) ?? 0) || a.name.localeCompare(b.name),
        )[0];
      }
      if (!node) {
        unplaced.push(key);
        continue;
      }
      load.set(node.name, (load.get(node.name) ?? 0) + 1);
      placement.set(key, node.name);
      assignments.get(node.name)?.push({
        service: svc.name,
        slot,
        revision: svc.revision,
        specHash: hash,
        spec: svc.spec,
      });
    }
  }
  return { assignments, placement, unplaced };
}

function fits(svc: ServiceRecord, node: SchedulableNode): boolean {
  const p = svc.spec.placement;
  if (!p) return true;
  if (p.node !== undefined && p.node !== node.name) return false;
  for (const [k, v] of Object.entries(p.labels ?? {})) if (node.labels[k] !== v) return false;
  return true;
}
