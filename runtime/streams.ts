/**
 * Byte-stream helpers for the Docker API: newline-delimited JSON (events) and the
 * multiplexed log stream of non-TTY containers. Pure; chunk boundaries are arbitrary.
 */
import { StringDecoder } from 'node:string_decoder';

/** Longest line kept, in UTF-16 characters; the rest of a longer line is cut (see LineSplitter). */
export const MAX_LINE_CHARS = 16 * 1024;

/** Appended to a line that was cut at the cap. */
export const cutMark = (maxChars: number) => ` …[orca: line longer than ${maxChars} characters; the rest was cut]`;

/**
 * Text lines of a byte stream, without their "\n" (a trailing "\r" is dropped too). Lines split
 * across chunks are joined, several lines in one chunk are separated, and a last line without
 * a newline is yielded when the stream ends. UTF-8 sequences may straddle chunks. A line longer
 * than maxChars is yielded cut (see LineSplitter).
 */
export async function* splitLines(chunks: AsyncIterable<Buffer | string>, maxChars = MAX_LINE_CHARS): AsyncGenerator<string> {
  const splitter = new LineSplitter(maxChars);
  for await (const chunk of chunks) yield* splitter.push(chunk);
  yield* splitter.end();
}

/**
 * Incremental line splitter (see splitLines). Memory is bounded and time linear whatever the
 * input: the partial line held is at most maxChars. When a line reaches maxChars its first
 * maxChars characters are yielded at once, marked with cutMark, and the rest of that line, up
 * to its newline, is skipped (a 100 MB line without a newline costs 16 KiB, not 100 MB).
 */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';
  /** Inside the rest of a line already cut: skip up to the next newline. */
  private skipping = false;

  constructor(private readonly maxChars = MAX_LINE_CHARS) {}

  /** Complete (or cut) lines made available by this chunk. */
  push(chunk: Buffer | string): string[] {
    const text = typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    const out: string[] = [];
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      const end = nl < 0 ? text.length : nl;
      if (!this.skipping) {
        const room = this.maxChars - this.pending.length;
        if (end - start > room) {
          out.push(this.pending + text.slice(start, start + room) + cutMark(this.maxChars));
          this.pending = '';
          this.skipping = true;
        } else this.pending += text.slice(start, end);
      }
      if (nl < 0) break;
      if (!this.skipping) out.push(stripCr(this.pending));
      this.pending = '';
      this.skipping = false;
      start = nl + 1;
    }
    return out;
  }

  /** The unterminated last line, if any. */
  end(): string[] {
    const rest = this.push(this.decoder.end());
    const last = this.skipping ? '' : this.pending;
    this.pending = '';
    this.skipping = false;
    return last === '' ? rest : [...rest, stripCr(last)];
  }
}

export type StdStream = 'stdout' | 'stderr';

/**
 * Demultiplexes Docker's attach/logs stream: frames of an 8-byte header (stream type byte,
 * three zero bytes, big-endian uint32 length) and a payload. If the first bytes do not look
 * like a header (a TTY container), everything is passed through as stdout. A frame's payload
 * is yielded in pieces as it arrives (never gathered whole, whatever length a header claims),
 * so memory stays bounded by the chunk size and time is linear.
 */
export async function* demuxDockerStream(
  chunks: AsyncIterable<Buffer>,
): AsyncGenerator<{ stream: StdStream; data: Buffer }> {
  let header: Buffer = Buffer.alloc(0);
  let raw = false;
  let current: StdStream = 'stdout';
  let remaining = 0;
  for await (const chunk of chunks) {
    if (raw) {
      yield { stream: 'stdout', data: chunk };
      continue;
    }
    let buf: Buffer = chunk;
    while (buf.length > 0) {
      if (remaining > 0) {
        const take = Math.min(remaining, buf.length);
        yield { stream: current, data: buf.subarray(0, take) };
        remaining -= take;
        buf = buf.subarray(take);
        continue;
      }
      const need = 8 - header.length;
      header = Buffer.concat([header, buf.subarray(0, need)]);
      buf = buf.subarray(need);
      if (header.length < 8) break;
      const type = header[0];
      if ((type !== 0 && type !== 1 && type !== 2) || header[1] !== 0 || header[2] !== 0 || header[3] !== 0) {
        raw = true;
        yield { stream: 'stdout', data: Buffer.concat([header, buf]) };
        header = Buffer.alloc(0);
        break;
      }
      current = type === 2 ? 'stderr' : 'stdout';
      remaining = header.readUInt32BE(4);
      header = Buffer.alloc(0);
    }
  }
  if (header.length > 0) yield { stream: 'stdout', data: header };
}

/**
 * Text lines of a Docker log stream, stdout and stderr interleaved in arrival order. Each
 * stream keeps its own partial line, so a line written in pieces is not torn by the other.
 */
export async function* dockerLogLines(chunks: AsyncIterable<Buffer>): AsyncGenerator<string> {
  const splitters: Record<StdStream, LineSplitter> = { stdout: new LineSplitter(), stderr: new LineSplitter() };
  for await (const frame of demuxDockerStream(chunks)) yield* splitters[frame.stream].push(frame.data);
  yield* splitters.stdout.end();
  yield* splitters.stderr.end();
}

function stripCr(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}
