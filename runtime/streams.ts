/**
 * Byte-stream helpers for the Docker API: newline-delimited JSON (events) and the
 * multiplexed log stream of non-TTY containers. Pure; chunk boundaries are arbitrary.
 */
import { StringDecoder } from 'node:string_decoder';

/**
 * Text lines of a byte stream, without their "\n" (a trailing "\r" is dropped too). Lines split
 * across chunks are joined, several lines in one chunk are separated, and a last line without
 * a newline is yielded when the stream ends. UTF-8 sequences may straddle chunks.
 */
export async function* splitLines(chunks: AsyncIterable<Buffer | string>): AsyncGenerator<string> {
  const splitter = new LineSplitter();
  for await (const chunk of chunks) yield* splitter.push(chunk);
  yield* splitter.end();
}

/** Incremental line splitter (see splitLines). */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';

  /** Complete lines made available by this chunk. */
  push(chunk: Buffer | string): string[] {
    this.pending += typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    const parts = this.pending.split('\n');
    this.pending = parts.pop() ?? '';
    return parts.map(stripCr);
  }

  /** The unterminated last line, if any. */
  end(): string[] {
    this.pending += this.decoder.end();
    const rest = this.pending;
    this.pending = '';
    return rest === '' ? [] : [stripCr(rest)];
  }
}

export type StdStream = 'stdout' | 'stderr';

/**
 * Demultiplexes Docker's attach/logs stream: frames of an 8-byte header (stream type byte,
 * three zero bytes, big-endian uint32 length) and a payload. If the first bytes do not look
 * like a header (a TTY container), everything is passed through as stdout.
 */
export async function* demuxDockerStream(
  chunks: AsyncIterable<Buffer>,
): AsyncGenerator<{ stream: StdStream; data: Buffer }> {
  let buf: Buffer = Buffer.alloc(0);
  let raw = false;
  for await (const chunk of chunks) {
    if (raw) {
      yield { stream: 'stdout', data: chunk };
      continue;
    }
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    while (buf.length >= 8) {
      const type = buf[0];
      if ((type !== 0 && type !== 1 && type !== 2) || buf[1] !== 0 || buf[2] !== 0 || buf[3] !== 0) {
        raw = true;
        yield { stream: 'stdout', data: buf };
        buf = Buffer.alloc(0);
        break;
      }
      const len = buf.readUInt32BE(4);
      if (buf.length < 8 + len) break;
      yield { stream: type === 2 ? 'stderr' : 'stdout', data: buf.subarray(8, 8 + len) };
      buf = buf.subarray(8 + len);
    }
  }
  if (buf.length > 0) yield { stream: 'stdout', data: buf };
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
