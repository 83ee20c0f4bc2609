import { describe, expect, it } from 'vitest';
import { demuxDockerStream, dockerLogLines, splitLines } from './streams.js';

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
