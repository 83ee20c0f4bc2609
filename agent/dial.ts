/**
 * Dialling a control plane of several servers (SPEC §3.11): on every dial the agent tries every
 * server it was given at once and keeps the first session that opens — only the leader opens
 * one; a standby answers 503 naming the leader — and closes any other that opens later. When
 * none opened but a standby named a leader that was not tried, that one is dialled too. The
 * session's backoff then counts whole rounds.
 */
import type { Channel } from '../protocol/channel.js';
import { OrcaError } from '../core/errors.js';

/** A standby refused the session (503) and named the leader, if it knows one. */
export class StandbyAnswer extends Error {
  constructor(
    readonly leader: string | null,
    message: string,
  ) {
    super(message);
  }
}

/** How many servers a `--join` may list. */
export const MAX_JOIN_URLS = 16;

export function failoverDialer(urls: string[], dialerFor: (url: string) => () => Promise<Channel>): () => Promise<Channel> {
  const list = [...new Set(urls.map((u) => u.trim()).filter(Boolean))].slice(0, MAX_JOIN_URLS);
  const dialers = new Map<string, () => Promise<Channel>>();
  const dial = (u: string) => {
    let d = dialers.get(u);
    if (!d) {
      d = dialerFor(u);
      dialers.set(u, d);
    }
    return d();
  };
  if (list.length === 1) {
    const only = list[0]!;
    // One server: as before, but a standby's answer still leads to the leader.
    return async () => {
      try {
        return await dial(only);
      } catch (err) {
        if (err instanceof StandbyAnswer && err.leader && sameServer(err.leader, only) === false) return dial(err.leader);
        throw err;
      }
    };
  }
  return async () => {
    const tried = new Set<string>();
    let targets = list;
    for (let hop = 0; hop < 2 && targets.length > 0; hop++) {
      for (const t of targets) tried.add(t);
      const r = await firstOpen(targets.map((u) => dial(u)));
      if (r.ok) return r.channel;
      // A refusal that retrying cannot fix (the leader said 401 to this credential): give up on it.
      const fatal = r.errors.find((e): e is OrcaError => e instanceof OrcaError);
      if (fatal) throw fatal;
      const named = r.errors.flatMap((e) => (e instanceof StandbyAnswer && e.leader ? [e.leader] : []));
      targets = [...new Set(named)].filter((u) => ![...tried].some((t) => sameServer(t, u) !== false));
      if (targets.length === 0) throw new Error(`no server took the session: ${r.errors.map((e) => (e as Error).message).join('; ')}`.slice(0, 1000));
    }
    throw new Error('no server took the session');
  };
}

/** The first dial that opens wins; any that open later are closed. Resolves with every error when none opens. */
function firstOpen(dials: Array<Promise<Channel>>): Promise<{ ok: true; channel: Channel } | { ok: false; errors: unknown[] }> {
  return new Promise((resolve) => {
    let won = false;
    let failed = 0;
    const errors: unknown[] = [];
    dials.forEach((p, i) => {
      p.then(
        (ch) => {
          if (won) return ch.close(1000, 'another server took the session');
          won = true;
          resolve({ ok: true, channel: ch });
        },
        (err: unknown) => {
          errors[i] = err;
          if (++failed === dials.length && !won) resolve({ ok: false, errors });
        },
      );
    });
  });
}

/** Whether two server URLs name the same host and port (null when one is not a URL). */
function sameServer(a: string, b: string): boolean | null {
  try {
    const x = new URL(a);
    const y = new URL(b);
    const port = (u: URL) => u.port || (u.protocol === 'https:' || u.protocol === 'wss:' ? '443' : '80');
    return x.hostname === y.hostname && port(x) === port(y);
  } catch {
    return null;
  }
}
