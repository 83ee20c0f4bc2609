/**
 * Flow control of a log stream, the server's side (see agent/log-pump.ts): the lines an agent
 * sent for one `logs` request, held until the API's reader takes them. The agent may send only
 * what it was granted: `window` characters at first, and more as the reader takes lines (a grant
 * each time half a window was taken). So the inbox holds at most about one window; an agent
 * that sends more than window + slack ends the stream with an error instead of growing it.
 */

/** The first credit, and about what one stream may hold on the server. */
export const LOG_WINDOW_CHARS = 256 * 1024;
/** What an agent may overrun its credit by (one batch and one cut line, with room). */
export const LOG_SLACK_CHARS = 128 * 1024;

type Item = string[] | Error | null;

export class LogInbox {
  private readonly items: Item[] = [];
  private held = 0;
  private taken = 0;
  private wake: (() => void) | null = null;
  private finished = false;
  private overflowed = false;

  constructor(
    private readonly window: number,
    /** Grants the agent `chars` more credit (sends logs-credit). */
    private readonly grant: (chars: number) => void,
  ) {}

  /** True once the agent ended the stream (logs-end, or the session ended); not after an overflow. */
  get ended(): boolean {
    return this.finished && !this.overflowed;
  }

  /** Lines from the agent; an Error or null (the end) from logs-end or a lost session. */
  push(item: Item): void {
    if (this.finished) return;
    if (Array.isArray(item)) {
      for (const l of item) this.held += l.length + 1;
      if (this.held > this.window + LOG_SLACK_CHARS) {
        this.items.length = 0;
        this.held = 0;
        this.items.push(new Error(`the node sent more log data than it was granted (${this.window} characters)`));
        this.finished = true;
        this.overflowed = true;
      } else this.items.push(item);
    } else {
      this.items.push(item);
      this.finished = true;
    }
    this.wake?.();
  }

  /** The lines, as the reader takes them; throws the stream's error. */
  async *lines(): AsyncGenerator<string> {
    for (;;) {
      while (this.items.length === 0) {
        await new Promise<void>((r) => (this.wake = r));
        this.wake = null;
      }
      const next = this.items.shift();
      if (next === null || next === undefined) return;
      if (next instanceof Error) throw next;
      for (const line of next) {
        const cost = line.length + 1;
        this.held -= cost;
        this.taken += cost;
        if (this.taken >= this.window / 2 && !this.finished) {
          this.grant(this.taken);
          this.taken = 0;
        }
        yield line;
      }
    }
  }
}
