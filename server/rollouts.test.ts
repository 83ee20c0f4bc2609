import { describe, expect, it } from 'vitest';
import { ManualClock, flushMicrotasks } from '../core/clock.js';
import { silentLogger } from '../core/log.js';
import type { Store } from '../store/types.js';
import { RolloutWatcher } from './rollouts.js';
import type { ServiceStatus } from './status.js';

describe('RolloutWatcher', () => {
  it('checks one at a time: pokes during a slow check make one more check after it, and an outcome is recorded once', async () => {
    const clock = new ManualClock();
    const outcome = new Map([['web', 'pending']]);
    const writes: string[] = [];
    const store = {
      listServices: async () => [{ name: 'web', revision: 1 }],
      getRevision: async (name: string) => ({ outcome: outcome.get(name) }),
      setRevisionOutcome: async (name: string, _rev: number, o: string) => {
        writes.push(`${name} ${o}`);
        outcome.set(name, o);
      },
    } as unknown as Store;
    let looks = 0;
    let release: () => void = () => {};
    const status = async (): Promise<ServiceStatus[]> => {
      looks++;
      await new Promise<void>((r) => (release = r));
      return [{ name: 'web', revision: 1, state: 'healthy' } as ServiceStatus];
    };
    const w = new RolloutWatcher(store, status, clock, silentLogger());
    w.poke();
    await clock.advanceAsync(100);
    await flushMicrotasks();
    expect(looks).toBe(1);
    // Node changes keep coming while the check waits for the status.
    for (let i = 0; i < 5; i++) {
      w.poke();
      await clock.advanceAsync(100);
      await flushMicrotasks();
    }
    expect(looks).toBe(1);
    release();
    await flushMicrotasks();
    await clock.advanceAsync(100);
    await flushMicrotasks();
    // One more check for what changed meanwhile: the revision is no longer pending, nothing to ask or write.
    expect(looks).toBe(1);
    expect(writes).toEqual(['web rolled-out']);
    w.stop();
  });
});
