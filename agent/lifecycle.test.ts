import { describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { DEFAULTS } from '../core/defaults.js';
import { freshSlotState } from '../controllers/container/types.js';
import { aContainer, aSpec, slotsOf } from '../test/builders.js';
import { InstanceLifecycle } from './lifecycle.js';

function setup() {
  const clock = new ManualClock();
  let changes = 0;
  const life = new InstanceLifecycle(clock, { changed: () => changes++ });
  return { clock, life, changes: () => changes };
}

describe('InstanceLifecycle', () => {
  it('tracks a replacement waiting out its backoff as crashloop until the executor creates it (the planner owns the timing)', async () => {
    const { clock, life } = setup();
    const slot = { ...freshSlotState('web', 0), nextInstance: 'web-1-0-next', nextRetryAt: clock.now() + 2_000 };
    life.sync('web', [], [slot], aSpec());
    expect(life.state('web-1-0-next')).toBe('crashloop');
    expect(clock.pending()).toBe(0); // no second timer next to the planner's requeue
    await clock.advanceAsync(5_000);
    life.sync('web', [], [slot], aSpec());
    expect(life.state('web-1-0-next')).toBe('crashloop');
    const assignment = slotsOf(aSpec())[0]!;
    life.creating({ kind: 'container.create', key: 'web/0', reason: 'replace-after-exited', service: 'web', slot: 0, instance: 'web-1-0-next', assignment, slotAfter: slot });
    expect(life.state('web-1-0-next')).toBe('creating');
  });

  it('changes of adopted instances are told', () => {
    const { life, changes } = setup();
    life.sync('web', [aContainer({ instance: 'a' })], [], aSpec());
    expect(life.state('a')).toBe('running');
    expect(changes()).toBeGreaterThan(0);
  });

  it('a dead instance leaves the endpoints at once on the die event, a liveness failure condemns it', () => {
    const { clock, life } = setup();
    life.sync('web', [aContainer({ instance: 'a' }), aContainer({ instance: 'b', slot: 1 })], [], aSpec());
    expect(life.endpoints().map((e) => e.instance).sort()).toEqual(['a', 'b']);
    life.observedGone({ instance: 'a', kind: 'die', exitCode: 137, oomKilled: false, timeMs: clock.now() });
    expect(life.endpoints().map((e) => e.instance)).toEqual(['b']);
    expect(life.tracker.context('a')?.exit).toEqual({ code: 137, reason: 'exited', at: clock.now() });
    life.condemn('b', 'liveness');
    expect([...life.condemned('web')]).toEqual([['b', 'liveness']]);
    expect(life.endpoints()).toEqual([]);
  });

  it('a die after an oom event records the OOM kill', () => {
    const { clock, changes, life } = setup();
    life.sync('web', [aContainer({ instance: 'a' })], [], aSpec());
    const before = changes();
    life.observedGone({ instance: 'a', kind: 'die', exitCode: 137, oomKilled: true, timeMs: clock.now() });
    expect(life.tracker.context('a')?.exit).toEqual({ code: 137, reason: 'oom-killed', at: clock.now() });
    expect(life.endpoints()).toEqual([]);
    expect(changes()).toBeGreaterThan(before); // what the host turns into an endpoints push
  });

  it('condemns on a start timeout and on Docker HEALTHCHECK unhealthy, never on a stop reason text', () => {
    const { clock, life } = setup();
    const [assignment] = slotsOf(aSpec());
    const create = (instance: string, slot: number) =>
      life.creating({ kind: 'container.create', key: `web/${slot}`, reason: 'new', service: 'web', slot, instance, assignment: { ...assignment!, slot }, slotAfter: freshSlotState('web', slot) });
    create('slow', 0);
    life.created('slow', 'cid-slow');
    clock.advance(DEFAULTS.instanceStartTimeoutMs);
    expect([...life.condemned('web')]).toEqual([['slow', 'start-timeout']]);

    const sick = { ...aContainer({ instance: 'sick', slot: 1 }), health: 'unhealthy' as const };
    life.sync('web', [sick], [], aSpec());
    expect(life.condemned('web').get('sick')).toBe('unhealthy');

    // Asked to stop with a reason that reads like a verdict: still not condemned (no tag).
    life.sync('web', [aContainer({ instance: 'asked', slot: 2 })], [], aSpec());
    life.stopping('asked', 'liveness');
    expect(life.state('asked')).toBe('stopping');
    expect(life.condemned('web').has('asked')).toBe(false);
  });
});
