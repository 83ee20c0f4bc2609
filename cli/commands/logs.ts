import { Client, type ClientOptions } from '../client.js';
import { CliError, EXIT } from '../exit.js';
import { drained } from '../drain.js';

/** `orca logs SERVICE [--tail N] [-f] [--instance ID] [--previous]` */
export async function logs(g: ClientOptions, service: string, opts: { tail?: string; follow?: boolean; instance?: string; previous?: boolean }): Promise<void> {
  const q = new URLSearchParams();
  if (opts.tail !== undefined) {
    if (!/^\d+$/.test(opts.tail)) throw new CliError(EXIT.invalid, `--tail: must be a whole number, got "${opts.tail}"`);
    q.set('tail', opts.tail);
  }
  if (opts.follow) q.set('follow', '1');
  if (opts.instance) q.set('instance', opts.instance);
  if (opts.previous) q.set('previous', '1');
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());
  const res = await new Client(g).request('GET', `/v1/services/${encodeURIComponent(service)}/logs?${q}`, undefined, abort.signal);
  const notice = res.headers['x-orca-notice'];
  if (typeof notice === 'string') process.stderr.write(`orca: ${safeDecode(notice)}\n`);
  try {
    // Backpressure: while stdout (a pipe to a slow reader) is full, the server's stream is not read.
    for await (const chunk of res.body) if (!process.stdout.write(chunk as Uint8Array)) await drained(process.stdout, abort.signal);
  } catch (err) {
    if (!abort.signal.aborted) throw err;
  }
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
