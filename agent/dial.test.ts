import { describe, expect, it } from 'vitest';
import { memoryChannelPair, type Channel } from '../protocol/channel.js';
import { OrcaError } from '../core/errors.js';
import { failoverDialer, StandbyAnswer } from './dial.js';

/** Dialers by URL: 'open' (after ms), 'standby' (naming a leader), 'down', or '401'. */
function servers(behaviour: Record<string, { kind: 'open'; ms?: number } | { kind: 'standby'; leader: string | null } | { kind: 'down' } | { kind: '401' }>) {
  const dialled: string[] = [];
  const closed: string[] = [];
  const dialerFor = (url: string) => async (): Promise<Channel> => {
    dialled.push(url);
    const b = behaviour[url] ?? { kind: 'down' };
    if (b.kind === 'down') throw new Error(`ECONNREFUSED ${url}`);
    if (b.kind === '401') throw new OrcaError('ORCA_UNAUTHORIZED', 'revoked');
    if (b.kind === 'standby') throw new StandbyAnswer(b.leader, `${url} stands by`);
    await new Promise((r) => setTimeout(r, b.ms ?? 0));
    const [a] = memoryChannelPair();
    const close = a.close.bind(a);
    a.close = (code?: number, reason?: string) => {
      closed.push(url);
      close(code, reason);
    };
    (a as Channel & { url?: string }).url = url;
    return a;
  };
  return { dialerFor, dialled, closed };
}
const urlOf = (c: Channel) => (c as Channel & { url?: string }).url;

describe('failoverDialer (SPEC §3.11: --join a,b,c)', () => {
  it('tries every server at once and keeps the one that opens (the leader); a later one that opens is closed', async () => {
    const s = servers({ 'http://a:1': { kind: 'standby', leader: 'http://b:1' }, 'http://b:1': { kind: 'open', ms: 5 }, 'http://c:1': { kind: 'open', ms: 30 } });
    const ch = await failoverDialer(['http://a:1', 'http://b:1', 'http://c:1'], s.dialerFor)();
    expect(urlOf(ch)).toBe('http://b:1');
    expect(s.dialled.sort()).toEqual(['http://a:1', 'http://b:1', 'http://c:1']);
    await new Promise((r) => setTimeout(r, 50));
    expect([...new Set(s.closed)]).toEqual(['http://c:1']);
  });

  it('goes to a leader a standby named that was not in the list', async () => {
    const s = servers({ 'http://a:1': { kind: 'standby', leader: 'http://d:1' }, 'http://b:1': { kind: 'down' }, 'http://d:1': { kind: 'open' } });
    expect(urlOf(await failoverDialer(['http://a:1', 'http://b:1'], s.dialerFor)())).toBe('http://d:1');
    // One server given: its standby answer is followed too.
    const one = servers({ 'http://a:1': { kind: 'standby', leader: 'http://d:1' }, 'http://d:1': { kind: 'open' } });
    expect(urlOf(await failoverDialer(['http://a:1'], one.dialerFor)())).toBe('http://d:1');
  });

  it('none opens: one error naming each (retried by the session), never a loop between standbys', async () => {
    const s = servers({ 'http://a:1': { kind: 'standby', leader: 'http://b:1' }, 'http://b:1': { kind: 'standby', leader: 'http://a:1' } });
    await expect(failoverDialer(['http://a:1', 'http://b:1'], s.dialerFor)()).rejects.toThrow(/no server took the session: http:\/\/a:1 stands by; http:\/\/b:1 stands by/);
    expect(s.dialled).toHaveLength(2);
  });

  it('a 401 from the leader (the credential was revoked) is given up on, whatever the standbys said', async () => {
    const s = servers({ 'http://a:1': { kind: 'standby', leader: 'http://b:1' }, 'http://b:1': { kind: '401' } });
    await expect(failoverDialer(['http://a:1', 'http://b:1'], s.dialerFor)()).rejects.toBeInstanceOf(OrcaError);
  });
});
