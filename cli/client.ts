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

/** A thin API client. Maps transport failures to exit 3 and HTTP errors to exit 1 or 2. */
export class Client {
  readonly api: string;
  private readonly token: string | undefined;

  constructor(o: ClientOptions) {
    this.api = resolveApi(o);
    this.token = resolveToken(o);
  }

  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.request(method, path, body);
    return (await res.json()) as T;
  }

  /** Performs a request; resolves only for 2xx. */
  async request(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(this.api + path, {
        method,
        headers: {
          ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(
        EXIT.unreachable,
        `cannot reach the Orca server at ${this.api}: ${cause?.code ?? cause?.message ?? (err as Error).message} (is \`orca server\` running? set --api or ORCA_API)`,
      );
    }
    if (res.ok) return res;
    let parsed: ErrorBody = {};
    try {
      parsed = (await res.json()) as ErrorBody;
    } catch {
      /* not JSON */
    }
    if (res.status === 401) {
      throw new CliError(EXIT.failed, `the server refused the token (401): pass --token, set ORCA_TOKEN, or point --data-dir at the server's data directory`);
    }
    const lines = parsed.errors?.length ? parsed.errors : [parsed.message ?? `HTTP ${res.status}`];
    const code = res.status === 400 || res.status === 413 ? EXIT.invalid : EXIT.failed;
    throw new CliError(code, lines.join('\n'));
  }
}
