import { describe, expect, it } from 'vitest';
import { EXIT_REASONS } from '../controllers/container/types.js';
import { decodeAgentMessage, encode, type AgentMessage } from './messages.js';

/**
 * The protocol keeps its own list of `replace-after-X` reasons (agent/protocol.ts); ExitReason
 * (controllers/container/types.ts) is the one list. This keeps the two from drifting apart.
 */
const replaceEvent = (reason: string): AgentMessage => ({
  type: 'event',
  records: [{ time: '2026-01-01T00:00:00.000Z', reconciler: 'container', service: 'web', instance: 'web-1-0-aaaa', node: 'n1', action: 'container.create', reason, outcome: 'ok', durationMs: 3 }],
});

describe('the protocol accepts a replacement for every ExitReason', () => {
  it.each(EXIT_REASONS.map((r) => [r]))('replace-after-%s', (reason) => {
    expect(decodeAgentMessage(encode(replaceEvent(`replace-after-${reason}`)))).toMatchObject({ ok: true, dropped: [] });
  });

  it('and drops one it does not know', () => {
    const d = decodeAgentMessage(encode(replaceEvent('replace-after-gremlins')));
    expect(d.ok && d.dropped).toEqual([expect.stringContaining('unknown replace-after- reason')]);
  });
});
