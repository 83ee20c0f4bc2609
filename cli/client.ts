import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { homedir } from 'node:os';
import { CliError, EXIT, isCliError } from './exit.js';

export interface ClientOptions {
  api?: string;
  token?: string;
  dataDir?: string;
  /** The cluster CA to trust for https:// (`--ca-cert`). */
  caCert?: string;
}

/** A CA file larger than this is not one (a cluster CA is well under 2 KiB). */
const MAX_CA_BYTES = 1024 * 1024;

/**
 * The CA the CLI trusts for an https:// API (SPEC §3.10): `--ca-cert`, else `$ORCA_CA_CERT`, else
 * `<data-dir>/tls/ca.crt` when it exists (on the server's host, its own CA). Undefined when none
 * is there: Node's default roots then apply. A file that was named but cannot be read, or holds
 * no PEM certificate, is a usage error (exit 2).
 */
export function resolveCaCert(o: ClientOptions): { pem: string; path: string } | undefined {
  const named = o.caCert ?? (process.env.ORCA_CA_CERT || undefined);
  const what = o.caCert !== undefined ? '--ca-cert' : 'ORCA_CA_CERT';
  const path = named ?? join(o.dataDir ?? process.env.ORCA_HOME ?? join(homedir(), '.orca'), 'tls', 'ca.crt');
  let pem: string;
  try {
    if (statSync(path).size > MAX_CA_BYTES) throw new CliError(EXIT.invalid, `${what}: ${path} is larger than ${MAX_CA_BYTES / 1024} KiB: not a CA certificate`);
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    if (isCliError(err)) throw err;
    if (named === undefined) return undefined;
    throw new CliError(EXIT.invalid, `${what}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new CliError(EXIT.invalid, `${named === undefined ? 'the cluster CA' : what}: ${path} holds no PEM certificate`);
  return { pem, path };
}

/** Node's codes for a certificate that could not be verified (OpenSSL's X509_V_ERR_* names, and the host name check). */
const CERT_ERROR_RE = /CERT|SIGNATURE|ISSUER|ALTNAME|UNABLE_TO_VERIFY/;

/**
 * The CLI's message for a failed TLS connection, or null when `err` is not about TLS. A server
 * that was reached but could not be trusted (or speaks no TLS) is exit 1, not 3: retrying will
 * not help, the trust has to be fixed (docs/cli.md, exit codes).
 */
export function tlsFailure(err: NodeJS.ErrnoException, api: string, ca: { path: string } | undefined): CliError | null {
  const code = err.code ?? '';
  if (CERT_ERROR_RE.test(code)) {
    const hint = ca
      ? `it was checked against ${ca.path}: is that this cluster's CA? (--ca-cert FILE or ORCA_CA_CERT to name another)`
      : `pass the cluster CA with --ca-cert FILE or ORCA_CA_CERT (the server's <data-dir>/tls/ca.crt)`;
    return new CliError(EXIT.failed, `cannot verify the TLS certificate of the Orca server at ${api}: ${err.message} (${code}); ${hint}`);
  }
  if (code === 'EPROTO' || code.startsWith('ERR_SSL_')) {
    return new CliError(EXIT.failed, `no TLS connection with the Orca server at ${api}: ${err.message.split('\n')[0]} (${code}) (does it serve plaintext? then use http://)`);
  }
  return null;
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
  return resolveApis(o)[0]!;
}

/** Most servers one `--api` / ORCA_API may list. */
const MAX_APIS = 16;

/**
 * The servers to ask, in order (SPEC §3.11): `--api` or `$ORCA_API`, each a URL or a
 * comma-separated list of them (`https://a:6880,https://b:6880`), else http://127.0.0.1:6880.
 * An entry that is not an http(s) URL is a usage error (exit 2) naming it.
 */
export function resolveApis(o: ClientOptions): string[] {
  const raw = o.api ?? process.env.ORCA_API ?? 'http://127.0.0.1:6880';
  const what = o.api !== undefined ? '--api' : 'ORCA_API';
  const list = raw.split(',').map((u) => u.trim()).filter(Boolean);
  if (list.length === 0) throw new CliError(EXIT.invalid, `${what}: no server URL given`);
  if (list.length > MAX_APIS) throw new CliError(EXIT.invalid, `${what}: at most ${MAX_APIS} server URLs`);
  const out: string[] = [];
  for (const u of list) {
    let url: URL;
    try {
      url = new URL(u);
    } catch {
      throw new CliError(EXIT.invalid, `${what}: "${u.slice(0, 200)}" is not a URL (e.g. http://127.0.0.1:6880)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CliError(EXIT.invalid, `${what}: "${u.slice(0, 200)}" is not an http:// or https:// URL`);
    const clean = u.replace(/\/+$/, '');
    if (!out.includes(clean)) out.push(clean);
  }
  return out;
}

/**
 * How long a request keeps trying while the control plane has no leader to answer (a standby's
 * or a deposed leader's 503 ORCA_NOT_LEADER) or, with several servers listed, while none of them
 * can be reached (SPEC §3.11: an apply keeps working through a failover). A single server that
 * cannot be reached fails at once, as before (exit 3).
 */
export const FAILOVER_RETRY_MS = 15_000;

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

/** The whole body as text. Events, not `for await`: the stream's async iterator costs a start-up's worth of compiling. */
function readAll(body: import('node:http').IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let ended = false;
    body.on('data', (c: Buffer) => chunks.push(c));
    body.on('end', () => {
      ended = true;
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    body.on('error', reject);
    // Closed before its end (the server went away mid-body), as `for await` would report it.
    body.on('close', () => ended || reject(Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' })));
  });
}

/**
 * A thin API client over node:http (not fetch: loading undici costs `orca status` ~25 ms of
 * start-up). Maps transport failures to exit 3 and HTTP errors to exit 1 or 2.
 */
export class Client {
  /** The server answering now: the first listed, then whichever last answered. */
  api: string;
  readonly apis: string[];
  private readonly token: string | undefined;
  private readonly ca: { pem: string; path: string } | undefined;
  private readonly retryMs: number;

  constructor(o: ClientOptions & { retryMs?: number }) {
    this.apis = resolveApis(o);
    this.api = this.apis[0]!;
    this.token = resolveToken(o);
    this.ca = this.apis.some((a) => a.startsWith('https:')) ? resolveCaCert(o) : undefined;
    this.retryMs = o.retryMs ?? FAILOVER_RETRY_MS;
  }

  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    return (await this.request(method, path, body)).json<T>();
  }

  /**
   * Performs a request; resolves only for 2xx. With several servers, a server that cannot be
   * reached is passed over for the next; a 503 ORCA_NOT_LEADER (no leader yet) is retried, on
   * every server in turn, for up to FAILOVER_RETRY_MS. A request is only ever sent again when
   * the server refused the connection or answered that it could not take it (nothing was done).
   */
  async request(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<OkResponse> {
    const deadline = Date.now() + this.retryMs;
    let pause = 100;
    for (let round = 0; ; round++) {
      let last: CliError | null = null;
      const start = this.apis.indexOf(this.api);
      for (let i = 0; i < this.apis.length; i++) {
        const api = this.apis[(start + i) % this.apis.length]!;
        const r = await this.attempt(api, method, path, body, signal);
        if (r.ok) {
          this.api = api;
          return r.res;
        }
        if (!r.retry) throw r.error;
        last = r.error;
      }
      // One server, unreachable: exit 3 now, as ever; no leader anywhere yet, or several servers all unreachable: wait and go round again.
      const waitable = last!.exitCode !== EXIT.unreachable || this.apis.length > 1;
      if (!waitable || Date.now() + pause > deadline || signal?.aborted) throw last!;
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(pause * 2, 1000);
    }
  }

  private async attempt(
    api: string,
    method: string,
    path: string,
    body: unknown,
    signal: AbortSignal | undefined,
  ): Promise<{ ok: true; res: OkResponse } | { ok: false; retry: boolean; error: CliError }> {
    try {
      return { ok: true, res: await this.once(api, method, path, body, signal) };
    } catch (err) {
      if (!isCliError(err)) throw err;
      const retry = err.exitCode === EXIT.unreachable || (err as CliError & { notLeader?: boolean }).notLeader === true;
      return { ok: false, retry, error: err };
    }
  }

  private async once(api: string, method: string, path: string, body: unknown, signal: AbortSignal | undefined): Promise<OkResponse> {
    const url = new URL(api + path);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    // process.getBuiltinModule (Node ≥ 20.16) hands over the built-in without Node's ES module
    // loader, which a bundled CLI (dist/cli/orca.cjs) otherwise starts just for this: ~4 ms.
    const name = url.protocol === 'https:' ? 'node:https' : 'node:http';
    const http = (process.getBuiltinModule?.(name) as typeof import('node:http') | undefined) ?? ((await import(name)) as typeof import('node:http'));
    const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      const req = http.request(
        url,
        {
          method,
          signal,
          ...(this.ca ? { ca: this.ca.pem } : {}),
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
      const tls = url.protocol === 'https:' ? tlsFailure(err, api, this.ca) : null;
      if (tls) throw tls;
      throw new CliError(
        EXIT.unreachable,
        `cannot reach the Orca server at ${api}: ${err.code ?? err.message} (is \`orca server\` running? set --api or ORCA_API)`,
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
    const code = status === 400 || status === 413 || status === 415 ? EXIT.invalid : EXIT.failed;
    const err = new CliError(code, lines.join('\n'));
    if (status === 503 && parsed.error === 'ORCA_NOT_LEADER') Object.assign(err, { notLeader: true });
    throw err;
  }
}
