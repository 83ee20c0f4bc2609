import { describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import { RefusalLog } from './refusals.js';

function recordingLog() {
  const lines: Array<{ fields: Record<string, unknown>; msg: string }> = [];
  const log = { warn: (fields: Record<string, unknown>, msg: string) => lines.push({ fields, msg }) } as unknown as Logger;
  return { log, lines };
}

describe('RefusalLog', () => {
  it('logs at most one line per remote per window, with how many were suppressed, and counts every refusal', () => {
    const clock = new ManualClock();
    const { log, lines } = recordingLog();
    let counted = 0;
    const r = new RefusalLog(clock, log, () => counted++, { windowMs: 60_000 });
    for (let i = 0; i < 1000; i++) r.refused('127.0.0.11', 'GET', '/v1/status');
    r.refused('127.0.0.12', 'GET', '/v1/status');
    expect(counted).toBe(1001);
    expect(lines.map((l) => [l.fields.remote, l.fields.suppressed])).toEqual([['127.0.0.11', 0], ['127.0.0.12', 0]]);
    clock.advance(59_999);
    r.refused('127.0.0.11', 'GET', '/v1/status');
    expect(lines).toHaveLength(2);
    clock.advance(1);
    r.refused('127.0.0.11', 'POST', '/v1/apply');
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatchObject({ msg: 'unauthorized API request', fields: { remote: '127.0.0.11', suppressed: 1000, method: 'POST', path: '/v1/apply' } });
    expect(counted).toBe(1003);
  });

  it('remembers a bounded number of remotes', () => {
    const clock = new ManualClock();
    const { log, lines } = recordingLog();
    const r = new RefusalLog(clock, log, undefined, { maxRemotes: 10 });
    for (let i = 0; i < 10_000; i++) r.refused(`127.0.${i >> 8}.${i & 255}`, 'GET', '/');
    expect(lines).toHaveLength(10_000);
    // The first remote was forgotten long ago: it is logged again (not held in memory).
    r.refused('127.0.0.0', 'GET', '/');
    expect(lines).toHaveLength(10_001);
    // A recent one is still remembered.
    r.refused('127.0.39.15', 'GET', '/');
    expect(lines).toHaveLength(10_001);
  });

  it('never logs the token, and quotes a hostile path as a short printable excerpt', () => {
    const { log, lines } = recordingLog();
    new RefusalLog(new ManualClock(), log).refused('::1', 'GET', '/x\u0000\u001b[31m' + 'p'.repeat(10_000));
    const text = JSON.stringify(lines);
    expect(text.length).toBeLessThan(400);
    expect(text).not.toContain('\u001b');
  });
});
