import { describe, expect, it } from 'vitest';
import { memoryStore } from '../store/index.js';
import { freshSlotState, type SlotState } from '../controllers/container/types.js';
import { SlotMemory } from './slot-memory.js';

const slot = (service: string, n: number, over: Partial<SlotState> = {}): SlotState => ({ ...freshSlotState(service, n), ...over });

describe('SlotMemory', () => {
  it('survives a restart: what was saved is loaded by a new memory on the same store, and a forgotten slot is gone', async () => {
    const store = memoryStore();
    await store.open();
    const m = new SlotMemory(store);
    await m.save(slot('web', 0, { restarts: 2 }));
    await m.save(slot('web', 1));
    await m.save(slot('api', 0));
    await m.forget(slot('web', 1));
    const again = new SlotMemory(store);
    await again.load();
    expect([...again.ofService('web').values()].map((s) => [s.slot, s.restarts])).toEqual([[0, 2]]);
    expect([...again.all().keys()].sort()).toEqual(['api/0', 'web/0']);
    expect(again.ofService('db').size).toBe(0);
  });
});
