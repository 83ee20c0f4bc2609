import { describe, expect, it } from 'vitest';
import { ManualClock, flushMicrotasks } from '../core/clock.js';
import { silentLogger } from '../core/log.js';
import { FakeRuntime } from '../runtime/fake-runtime.js';
import { LABEL, instanceLabels } from '../runtime/labels.js';
import type { RuntimeEvent, RuntimeEventKind } from '../runtime/types.js';
import { aSpec } from '../test/builders.js';
import { InstanceLifecycle } from './lifecycle.js';
import { DEATH_WATCH_MAX_DEAD, DeathWatch, followRuntimeEvents } from './runtime-events.js';

const ev = (containerId: string): RuntimeEvent => ({ kind: 'die', containerId, labels: {}, timeMs: 0, exitCode: 137 });

/** A runtime whose n-th stream yields script[n]'s events, then breaks (or, past the script, waits for the abort). */
function scripted(script: RuntimeEvent[][]) {
  let opened = 0;
  return {
    opened: () => opened,
    events(_labels: Record<string, string>, signal: AbortSignal): AsyncIterable<RuntimeEvent> {
      const n = opened++;
      return (async function* () {
        const batch = script[n];
        if (!batch) {
          await new Promise((r) => signal.addEventListener('abort', r, { once: true }));
          return;
        }
        yield* batch;
        throw new Error('stream broke');
      })();
    },
  };
}

describe('followRuntimeEvents', () => {
  it('passes events on, re-opens a broken stream with backoff and reports each re-open', async () => {
    const clock = new ManualClock();
    const rt = scripted([[ev('a')], []]);
    const seen: string[] = [];
    const abort = new AbortController();
    const done = followRuntimeEvents(
      { runtime: rt, labels: {}, clock, log: silentLogger(), reconnect: { initialMs: 100, maxMs: 1000 }, onEvent: (e) => seen.push(e.containerId), onReopen: () => seen.push('reopen') },
      abort.signal,
    );
    await flushMicrotasks(20);
    expect(seen).toEqual(['a']);
    expect(rt.opened()).toBe(1);
    await clock.advanceAsync(99);
    expect(rt.opened()).toBe(1);
    await clock.advanceAsync(1);
    await flushMicrotasks(20);
    // The second stream broke with no event: the next delay doubles.
    expect(seen).toEqual(['a', 'reopen']);
    await clock.advanceAsync(199);
    expect(rt.opened()).toBe(2);
    await clock.advanceAsync(1);
    await flushMicrotasks(20);
    expect(rt.opened()).toBe(3);
    expect(seen).toEqual(['a', 'reopen', 'reopen']);
    abort.abort();
    await done;
  });

  it('stops when the signal aborts while waiting to re-open', async () => {
    const clock = new ManualClock();
    const rt = scripted([[]]);
    const abort = new AbortController();
    const done = followRuntimeEvents({ runtime: rt, labels: {}, clock, log: silentLogger(), reconnect: { initialMs: 100, maxMs: 1000 }, onEvent: () => {}, onReopen: () => {} }, abort.signal);
    await flushMicrotasks(20);
    abort.abort();
    await done;
    await clock.advanceAsync(10_000);
    expect(rt.opened()).toBe(1);
  });
});

