import { describe, expect, it } from 'vitest';
import { cutMark, demuxDockerStream, dockerLogLines, MAX_LINE_CHARS, splitLines } from './streams.js';

async function* chunks(...parts: Array<Buffer | string>): AsyncGenerator<Buffer> {
  for (const p of parts) yield typeof p === 'string' ? Buffer.from(p) : p;
}

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

function frame(stream: 1 | 2, text: string): Buffer {
  const body = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

describe('splitLines', () => {
  it('joins lines split across chunks and splits merged ones', async () => {
    expect(await all(splitLines(chunks('{"a":', '1}\n{"b":2}\n{"c"', ':3}\r\n', 'tail')))).toEqual(['{"a":1}', '{"b":2}', '{"c":3}', 'tail']);
  });

  it('keeps UTF-8 characters that straddle chunks', async () => {
    const bytes = Buffer.from('héllo\n');
    expect(await all(splitLines(chunks(bytes.subarray(0, 2), bytes.subarray(2))))).toEqual(['héllo']);
  });

  it('yields empty lines but no phantom line at the end', async () => {
    expect(await all(splitLines(chunks('a\n\nb\n')))).toEqual(['a', '', 'b']);
  });
});

describe('Docker log stream demultiplexing', () => {
  it('separates frames however the bytes are chunked', async () => {
    const bytes = Buffer.concat([frame(1, 'out one\nout '), frame(2, 'err\n'), frame(1, 'two\n')]);
    for (const cut of [1, 3, 8, 9, 15, bytes.length]) {
      const parts: Buffer[] = [];
      for (let i = 0; i < bytes.length; i += cut) parts.push(bytes.subarray(i, i + cut));
      expect(await all(dockerLogLines(chunks(...parts)))).toEqual(['out one', 'err', 'out two']);
    }
  });

  it('reports the stream of each frame', async () => {
    const frames = await all(demuxDockerStream(chunks(frame(2, 'x'), frame(1, 'y'))));
    expect(frames.map((f) => [f.stream, f.data.toString()])).toEqual([['stderr', 'x'], ['stdout', 'y']]);
  });

  it('passes a TTY (unframed) stream through as stdout', async () => {
    expect(await all(dockerLogLines(chunks('plain text line\nnext\n')))).toEqual(['plain text line', 'next']);
  });
});

describe('long lines cost bounded memory and linear time', () => {
  it('cuts a line at the cap, marks the cut and skips the rest of that line', async () => {
    const long = 'x'.repeat(50);
    const lines = await all(splitLines(chunks(`ok\n${long}\nnext\n`), 10));
    expect(lines).toEqual(['ok', 'x'.repeat(10) + cutMark(10), 'next']);
  });

  it('cuts a line that arrives in many small chunks, and an unterminated one at the end', async () => {
    const parts = Array.from({ length: 30 }, () => 'abc');
    expect(await all(splitLines(chunks(...parts, '\nshort\n', 'y'.repeat(25)), 20))).toEqual([
      'abc'.repeat(7).slice(0, 20) + cutMark(20),
      'short',
      'y'.repeat(20) + cutMark(20),
    ]);
  });

  it('a line of exactly the cap is not cut', async () => {
    expect(await all(splitLines(chunks('z'.repeat(10) + '\n'), 10))).toEqual(['z'.repeat(10)]);
  });

  it('a 100 MB line without a newline through the Docker log path: one cut line, bounded memory, linear time', async () => {
    const CHUNK = 64 * 1024;
    const piece = Buffer.alloc(CHUNK, 'a'.charCodeAt(0));
    // Docker frames: one header per 64 KiB, as a non-TTY container's output arrives.
    const header = Buffer.alloc(8);
    header[0] = 1;
    header.writeUInt32BE(CHUNK, 4);
    const framed = Buffer.concat([header, piece]);
    async function* source(total: number): AsyncGenerator<Buffer> {
      for (let sent = 0; sent < total; sent += CHUNK) yield framed;
      yield frame(1, '\nafter\n');
    }
    const timeFor = async (total: number) => {
      const t0 = process.hrtime.bigint();
      const lines = await all(dockerLogLines(source(total)));
      return { ms: Number(process.hrtime.bigint() - t0) / 1e6, lines };
    };
    global.gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    const big = await timeFor(100 * 1024 * 1024);
    const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
    expect(big.lines).toEqual(['a'.repeat(MAX_LINE_CHARS) + cutMark(MAX_LINE_CHARS), 'after']);
    // Nothing like the 100 MB line (200 MB as a JS string) was ever held.
    expect(heapGrowth).toBeLessThan(64 * 1024 * 1024);
    const small = await timeFor(10 * 1024 * 1024);
    // Linear: ten times the data costs about ten times the time, not a hundred (generous bound for a shared machine).
    expect(big.ms).toBeLessThan(Math.max(small.ms, 5) * 30);
    expect(big.ms).toBeLessThan(10_000);
  });

  it('a frame header claiming 4 GB is streamed in pieces, not gathered', async () => {
    const header = Buffer.alloc(8);
    header[0] = 1;
    header.writeUInt32BE(0xffffffff, 4);
    const pieces = await all(demuxDockerStream(chunks(header, 'abc', 'def')));
    expect(pieces.map((p) => [p.stream, p.data.toString()])).toEqual([['stdout', 'abc'], ['stdout', 'def']]);
  });
});
