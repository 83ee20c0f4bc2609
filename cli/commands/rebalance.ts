import { Client, type ClientOptions } from '../client.js';
import { CliError, EXIT } from '../exit.js';
import { jsonLine } from '../format.js';

/** A progress line longer than this is not one the server sends: the answer is refused. */
const MAX_LINE_CHARS = 64 * 1024;

interface Move {
  service: string;
  slot: number;
  from: string;
  to: string;
}
interface Moved extends Move {
  instance: string | null;
  readyMs: number;
  goneMs: number;
}
interface Failed extends Move {
  reason: string;
  movedBack: boolean;
}

/**
 * `orca rebalance [SERVICE] [-o table|json]`: moves replicas start-first, one at a time, until
 * every service (or SERVICE) is spread as the scheduler would place it fresh; slots with volumes
 * stay. Table output says each move as it starts and ends; JSON is one document at the end:
 * `{"moved":[{"service","slot","from","to","instance","readyMs","goneMs"}],"failed":null|{"service","slot","from","to","reason","movedBack"},"stay":[…]}`.
 * Exit 0 when spread (nothing to do included), 1 when a move failed or the rebalance stopped
 * short (an unknown service too, as `orca status`), 2 usage, 3 server unreachable.
 */
export async function rebalance(g: ClientOptions, service: string | undefined, opts: { output: string }): Promise<void> {
  const json = opts.output === 'json';
  const abort = new AbortController();
  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
    abort.abort();
  };
  process.once('SIGINT', onSigint);
  const say = (text: string) => {
    if (!json) process.stdout.write(text);
  };
  const moved: Moved[] = [];
  let failed: Failed | null = null;
  let stay: string[] = [];
  let done = false;
  let stopped: string | null = null;
  let error: string | null = null;
  try {
    const res = await new Client(g).request('POST', '/v1/rebalance', service === undefined ? {} : { service }, abort.signal);
    for await (const line of lines(res.body)) {
      const p = parse(line);
      if (!p) continue;
      switch (p.event) {
        case 'moving':
          say(`moving ${slotOf(p)} from ${str(p.from)} to ${str(p.to)} …\n`);
          break;
        case 'moved': {
          const m: Moved = { ...moveOf(p), instance: typeof p.instance === 'string' ? p.instance : null, readyMs: num(p.readyMs), goneMs: num(p.goneMs) };
          moved.push(m);
          say(`moved ${slotOf(m)} from ${m.from} to ${m.to}: ${m.instance ?? 'its new instance'} ready in ${secs(m.readyMs)}, the old one gone ${secs(m.goneMs)} later\n`);
          break;
        }
        case 'failed':
          failed = { ...moveOf(p), reason: str(p.reason), movedBack: p.movedBack === true };
          break;
        case 'done':
          done = true;
          stay = Array.isArray(p.stay) ? p.stay.map(str) : [];
          stopped = typeof p.stopped === 'string' ? p.stopped : null;
          break;
        case 'error':
          error = str(p.message);
          break;
      }
    }
  } catch (err) {
    if (!interrupted) throw err;
  } finally {
    process.off('SIGINT', onSigint);
  }
  if (json) process.stdout.write(jsonLine({ moved, failed, stay }));
  else if (done && !stopped) {
    const what = service === undefined ? 'every service is spread' : `service "${service}" is spread`;
    process.stdout.write(moved.length === 0 ? `nothing to rebalance: ${what}\n` : `rebalanced: ${moved.length} ${moved.length === 1 ? 'replica' : 'replicas'} moved; ${what}\n`);
    if (stay.length > 0) process.stdout.write(`slots with volumes stay where their data is: ${stay.join(', ')}\n`);
  }
  if (interrupted) throw new CliError(EXIT.failed, 'interrupted: no further move starts; a move under way completes on its own (orca events shows it)');
  const f = failed as Failed | null;
  if (f) throw new CliError(EXIT.failed, `${f.service}/${f.slot} could not move from ${f.from} to ${f.to}: ${f.reason}`);
  if (error !== null) throw new CliError(EXIT.failed, `the rebalance failed on the server: ${error}`);
  if (stopped !== null) throw new CliError(EXIT.failed, `the rebalance stopped: ${stopped}`);
  if (!done) throw new CliError(EXIT.failed, 'the server ended the rebalance without saying it was done (orca events shows what moved)');
}

/** The body's lines, each at most MAX_LINE_CHARS. */
async function* lines(body: AsyncIterable<Buffer>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of body) {
    buf += decoder.decode(chunk as Uint8Array, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      yield buf.slice(0, nl);
      buf = buf.slice(nl + 1);
    }
    if (buf.length > MAX_LINE_CHARS) throw new CliError(EXIT.failed, `the server sent a progress line longer than ${MAX_LINE_CHARS} characters`);
  }
  if (buf.trim()) yield buf;
}

function parse(line: string): Record<string, unknown> | null {
  if (!line.trim()) return null;
  try {
    const v = JSON.parse(line) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    throw new CliError(EXIT.failed, `the server sent a progress line that is not JSON: ${line.slice(0, 80)}`);
  }
}

const str = (v: unknown): string => (typeof v === 'string' ? v : String(v)).replace(/[\x00-\x1f\x7f]/g, '?');
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
const moveOf = (p: Record<string, unknown>): Move => ({ service: str(p.service), slot: num(p.slot), from: str(p.from), to: str(p.to) });
const slotOf = (p: Record<string, unknown> | Move): string => `${str(p.service)}/${num(p.slot)}`;
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