describe('DeathWatch', () => {
  const on = (kind: RuntimeEventKind, containerId: string, more: Partial<RuntimeEvent> = {}): RuntimeEvent => ({
    kind,
    containerId,
    labels: { [LABEL.instance]: `i-${containerId}` },
    timeMs: 5,
    ...more,
  });

  it.each<[string, RuntimeEvent[], Array<[string, boolean] | null>]>([
    // name                                   events in stream order                                  what each one reports: [kind, oomKilled] or null
    ['a plain die', [on('die', 'a', { exitCode: 1 })], [['die', false]]],
    ['oom, then die: an OOM kill', [on('oom', 'a'), on('die', 'a', { exitCode: 137 })], [null, ['die', true]]],
    ['another container’s oom says nothing', [on('oom', 'b'), on('die', 'a', { exitCode: 137 })], [null, ['die', false]]],
    ['the mark is read once: the next life dies plainly', [on('oom', 'a'), on('die', 'a'), on('start', 'a'), on('die', 'a')], [null, ['die', true], null, ['die', false]]],
    ['destroy is a vanishing, never an OOM kill, and drops the mark', [on('oom', 'a'), on('destroy', 'a'), on('die', 'a')], [null, ['destroy', false], ['die', false]]],
    ['kill, stop and health say nothing', [on('kill', 'a'), on('stop', 'a'), on('health_status', 'a', { health: 'unhealthy' })], [null, null, null]],
  ])('%s', (_name, events, expected) => {
    const watch = new DeathWatch();
    expect(events.map((e) => watch.see(e)).map((g) => (g ? [g.kind, g.oomKilled] : null))).toEqual(expected);
  });

  it('reports the instance, exit code and engine time; a container without the instance label is not an instance', () => {
    const watch = new DeathWatch();
    expect(watch.see(on('die', 'a', { exitCode: 3, timeMs: 42 }))).toEqual({ instance: 'i-a', kind: 'die', exitCode: 3, oomKilled: false, timeMs: 42 });
    expect(watch.see(on('destroy', 'a'))).toMatchObject({ exitCode: null });
    watch.see(on('oom', 'x', { labels: {} }));
    expect(watch.see(on('die', 'x', { labels: {} }))).toBeNull();
  });

  it('an oom that comes after the die (Docker 20.10 under load) marks that run as OOM-killed, until it starts again or goes', () => {
    const watch = new DeathWatch();
    expect(watch.see(on('die', 'a', { exitCode: 137 }))?.oomKilled).toBe(false);
    expect(watch.lateOomKilled('a')).toBe(false);
    expect(watch.see(on('oom', 'a'))).toBeNull();
    expect(watch.lateOomKilled('a')).toBe(true);
    expect(watch.lateOomKilled('b')).toBe(false);
    // The next run is not marked, neither by the late oom nor as an early one.
    watch.see(on('start', 'a'));
    expect(watch.lateOomKilled('a')).toBe(false);
    expect(watch.see(on('die', 'a', { exitCode: 1 }))?.oomKilled).toBe(false);
    // A destroyed container is forgotten.
    watch.see(on('oom', 'a'));
    watch.see(on('destroy', 'a'));
    expect(watch.lateOomKilled('a')).toBe(false);
  });

  it('an oom for a container whose die it never saw is an early mark, not a late one', () => {
    const watch = new DeathWatch();
    watch.see(on('oom', 'a'));
    expect(watch.lateOomKilled('a')).toBe(false);
    expect(watch.see(on('die', 'a'))?.oomKilled).toBe(true);
  });

  it('remembers at most DEATH_WATCH_MAX_DEAD dead containers, the oldest forgotten first', () => {
    const watch = new DeathWatch();
    for (let i = 0; i <= DEATH_WATCH_MAX_DEAD; i++) watch.see(on('die', `c${i}`, { labels: {} }));
    watch.see(on('oom', 'c0'));
    watch.see(on('oom', `c${DEATH_WATCH_MAX_DEAD}`));
    expect(watch.lateOomKilled('c0')).toBe(false);
    expect(watch.lateOomKilled(`c${DEATH_WATCH_MAX_DEAD}`)).toBe(true);
    // A flood of ooms for containers it never saw die marks nothing late.
    for (let i = 0; i < 5000; i++) watch.see(on('oom', `x${i}`, { labels: {} }));
    expect(watch.lateOomKilled('x1')).toBe(false);
  });

  it('forgets its marks when the stream is re-opened', () => {
    const watch = new DeathWatch();
    watch.see(on('oom', 'a'));
    watch.reset();
    expect(watch.see(on('die', 'a'))?.oomKilled).toBe(false);
    watch.see(on('oom', 'a'));
    watch.reset();
    expect(watch.lateOomKilled('a')).toBe(false);
  });

  it('an OOM kill seen on the event stream ends the instance as oom-killed (FakeRuntime sends oom, then die, as Docker does)', async () => {
    const clock = new ManualClock();
    const rt = new FakeRuntime(clock);
    rt.addImage('orca-test/busybox:1', { cmd: ['sleep', '3600'] });
    const labels = instanceLabels({ cluster: 'test', service: 'web', instance: 'web-1-0-a', slot: 0, revision: 1, specHash: 'hash', node: 'n1' });
    const id = await rt.create({ name: 'web-1-0-a', image: 'orca-test/busybox:1', env: {}, hostIp: '127.0.0.1', init: true, stopGraceSecs: 1, labels });
    await rt.start(id);
    const life = new InstanceLifecycle(clock, { changed: () => {} });
    life.sync('web', await rt.list({ [LABEL.cluster]: 'test' }), [], aSpec());
    expect(life.state('web-1-0-a')).toBe('running');

    const watch = new DeathWatch();
    const abort = new AbortController();
    const done = followRuntimeEvents(
      {
        runtime: rt,
        labels: { [LABEL.cluster]: 'test' },
        clock,
        log: silentLogger(),
        reconnect: { initialMs: 100, maxMs: 1000 },
        onEvent: (e) => {
          const gone = watch.see(e);
          if (gone) life.observedGone(gone);
        },
        onReopen: () => watch.reset(),
      },
      abort.signal,
    );
    await flushMicrotasks(20);
    rt.crash(id, 137, { oom: true });
    await flushMicrotasks(20);
    expect(life.tracker.context('web-1-0-a')?.exit).toMatchObject({ code: 137, reason: 'oom-killed' });
    abort.abort();
    await done;
  });
});
