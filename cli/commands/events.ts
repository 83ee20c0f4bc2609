import { Client, type ClientOptions } from '../client.js';
import { CliError, EXIT } from '../exit.js';
import { drained } from '../drain.js';
import { parseDuration } from '../duration.js';
import { systemClock } from '../../core/clock.js';
import type { EventRecord } from '../../store/types.js';

/**
 * `orca events [-f] [--service S] [--since DURATION] [-o table|json]` (`text` is accepted for
 * table). `-o json` is JSON Lines: one event object a line, as the server sends it.
 */
export async function events(g: ClientOptions, opts: { follow?: boolean; service?: string; since?: string; output: string }): Promise<void> {
  const q = new URLSearchParams();
  if (opts.since !== undefined) {
    const ms = parseDuration(opts.since);
    if (ms === undefined) throw new CliError(EXIT.invalid, `--since: "${opts.since}" is not a duration like 90s, 10m, 1h30m`);
    q.set('since', String(systemClock.now() - ms));
  }
  if (opts.service) q.set('service', opts.service);
  if (opts.follow) q.set('follow', '1');
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());
  const res = await new Client(g).request('GET', `/v1/events?${q}`, undefined, abort.signal);
  let buf = '';
  const decoder = new TextDecoder();
  try {
    for await (const chunk of res.body) {
      buf += decoder.decode(chunk as Uint8Array, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim() && !process.stdout.write(opts.output === 'json' ? line + '\n' : text(JSON.parse(line) as EventRecord))) {
          // Backpressure: while stdout is full, the server's stream is not read.
          await drained(process.stdout, abort.signal);
        }
      }
    }
  } catch (err) {
    if (!abort.signal.aborted) throw err;
  }
}

function text(e: EventRecord): string {
  const who = [e.service, e.instance].filter(Boolean).join('/') || '-';
  const msg = e.message ? ` — ${e.message}` : '';
  return `${e.time}  ${e.reconciler.padEnd(9)} ${(e.node ?? '-').padEnd(10)} ${e.action.padEnd(17)} ${who}  reason=${e.reason} outcome=${e.outcome} (${e.durationMs} ms)${msg}\n`;
}
