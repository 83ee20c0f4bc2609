import type { Store } from '../store/types.js';
import { slotKey, type SlotState } from '../controllers/container/types.js';

/**
 * The agent's slot memory (restart counts, crash-loop backoff, rollout halts): the one thing it
 * keeps besides what Docker shows, persisted in its own store under `slot/<service>/<slot>` so
 * it survives a restart. Indexed by service, so per-service work never walks the whole node.
 */
export class SlotMemory {
  private readonly byService = new Map<string, Map<number, SlotState>>();

  constructor(private readonly store: Store) {}

  /** Reads every remembered slot from the store (once, before reconciling). */
  async load(): Promise<void> {
    for (const { value } of await this.store.listKv<SlotState>('slot/')) this.remember(value);
  }

  /** Remembers a slot's state and persists it. */
  async save(s: SlotState): Promise<void> {
    this.remember(s);
    await this.store.putKv(storeKey(s), s);
  }

  /** Forgets a slot (no longer assigned here, nothing of it left in Docker). */
  async forget(s: SlotState): Promise<void> {
    const bySlot = this.byService.get(s.service);
    bySlot?.delete(s.slot);
    if (bySlot?.size === 0) this.byService.delete(s.service);
    await this.store.delKv(storeKey(s));
  }

  /** A service's slots by slot number (a copy). */
  ofService(service: string): Map<number, SlotState> {
    return new Map(this.byService.get(service) ?? []);
  }

  /** Every slot by `service/slot` (a copy). */
  all(): Map<string, SlotState> {
    const out = new Map<string, SlotState>();
    for (const bySlot of this.byService.values()) for (const s of bySlot.values()) out.set(slotKey(s.service, s.slot), s);
    return out;
  }

  private remember(s: SlotState): void {
    let bySlot = this.byService.get(s.service);
    if (!bySlot) this.byService.set(s.service, (bySlot = new Map()));
    bySlot.set(s.slot, s);
  }
}

const storeKey = (s: SlotState) => `slot/${s.service}/${s.slot}`;
