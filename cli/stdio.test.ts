import { describe, expect, it } from 'vitest';
import { EventEmitter } from 'node:events';
import { endQuietlyOnClosedPipe } from './stdio.js';

const errno = (code: string) => Object.assign(new Error(`write ${code}`), { code });

function setup() {
  const stdout = new EventEmitter();
  const stderr = Object.assign(new EventEmitter(), { text: '', write(s: string) { this.text += s; return true; } });
  const exits: number[] = [];
  endQuietlyOnClosedPipe(stdout, stderr, (c) => exits.push(c));
  return { stdout, stderr, exits };
}

describe('a closed stdout', () => {
  it('EPIPE on stdout ends the command with exit 0 and says nothing', () => {
    const { stdout, stderr, exits } = setup();
    stdout.emit('error', errno('EPIPE'));
    expect(exits).toEqual([0]);
    expect(stderr.text).toBe('');
  });

  it('a second error after EPIPE does not exit again', () => {
    const { stdout, exits } = setup();
    stdout.emit('error', errno('EPIPE'));
    stdout.emit('error', errno('ERR_STREAM_DESTROYED'));
    expect(exits).toEqual([0]);
  });

  it('another stdout error (a full disk) is one line on stderr and exit 1', () => {
    const { stdout, stderr, exits } = setup();
    stdout.emit('error', errno('ENOSPC'));
    expect(exits).toEqual([1]);
    expect(stderr.text).toBe('error: cannot write the output: ENOSPC\n');
  });

  it('EPIPE on stderr is ignored; other stderr errors are not swallowed', () => {
    const { stderr, exits } = setup();
    expect(() => stderr.emit('error', errno('EPIPE'))).not.toThrow();
    expect(() => stderr.emit('error', errno('EIO'))).toThrow(/EIO/);
    expect(exits).toEqual([]);
  });
});
