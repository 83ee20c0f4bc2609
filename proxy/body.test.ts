import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { REPLAY_BUFFER_MAX_BYTES, RequestBody } from './body.js';

async function readAll(it: AsyncIterable<Buffer>): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts).toString();
}

function client(chunks: string[]): PassThrough {
  const s = new PassThrough();
  for (const c of chunks) s.write(c);
  s.end();
  return s;
}

describe('RequestBody', () => {
  it('reads nothing until an attempt pulls', async () => {
    const src = client(['abc']);
    const body = new RequestBody(src, false);
    body.attempt(); // created, not iterated: what a refused connection leaves behind
    expect(body.consumed).toBe(false);
    expect(body.replayable()).toBe(true);
    expect(await readAll(body.attempt())).toBe('abc');
    expect(body.consumed).toBe(true);
    expect(body.complete).toBe(true);
  });

  it('a non-idempotent body read once cannot be replayed', async () => {
    const body = new RequestBody(client(['a', 'b']), false);
    const first = body.attempt();
    await first.next();
    first.cancel(new Error('reset'));
    expect(body.replayable()).toBe(false);
    await expect(readAll(body.attempt())).rejects.toThrow('cannot be replayed');
  });

  it('an idempotent body is replayed from what was kept, then read on', async () => {
    const src = new PassThrough();
    src.write('one.');
    const body = new RequestBody(src, true);
    const first = body.attempt();
    expect((await first.next()).value?.toString()).toBe('one.');
    const pending = first.next(); // waits on the client
    first.cancel(new Error('reset'));
    await expect(pending).rejects.toThrow('reset');
    expect(body.replayable()).toBe(true);
    src.write('two.');
    src.end('three');
    expect(await readAll(body.attempt())).toBe('one.two.three');
  });

  it('stops keeping an idempotent body above the cap', async () => {
    const big = 'x'.repeat(REPLAY_BUFFER_MAX_BYTES + 1);
    const body = new RequestBody(client([big]), true);
    expect((await readAll(body.attempt())).length).toBe(big.length);
    expect(body.replayable()).toBe(false);
  });

  it('passes a client error to the attempt', async () => {
    const src = new PassThrough();
    const body = new RequestBody(src, false);
    const it = body.attempt();
    const p = it.next();
    src.destroy(new Error('client went away'));
    await expect(p).rejects.toThrow('client went away');
  });
});
