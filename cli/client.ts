import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { homedir } from 'node:os';
import { CliError, EXIT } from './exit.js';

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
    if (err instanceof CliError) throw err;
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
  private readonly ca: { pem: string; path: string } | undefined;

  constructor(o: ClientOptions) {
    this.api = resolveApi(o);
    this.token = resolveToken(o);
    this.ca = this.api.startsWith('https:') ? resolveCaCert(o) : undefined;
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
      const tls = url.protocol === 'https:' ? tlsFailure(err, this.api, this.ca) : null;
      if (tls) throw tls;
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
