import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { homedir } from 'node:os';
import { CliError, EXIT } from './exit.js';

export interface ClientOptions {
  api?: string;
  token?: string;
  dataDir?: string;
}

/** Token from --token, $ORCA_TOKEN, or `<data-dir>/cluster.token` (data dir: --data-dir, $ORCA_HOME, ~/.orca). */
export function resolveToken(o: ClientOptions): string | undefined {
  if (o.token) return o.token;
  if (process.env.ORCA_TOKEN) return process.env.ORCA_TOKEN;
  const dir = o.dataDir ?? process.env.ORCA_HOME ?? join(homedir(), '.orca');
  try {
    return readFileSync(join(dir, 'cluster.token'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export function resolveApi(o: ClientOptions): string {
  return (o.api ?? process.env.ORCA_API ?? 'http://127.0.0.1:6880').replace(/\/+$/, '');
}

interface ErrorBody {
  error?: string;
  message?: string;
  errors?: string[];
}

/** A response whose status was 2xx: the body as a stream, or read whole. */
export interface OkResponse {
  status: number;
  headers: import('node:http').IncomingHttpHeaders;
  body: AsyncIterable<Buffer>;
  json<T>(): Promise<T>;
}

async function readAll(body: AsyncIterable<Buffer>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * A thin API client over node:http (not fetch: loading undici costs `orca status` ~25 ms of
 * start-up). Maps transport failures to exit 3 and HTTP errors to exit 1 or 2.
 */
export class Client {
  readonly api: string;
  private readonly token: string | undefined;

  constructor(o: ClientOptions) {
    this.api = resolveApi(o);
    this.token = resolveToken(o);
  }

  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    return (await this.request(method, path, body)).json<T>();
  }

  /** Performs a request; resolves only for 2xx. */
  async request(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<OkResponse> {
    const url = new URL(this.api + path);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const http = await import(url.protocol === 'https:' ? 'node:https' : 'node:http');
    const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      const req = http.request(
        url,
        {
          method,
          signal,
          headers: {
            ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
            ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
          },
        },
        resolve,
      );
      req.on('error', reject);
      req.end(payload);
    }).catch((err: NodeJS.ErrnoException) => {
      if (signal?.aborted) throw err;
      throw new CliError(
        EXIT.unreachable,
        `cannot reach the Orca server at ${this.api}: ${err.code ?? err.message} (is \`orca server\` running? set --api or ORCA_API)`,
      );
    });
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300) {
      return { status, headers: res.headers, body: res, json: async <T>() => JSON.parse(await readAll(res)) as T };
    }
    let parsed: ErrorBody = {};
    try {
      parsed = JSON.parse(await readAll(res)) as ErrorBody;
    } catch {
      /* not JSON */
    }
    if (status === 401) {
      throw new CliError(EXIT.failed, `the server refused the token (401): pass --token, set ORCA_TOKEN, or point --data-dir at the server's data directory`);
    }
    const lines = parsed.errors?.length ? parsed.errors : [parsed.message ?? `HTTP ${status}`];
    const code = status === 400 || status === 413 ? EXIT.invalid : EXIT.failed;
    throw new CliError(code, lines.join('\n'));
  }
}
