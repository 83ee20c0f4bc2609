import type { SlotAssignment } from '../container/types.js';

/** What the lingering planner needs of an instance report. */
export interface ReadinessReport {
  node: string;
  service: string;
  slot: number;
  ready: boolean;
  /** Of the slot's current assignment (not an older revision). */
  current: boolean;
}

export interface LingeringInput {
  /** Slots kept on the draining node they leave: `service/slot` → that node (slot.reschedule's effect). */
  lingering: ReadonlyMap<string, string>;
  /** `service/slot` → the node it is placed on now (the scheduler's placement). */
  placement: ReadonlyMap<string, string>;
  /** Per node, its assignment set from the scheduler. */
  assignments: ReadonlyMap<string, readonly SlotAssignment[]>;
  /** Whether a service is live (stored and not deleted). */
  live: (service: string) => boolean;
  /** What the nodes last reported. */
  reports: readonly ReadinessReport[];
  /**
   * What a lingering slot keeps running on the node it leaves: the assignment that node had
   * before the move (a rollout's move leaves the old revision serving there, not a second new
   * instance). Absent for a slot: its current assignment.
   */
  held?: ReadonlyMap<string, SlotAssignment>;
}

export interface LingeringPlan {
  /** The slots that keep lingering. */
  lingering: Map<string, string>;
  /** Per node (every node of `assignments`), what to send it: its assignments plus the slots lingering there. */
  sets: Map<string, SlotAssignment[]>;
}

/**
 * Start-first moves (drain, a rollout's or rebalance's spread): a slot moved off a draining or
 * ready node stays assigned there too (`held`, else as now) until its new instance is ready and
 * current where it was placed. It is released then, or at once when it is
 * placed nowhere, placed back on the node it was leaving, or its service is gone. Pure.
 */
export function planLingering(i: LingeringInput): LingeringPlan {
  const lingering = new Map<string, string>();
  for (const [key, from] of i.lingering) {
    const to = i.placement.get(key);
    const [service = '', slot] = key.split('/');
    const readyThere =
      to !== undefined && i.reports.some((r) => r.node === to && r.service === service && String(r.slot) === slot && r.ready && r.current);
    if (to === undefined || !i.live(service) || readyThere || to === from) continue;
    lingering.set(key, from);
  }
  const sets = new Map<string, SlotAssignment[]>();
  for (const [node, list] of i.assignments) sets.set(node, [...list]);
  const all = [...i.assignments.values()].flat();
  for (const [key, from] of lingering) {
    const a = all.find((x) => `${x.service}/${x.slot}` === key);
    if (a) sets.get(from)?.push(i.held?.get(key) ?? a);
  }
  return { lingering, sets };
}
