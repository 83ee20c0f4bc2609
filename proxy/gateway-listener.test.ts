import { describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import { silentLogger } from '../core/log.js';
import { GatewayListener } from './gateway-listener.js';

/** A logger that keeps each line's level and message. */
function recordingLogger(lines: string[]): Logger {
  const log = silentLogger();
  for (const level of ['info', 'warn'] as const) {
    (log as unknown as Record<string, unknown>)[level] = (_fields: unknown, msg: string) => lines.push(`${level}: ${msg}`);
  }
  return log;
}

function setup(gateway: () => string | null, listenFails: (ip: string) => string | null = () => null) {
  const clock = new ManualClock();
  const lines: string[] = [];
  const open = new Set<string>();
  const g = new GatewayListener({
    clock,
    log: recordingLogger(lines),
    gateway: async () => gateway(),
    listen: async (ip, port) => {
      const code = listenFails(ip);
      if (code) throw Object.assign(new Error(`listen ${code} ${ip}:${port}`), { code });
      open.add(`${ip}:${port}`);
      return { close: async () => void open.delete(`${ip}:${port}`) };
    },
    port: 8080,
    recheckMs: 1_000,
  });
  return { clock, lines, open, g };
}

const settle = () => new Promise((r) => setImmediate(r));

describe('GatewayListener', () => {
  it('waits for the network, listens once it is there, and stops listening on stop()', async () => {
    let gw: string | null = null;
    const { clock, lines, open, g } = setup(() => gw);
    await g.start();
    expect(open.size).toBe(0);
    gw = '198.51.100.1';
    clock.advance(1_000);
    await settle();
    await settle();
    expect([...open]).toEqual(['198.51.100.1:8080']);
    expect(g.address).toBe('198.51.100.1:8080');
    await g.stop();
    expect(open.size).toBe(0);
    // No timer left behind: nothing listens again.
    clock.advance(10_000);
    await settle();
    expect(open.size).toBe(0);
    expect(lines.filter((l) => l.includes('waits'))).toHaveLength(1);
  });

  it('says a failure once per address and reason, not at every recheck, and the main listener is not its concern', async () => {
    const { clock, lines, open, g } = setup(() => '198.51.100.1', () => 'EADDRINUSE');
    await g.start();
    for (let i = 0; i < 5; i++) {
      clock.advance(1_000);
      await settle();
      await settle();
    }
    expect(open.size).toBe(0);
    expect(lines.filter((l) => l.startsWith('warn: cannot listen on the cluster network gateway'))).toHaveLength(1);
    await g.stop();
  });

  it('coalesces concurrent checks into one listen', async () => {
    const { open, g } = setup(() => '198.51.100.1');
    await Promise.all([g.check(), g.check(), g.check()]);
    expect([...open]).toEqual(['198.51.100.1:8080']);
    await g.stop();
  });
});
