import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { createLogger } from './log.js';

function sink(isTTY = false) {
  const s = Object.assign(new Writable({ write: (c, _e, cb) => ((s.text += c), cb()) }), { text: '', isTTY });
  return s;
}

describe('createLogger', () => {
  it('writes one JSON object a line by default', () => {
    const out = sink();
    createLogger({ destination: out }).info({ service: 'web' }, 'hello');
    const line = JSON.parse(out.text.trim()) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 30, service: 'web', msg: 'hello' });
  });

  it('pretty-prints for humans on a TTY, synchronously, without colour codes off a TTY', () => {
    const tty = sink(true);
    createLogger({ destination: tty }).warn({ node: 'n1' }, 'node silent');
    // Written before createLogger().warn returned: nothing waits in a worker thread.
    expect(tty.text).toMatch(/WARN/);
    expect(tty.text).toContain('node silent');
    expect(tty.text).toMatch(/node.*"n1"/);
    expect(tty.text).not.toContain('{"level"');
    const plain = sink(false);
    createLogger({ destination: plain, pretty: true }).info('hi');
    expect(plain.text).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: hi\n$/);
  });

  it('redacts tokens in both forms', () => {
    for (const pretty of [false, true]) {
      const out = sink();
      createLogger({ destination: out, pretty }).info({ token: 's3cret', headers: { authorization: 'Bearer s3cret' } }, 'refused');
      expect(out.text).not.toContain('s3cret');
      expect(out.text).toContain('[redacted]');
    }
  });
});
