import { Client, type ClientOptions } from '../client.js';
import { CliError, EXIT } from '../exit.js';
import { parseDuration } from '../duration.js';
import { jsonLine, type Format } from '../format.js';
import { table } from '../table.js';
import type { TokenListing } from '../../server/access.js';

/**
 * `orca token create [--ttl D] [--uses N]`: prints the join token alone on stdout (so that
 * `orca token create > join.token` makes a token file); what it allows goes to stderr.
 */
export async function create(g: ClientOptions, opts: { ttl?: string; uses?: string }): Promise<void> {
  let ttlMs: number | undefined;
  if (opts.ttl !== undefined) {
    ttlMs = parseDuration(opts.ttl);
    if (ttlMs === undefined || ttlMs < 1000) throw new CliError(EXIT.invalid, `--ttl: "${opts.ttl.slice(0, 40)}" must be a duration of at least 1s (30m, 24h, 7d, or seconds)`);
  }
  let uses: number | null = null;
  if (opts.uses !== undefined) {
    uses = Number(opts.uses);
    if (!/^\d+$/.test(opts.uses) || !Number.isSafeInteger(uses) || uses < 1) throw new CliError(EXIT.invalid, `--uses: "${opts.uses.slice(0, 40)}" must be a whole number ≥ 1`);
  }
  const r = await new Client(g).json<TokenListing & { token: string }>('POST', '/v1/tokens', { ...(ttlMs !== undefined ? { ttlMs } : {}), uses });
  process.stdout.write(`${r.token}\n`);
  process.stderr.write(`join token ${r.id}: expires ${r.expires}, ${r.uses === null ? 'unlimited uses' : `${r.uses} use${r.uses === 1 ? '' : 's'}`}\n`);
}

/** `orca token ls [-o table|json]`; JSON: `{"tokens":[{"id","created","expires","uses","used","left","state"}]}` (never a secret). */
export async function ls(g: ClientOptions, opts: { output?: Format }): Promise<void> {
  const body = await new Client(g).json<{ tokens: TokenListing[] }>('GET', '/v1/tokens');
  if (opts.output === 'json') {
    process.stdout.write(jsonLine(body));
    return;
  }
  process.stdout.write(
    table(
      ['ID', 'CREATED', 'EXPIRES', 'USED', 'LEFT', 'STATE'],
      body.tokens.map((t) => [t.id, t.created, t.expires, String(t.used), t.left === null ? 'unlimited' : String(t.left), t.state]),
    ),
  );
}

/** `orca token rm ID`: joins with it are refused from now on (nodes that joined with it stay). */
export async function rm(g: ClientOptions, id: string): Promise<void> {
  await new Client(g).json('DELETE', `/v1/tokens/${encodeURIComponent(id)}`);
  process.stdout.write(`token/${id} removed\n`);
}
