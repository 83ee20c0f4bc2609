import { describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { freshSlotState } from '../controllers/container/types.js';
import { aContainer, aSpec } from '../test/builders.js';
import { InstanceLifecycle } from './lifecycle.js';

function setup() {
  const clock = new ManualClock();
  const woken: string[] = [];
  let changes = 0;
  const life = new InstanceLifecycle(clock, { changed: () => changes++, backoffEnded: (s) => woken.push(s) });
  return { clock, life, woken, changes: () => changes };
}

describe('InstanceLifecycle', () => {
  it('wakes the service once when a replacement waiting out its backoff may be created', async () => {
    const { clock, life, woken } = setup();
    const slot = { ...freshSlotState('web', 0), nextInstance: 'web-1-0-next', nextRetryAt: clock.now() + 2_000 };
    life.sync('web', [], [slot], aSpec());
    expect(life.state('web-1-0-next')).toBe('crashloop');
    await clock.advanceAsync(1_999);
    expect(woken).toEqual([]);
    await clock.advanceAsync(1);
    expect(woken).toEqual(['web']);
    life.sync('web', [], [slot], aSpec());
    await clock.advanceAsync(5_000);
    expect(woken).toEqual(['web']);
  });

  it('adopted instances wake nothing; their changes are told', () => {
    const { life, woken, changes } = setup();
    life.sync('web', [aContainer({ instance: 'a' })], [], aSpec());
    expect(life.state('a')).toBe('running');
    expect(woken).toEqual([]);
    expect(changes()).toBeGreaterThan(0);
  });

  it('a dead instance leaves the endpoints at once on the die event, a liveness stop condemns it', () => {
    const { clock, life } = setup();
    life.sync('web', [aContainer({ instance: 'a' }), aContainer({ instance: 'b', slot: 1 })], [], aSpec());
    expect(life.endpoints().map((e) => e.instance).sort()).toEqual(['a', 'b']);
    life.observedGone('a', { kind: 'die', exitCode: 137, timeMs: clock.now() });
    expect(life.endpoints().map((e) => e.instance)).toEqual(['b']);
    life.stopping('b', 'liveness');
    expect([...life.condemned('web')]).toEqual([['b', 'liveness']]);
    expect(life.endpoints()).toEqual([]);
  });
});
