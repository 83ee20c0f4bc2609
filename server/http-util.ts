import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorMessage, fail, ok, OrcaError, type ErrorCode, type Result } from '../core/errors.js';

export const MAX_BODY_BYTES = 8 * 1024 * 1024;

/**
 * The one table from error code to HTTP status: every OrcaError that reaches the API is
 * answered with its code's status (a Record, so a new code cannot be forgotten here).
 */
export const HTTP_STATUS_OF: Readonly<Record<ErrorCode, number>> = {
  ORCA_MANIFEST_INVALID: 400,
  ORCA_USAGE: 400,
  ORCA_UNAUTHORIZED: 401,
  ORCA_FORBIDDEN: 403,
  ORCA_NOT_FOUND: 404,
  ORCA_CONFLICT: 409,
  ORCA_STORE_LOCKED: 503,
  ORCA_STORE_CORRUPT: 500,
  ORCA_STORE_UNAVAILABLE: 503,
  ORCA_NOT_LEADER: 503,
  // A node's Docker, asked through its agent: the server is a gateway to it.
  ORCA_RUNTIME_UNAVAILABLE: 503,
  ORCA_RUNTIME_NOT_FOUND: 404,
  ORCA_RUNTIME_CONFLICT: 409,
  ORCA_RUNTIME_FAILED: 502,
  ORCA_IMAGE_MISSING: 409,
  ORCA_SERVER_UNREACHABLE: 503,
  ORCA_TIMEOUT: 504,
  ORCA_INTERNAL: 500,
};

/** An error answered to an API client: a status, a typed code, a message and maybe a list of problems. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly errors?: string[],
  ) {
    super(message);
  }

  /** An error whose status is its code's (HTTP_STATUS_OF). */
  static of(code: ErrorCode, message: string, errors?: string[]): HttpError {
    return new HttpError(HTTP_STATUS_OF[code], code, message, errors);
  }

  /** Any thrown value as an answer: an HttpError as is, an OrcaError by its code, anything else 500. */
  static from(err: unknown): HttpError {
    if (err instanceof HttpError) return err;
    if (err instanceof OrcaError) return HttpError.of(err.code, err.message);
    return HttpError.of('ORCA_INTERNAL', errorMessage(err) || 'internal error');
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendError(res: ServerResponse, err: HttpError): void {
  sendJson(res, err.status, { error: err.code, message: err.message, ...(err.errors ? { errors: err.errors } : {}) });
}

/** True when a Content-Type header says application/json (parameters such as charset allowed). */
export function isJsonContentType(header: string | undefined): boolean {
  return (header ?? '').split(';')[0]?.trim().toLowerCase() === 'application/json';
}

/**
 * Why a request's body is not taken, or null: a Content-Type other than application/json, or a
 * body without a Content-Type (answered 415). A browser may send text/plain, form and multipart
 * bodies to any site without asking first; a JSON body it sends cross-site only after a CORS
 * preflight, which this API never grants — so no other site's page can post to it.
 */
export function bodyTypeProblem(req: Pick<IncomingMessage, 'headers'>): string | null {
  const type = req.headers['content-type'];
  if (type !== undefined) return isJsonContentType(type) ? null : `Content-Type "${excerpt(type, 60)}" is not accepted: send the body as JSON (Content-Type: application/json)`;
  const length = req.headers['content-length'];
  const hasBody = (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
  return hasBody ? 'a request body needs Content-Type: application/json' : null;
}

/**
 * Reads a JSON body of at most `maxBytes` (default MAX_BODY_BYTES; more is 413); 415 for a body
 * that does not say it is JSON (bodyTypeProblem), before a byte of it is read; 400 on anything
 * that is not a JSON object.
 */
export async function readJson(req: IncomingMessage, maxBytes = MAX_BODY_BYTES): Promise<Record<string, unknown>> {
  const badType = bodyTypeProblem(req);
  if (badType) throw new HttpError(415, 'ORCA_USAGE', badType);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw new HttpError(413, 'ORCA_USAGE', `request body larger than ${maxBytes} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  try {
    const v = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    /* fall through */
  }
  throw new HttpError(400, 'ORCA_USAGE', 'request body must be a JSON object');
}

/** Parses a non-negative integer query parameter; 400 when malformed. */
export function intParam(url: { searchParams: URLSearchParams }, name: string): number | undefined {
  const v = url.searchParams.get(name);
  if (v === null || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new HttpError(400, 'ORCA_USAGE', `${name}: must be a whole number ≥ 0`);
  return n;
}

export function boolParam(url: { searchParams: URLSearchParams }, name: string): boolean {
  const v = url.searchParams.get(name);
  return v === '1' || v === 'true';
}

/** The parts of a request target the API routes on. */
export interface Target {
  pathname: string;
  searchParams: URLSearchParams;
}

/** Longest request target accepted (Node's header limit bounds it too). */
export const MAX_TARGET_CHARS = 8 * 1024;

/**
 * Parses a request target (origin-form `/path?q`, or absolute-form `http://host:port/path`)
 * into a Result; never throws. Bad ports, hosts or schemes, and anything that is not a path,
 * are errors that say what was wrong (the caller answers 400).
 */
export function parseTarget(raw: string | undefined): Result<Target, string> {
  const text = raw ?? '';
  if (text.length > MAX_TARGET_CHARS) return fail(`request target longer than ${MAX_TARGET_CHARS} characters`);
  if (!text.startsWith('/') && !/^https?:\/\//i.test(text)) return fail(`malformed request target "${excerpt(text)}": expected a path`);
  try {
    const url = new URL(text, 'http://orca');
    return ok({ pathname: url.pathname, searchParams: url.searchParams });
  } catch {
    return fail(`malformed request target "${excerpt(text)}"`);
  }
}

/** decodeURIComponent as a Result: bad percent-encoding (`%E0%A4%A`) is an error, not a throw. */
export function decodePathParam(raw: string): Result<string, string> {
  try {
    return ok(decodeURIComponent(raw));
  } catch {
    return fail(`bad percent-encoding in "${excerpt(raw)}"`);
  }
}

/**
 * What is wrong with a request's headers that Node's parser lets through, or null: a duplicate
 * Host or Authorization (which one would count is ambiguous).
 */
export function headerProblem(req: Pick<IncomingMessage, 'rawHeaders'>): string | null {
  let host = 0;
  let auth = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = (req.rawHeaders[i] ?? '').toLowerCase();
    if (name === 'host') host++;
    else if (name === 'authorization') auth++;
  }
  if (host > 1) return 'duplicate Host header';
  if (auth > 1) return 'duplicate Authorization header';
  return null;
}

/** A short, printable excerpt of hostile text for an error message or a log line. */
export function excerpt(text: string, max = 80): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length <= max ? clean : `${clean.slice(0, max)}…`;
}
