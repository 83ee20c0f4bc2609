import type { Store } from '../store/types.js';
import type { SlotAssignment } from '../controllers/container/types.js';

const ASSIGN_KEY = 'assignments';

/**
 * This node's assignment set (its desired state), cached in the agent's own store so the agent
 * keeps healing across restarts while cut off from the server. Until a set is known — from the
 * server or the cache — `known` is false and nothing may be reconciled: an empty start must never
 * remove running workloads.
 */
export class AssignmentCache {
  private byService = new Map<string, SlotAssignment[]>();
  private haveSet = false;

  constructor(private readonly store: Store) {}

  get known(): boolean {
    return this.haveSet;
  }

  /** The cached set from an earlier session, if any (does not apply it). */
  cached(): Promise<SlotAssignment[] | undefined> {
    return this.store.getKv<SlotAssignment[]>(ASSIGN_KEY);
  }

  /** Replaces the whole set and persists it; returns the services whose slots changed. */
  async replace(list: SlotAssignment[]): Promise<Set<string>> {
    const next = new Map<string, SlotAssignment[]>();
    for (const a of list) {
      const l = next.get(a.service) ?? [];
      l.push(a);
      next.set(a.service, l);
    }
    const changed = new Set<string>();
    for (const [svc, slots] of next) {
      if (JSON.stringify(slots) !== JSON.stringify(this.byService.get(svc))) changed.add(svc);
    }
    for (const svc of this.byService.keys()) if (!next.has(svc)) changed.add(svc);
    this.byService = next;
    this.haveSet = true;
    await this.store.putKv(ASSIGN_KEY, list);
    return changed;
  }

  /** A service's assigned slots ([] when none). */
  of(service: string): SlotAssignment[] {
    return this.byService.get(service) ?? [];
  }

  services(): IterableIterator<string> {
    return this.byService.keys();
  }

  all(): SlotAssignment[] {
    return [...this.byService.values()].flat();
  }
}
