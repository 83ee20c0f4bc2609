import { describe, expect, it } from 'vitest';
import { flushMicrotasks } from '../core/clock.js';
import { LogInbox, LOG_SLACK_CHARS } from '../server/log-inbox.js';
import { LOG_BATCH_CHARS, LogPump } from './log-pump.js';

/** An endless Docker log stream that counts how many lines were pulled from it. */
function chattyContainer(lineChars = 99) {
  const state = { pulled: 0, closed: false };
  const line = 'l'.repeat(lineChars);
  async function* source(): AsyncGenerator<string> {
    try {
      for (;;) {
        state.pulled++;
        yield line;
        // A real stream hands out lines across I/O turns, not all in one tick.
        if (state.pulled % 50 === 0) await new Promise<void>((r) => setImmediate(r));
      }
    } finally {
      state.closed = true;
    }
  }
  return { state, source: source() };
}

/** The agent's pump feeding the server's inbox, as RemoteNode and AgentSession wire them. */
function wire(window: number) {
  const abort = new AbortController();
  const pump = new LogPump(window, abort.signal);
  const sent = { chars: 0 };
  const inbox = new LogInbox(window, (chars) => setImmediate(() => pump.grant(chars)));
  return { abort, pump, inbox, sent };
}

describe('log flow control (agent pump ⇄ server inbox)', () => {
  it('a reader that stops reading stops the container log stream after about one window', async () => {
    const window = 64 * 1024;
    const { abort, pump, inbox } = wire(window);
    const c = chattyContainer();
    const running = pump.run(c.source, (lines) => setImmediate(() => inbox.push(lines)));
    const reader = inbox.lines();
    // The reader takes 1000 lines, then stops.
    for (let i = 0; i < 1000; i++) await reader.next();
    await flushMicrotasks(50);
    const pulledWhenStopped = c.state.pulled;
    await flushMicrotasks(200);
    expect(c.state.pulled).toBe(pulledWhenStopped);
    // Pulled: what the reader took, plus at most a window and one batch in flight.
    expect(c.state.pulled * 100).toBeLessThanOrEqual(1000 * 100 + window + LOG_BATCH_CHARS + 200);
    // It reads again: the stream resumes.
    for (let i = 0; i < 5000; i++) await reader.next();
    expect(c.state.pulled).toBeGreaterThanOrEqual(6000);
    abort.abort();
    await reader.return(undefined);
    await running;
    expect(c.state.closed).toBe(true);
  });

  it('without a window (an older server) lines flow without waiting for credit', async () => {
    const abort = new AbortController();
    const pump = new LogPump(undefined, abort.signal);
    const got: string[] = [];
    async function* ten() {
      for (let i = 0; i < 10_000; i++) yield `line ${i}`;
    }
    await pump.run(ten(), (lines) => got.push(...lines));
    expect(got).toHaveLength(10_000);
    expect(got.at(-1)).toBe('line 9999');
  });

  it('an abort while out of credit ends the pump and closes the source', async () => {
    const abort = new AbortController();
    const pump = new LogPump(1000, abort.signal);
    const c = chattyContainer();
    const batches: string[][] = [];
    const running = pump.run(c.source, (l) => batches.push(l));
    await flushMicrotasks(20);
    const pulled = c.state.pulled;
    expect(pulled).toBeLessThanOrEqual(11);
    abort.abort();
    await running;
    expect(c.state.closed).toBe(true);
    expect(batches.flat()).toHaveLength(pulled);
  });
});

describe('LogInbox', () => {
  it('grants credit as the reader takes lines, half a window at a time', async () => {
    const grants: number[] = [];
    const inbox = new LogInbox(1000, (c) => grants.push(c));
    inbox.push(Array.from({ length: 10 }, () => 'x'.repeat(99)));
    inbox.push(null);
    const lines: string[] = [];
    for await (const l of inbox.lines()) lines.push(l);
    expect(lines).toHaveLength(10);
    expect(grants).toEqual([]); // ended: nothing more to grant
    const inbox2 = new LogInbox(1000, (c) => grants.push(c));
    inbox2.push(Array.from({ length: 6 }, () => 'y'.repeat(99)));
    const it2 = inbox2.lines();
    for (let i = 0; i < 4; i++) await it2.next();
    expect(grants).toEqual([]);
    await it2.next();
    expect(grants).toEqual([500]);
  });

  it('an agent that sends past its credit ends the stream with an error, holding nothing', async () => {
    const inbox = new LogInbox(1000, () => undefined);
    for (let i = 0; i < 100; i++) inbox.push(['z'.repeat(16 * 1024)]);
    expect(inbox.ended).toBe(false);
    const it = inbox.lines();
    await expect(it.next()).rejects.toThrow(/more log data than it was granted/);
    expect(LOG_SLACK_CHARS).toBeGreaterThan(LOG_BATCH_CHARS);
  });

  it('passes on the stream error of a lost session', async () => {
    const inbox = new LogInbox(1000, () => undefined);
    inbox.push(['a']);
    inbox.push(new Error('the session with node n2 ended'));
    const got: string[] = [];
    await expect(
      (async () => {
        for await (const l of inbox.lines()) got.push(l);
      })(),
    ).rejects.toThrow('the session with node n2 ended');
    expect(got).toEqual(['a']);
    expect(inbox.ended).toBe(true);
  });
});
