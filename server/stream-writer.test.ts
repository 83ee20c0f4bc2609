import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { flushMicrotasks, ManualClock } from '../core/clock.js';
import { DroppingQueue, StreamWriter } from './stream-writer.js';

/** A reader that takes bytes only when told to (a client that stopped reading). */
class SlowReader extends Writable {
  taken = 0;
  private held: Array<() => void> = [];
  constructor() {
    super({ highWaterMark: 1024 });
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.held.push(() => {
      this.taken += chunk.length;
      cb();
    });
  }
  /** Takes everything buffered so far. */
  readAll(): void {
    while (this.held.length) this.held.shift()?.();
  }
}

describe('StreamWriter', () => {
  it('stops the producer while the reader does not read, and resumes when it does', async () => {
    const clock = new ManualClock();
    const reader = new SlowReader();
    const w = new StreamWriter(reader, clock, 60_000);
    let produced = 0;
    let stopped = false;
    const producer = (async () => {
      // A producer that would write 100 MB if nothing held it back.
      while (produced < 100 * 1024 * 1024) {
        if (!(await w.write('x'.repeat(100) + '\n'))) break;
        produced += 101;
      }
      stopped = true;
    })();
    await flushMicrotasks();
    // The reader took nothing: the producer wrote about one high-water mark and waits.
    expect(produced).toBeLessThan(4 * 1024);
    expect(reader.writableLength).toBeLessThan(4 * 1024);
    const held = produced;
    await clock.advanceAsync(30_000, 1_000);
    expect(produced).toBe(held);
    reader.readAll();
    await flushMicrotasks();
    expect(produced).toBeGreaterThan(held);
    expect(stopped).toBe(false);
    reader.destroy();
    await producer;
    expect(stopped).toBe(true);
  });

  it('gives up on a reader that takes nothing for stallMs, and destroys it if it never takes the last line', async () => {
    const clock = new ManualClock();
    const reader = new SlowReader();
    const w = new StreamWriter(reader, clock, 60_000);
    const results: boolean[] = [];
    const producer = (async () => {
      for (;;) {
        const ok = await w.write('y'.repeat(500));
        results.push(ok);
        if (!ok) return;
      }
    })();
    await flushMicrotasks();
    await clock.advanceAsync(59_000, 1_000);
    expect(results.at(-1)).toBe(true);
    await clock.advanceAsync(2_000, 1_000);
    await producer;
    expect(results.at(-1)).toBe(false);
    expect(w.stalled).toBe(true);
    w.finish('[ended: the reader took nothing]\n');
    expect(reader.destroyed).toBe(false);
    await clock.advanceAsync(5_000, 1_000);
    expect(reader.destroyed).toBe(true);
    expect(await w.write('more')).toBe(false);
  });

  it('answers false at once on a closed sink', async () => {
    const reader = new SlowReader();
    reader.destroy();
    expect(await new StreamWriter(reader, new ManualClock(), 1000).write('x')).toBe(false);
  });
});

describe('DroppingQueue', () => {
  it('keeps at most max items, dropping the oldest and counting them', async () => {
    const q = new DroppingQueue<number>(3);
    for (let i = 0; i < 100_000; i++) q.push(i);
    expect(q.size).toBe(3);
    expect(await q.take()).toEqual({ dropped: 99_997, item: 99_997 });
    expect(await q.take()).toEqual({ dropped: 0, item: 99_998 });
    expect(await q.take()).toEqual({ dropped: 0, item: 99_999 });
  });

  it('waits for items, and ends with null once closed and empty', async () => {
    const q = new DroppingQueue<string>(10);
    const next = q.take();
    q.push('a');
    expect(await next).toEqual({ dropped: 0, item: 'a' });
    const last = q.take();
    q.close();
    expect(await last).toBeNull();
    q.push('b');
    expect(await q.take()).toBeNull();
  });
});
