import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../core/clock.js';
import { errorMessage } from '../core/errors.js';
import { excerpt, HttpError, readJson } from './http-util.js';
import { StreamWriter } from './stream-writer.js';
import type { RebalanceProgress } from './rebalance.js';

/** The body of POST /v1/rebalance is `{}` or `{"service": NAME}`: small. */
const BODY_BYTES = 4096;
/** A service name longer than this exists nowhere (names are DNS labels): it is only quoted, cut. */
const NAME_CHARS = 253;

export interface RebalanceApiDeps {
  rebalance: (service: string | undefined, signal: AbortSignal, progress: (p: RebalanceProgress) => Promise<void>) => Promise<RebalanceProgress>;
  clock: Clock;
  /** A reader that takes nothing for this long is given up on (the rebalance stops after its move under way). */
  stallMs: number;
}

/**
 * POST /v1/rebalance `{"service"?: NAME}` (`orca rebalance [SERVICE]`): answers 404 for an
 * unknown service and 409 while another rebalance runs, as any API error; otherwise 200 and JSON
 * Lines, one per progress line of server/rebalance.ts as it happens (`moving`, `moved`, then
 * `done`, or `failed`; `{"event":"error","message"}` if the server itself failed mid-way). The
 * client going away stops the rebalance once its move under way is done.
 */
export async function rebalanceHandler(deps: RebalanceApiDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readJson(req, BODY_BYTES);
  const service = body.service;
  if (service !== undefined && (typeof service !== 'string' || service.length === 0)) throw HttpError.of('ORCA_USAGE', 'service: must be a service name');
  if (typeof service === 'string' && service.length > NAME_CHARS) throw HttpError.of('ORCA_NOT_FOUND', `service "${excerpt(service)}" not found`);
  const abort = new AbortController();
  res.once('close', () => abort.abort());
  let writer: StreamWriter | null = null;
  const send = async (line: unknown): Promise<void> => {
    if (!writer) {
      res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
      res.flushHeaders();
      writer = new StreamWriter(res, deps.clock, deps.stallMs);
    }
    if (!(await writer.write(JSON.stringify(line) + '\n'))) abort.abort();
  };
  try {
    await deps.rebalance(service, abort.signal, send);
  } catch (err) {
    // Before the first line, the API answers it by its code (404, 409…); after, the stream says it.
    if (!writer) throw err;
    await send({ event: 'error', message: errorMessage(err) });
  }
  (writer as StreamWriter | null)?.finish();
}
