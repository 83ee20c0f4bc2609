import { chmod, open, rename, writeFile } from 'node:fs/promises';
import { join as joinPath } from 'node:path';
import { OrcaError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { fetchPinnedCa } from '../protocol/tls-trust.js';
import { NO_CA_HASH, parseCredential, parseJoinToken } from '../server/join-tokens.js';

/** Where an agent keeps its node credential (SPEC §3.10), mode 0600. */
export const CREDENTIAL_FILE = 'node.credential';
/** Longest credential file or token file read. */
const MAX_FILE_BYTES = 4096;
/** A join answer is small. */
const MAX_ANSWER_BYTES = 16 * 1024;
const JOIN_TIMEOUT_MS = 10_000;

/** What node.credential holds: the credential, its node, and the CA hash it was pinned with. */
export interface StoredCredential {
  node: string;
  credential: string;
  /** The CA fingerprint from the join token; every later TLS dial checks the server against it. */
  caHash: string;
}

/** At most MAX_FILE_BYTES of a file as UTF-8 (an endless file is not read whole); null if it does not exist. */
export async function readBounded(path: string): Promise<string | null> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new OrcaError('ORCA_USAGE', `${path}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    const buf = Buffer.alloc(MAX_FILE_BYTES + 1);
    let size = 0;
    while (size < buf.length) {
      const { bytesRead } = await fh.read(buf, size, buf.length - size, null);
      if (bytesRead === 0) break;
      size += bytesRead;
    }
    if (size > MAX_FILE_BYTES) throw new OrcaError('ORCA_USAGE', `${path}: larger than ${MAX_FILE_BYTES} bytes: not a token`);
    return buf.subarray(0, size).toString('utf8');
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** The agent's stored credential, or null when it has none. Throws ORCA_USAGE for a file that is not one (never quoting it). */
export async function readCredential(dataDir: string): Promise<StoredCredential | null> {
  const path = joinPath(dataDir, CREDENTIAL_FILE);
  const text = await readBounded(path);
  if (text === null) return null;
  let v: Partial<StoredCredential> = {};
  try {
    v = JSON.parse(text) as Partial<StoredCredential>;
  } catch {
    /* checked below */
  }
  const c = parseCredential(v?.credential);
  if (!c.ok || v.node !== c.value.node || typeof v.caHash !== 'string' || !/^[0-9a-f]{64}$/.test(v.caHash)) {
    throw new OrcaError('ORCA_USAGE', `${path} is not a node credential: remove it and join again with a new token (orca token create)`);
  }
  return { node: c.value.node, credential: v.credential as string, caHash: v.caHash };
}

/** Writes node.credential (0600) so that a crash leaves the old file or the new one, never half of one. */
export async function writeCredential(dataDir: string, cred: StoredCredential): Promise<void> {
  const path = joinPath(dataDir, CREDENTIAL_FILE);
  const tmp = `${path}.tmp`;
  await writeFile(tmp, JSON.stringify(cred) + '\n', { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}

const isTls = (u: URL) => u.protocol === 'https:' || u.protocol === 'wss:';

/** The API base (http/https) of a join URL (ws/wss mapped). */
function apiBase(url: URL): URL {
  const scheme = isTls(url) ? 'https:' : 'http:';
  return new URL(`${scheme}//${url.host}`);
}

/**
 * The server's CA, checked against the pin (protocol/tls-trust.ts: a handshake that sends no
 * byte, the presented chain must hold the pinned CA and that CA must have signed the server's
 * certificate). Throws ORCA_UNAUTHORIZED (retrying cannot help) when the token has no CA hash or
 * the server does not present the pinned CA (another server, or another cluster's CA, on that
 * address); a network failure is a plain Error (worth retrying).
 */
export async function pinnedCa(url: URL, caHash: string): Promise<string> {
  if (caHash === NO_CA_HASH) {
    throw new OrcaError('ORCA_UNAUTHORIZED', `the join token carries no CA hash (it was made by a server without TLS), so ${url.host} cannot be verified: ask for a token made after TLS was set up, or join over http:// on a trusted network`);
  }
  try {
    return await fetchPinnedCa(url, caHash);
  } catch (err) {
    const m = (err as Error).message;
    // fetchPinnedCa says "TLS: …" for a chain that does not match the pin, and for a timeout.
    if (!m.startsWith('TLS: ') || m.startsWith('TLS: no handshake')) throw err;
    throw new OrcaError('ORCA_UNAUTHORIZED', `the server at ${url.host} is not the one the join token pins (CA sha256 ${caHash.slice(0, 16)}…): ${m.slice(5)}; not connecting`);
  }
}

/**
 * Exchanges a join token for a node credential at POST /v1/join (the server's API, over the
 * same TLS as the session). Over https the server is checked against the token's CA hash
 * before a byte is sent; over http nothing can be checked (the caller warns). A refusal
 * (expired, used up, removed, unknown, name taken) is an OrcaError ORCA_UNAUTHORIZED with the
 * server's reason; a network failure is a plain Error (worth retrying).
 */
export async function exchangeToken(o: { join: URL; token: string; node: string; caFor?: (caHash: string) => Promise<string> }): Promise<StoredCredential> {
  const t = parseJoinToken(o.token);
  if (!t.ok) throw new OrcaError('ORCA_UNAUTHORIZED', t.errors);
  const base = apiBase(o.join);
  const ca = isTls(base) ? await (o.caFor ?? ((h: string) => pinnedCa(base, h)))(t.value.caHash) : undefined;
  const body = JSON.stringify({ token: o.token.trim(), node: o.node });
  const mod = await import(isTls(base) ? 'node:https' : 'node:http');
  const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = mod.request(
      new URL('/v1/join', base),
      {
        method: 'POST',
        timeout: JOIN_TIMEOUT_MS,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        ...(ca ? { ca, rejectUnauthorized: true } : {}),
      },
      (res: import('node:http').IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_ANSWER_BYTES) res.destroy(new Error('join answer too large'));
          else chunks.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`join request to ${base.host} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
  let answer: { credential?: unknown; message?: unknown } = {};
  try {
    answer = JSON.parse(text) as typeof answer;
  } catch {
    /* below */
  }
  if (status === 200) {
    const c = parseCredential(answer.credential);
    if (!c.ok || c.value.node !== o.node) throw new Error(`the server at ${base.host} answered the join with no usable credential`);
    return { node: o.node, credential: answer.credential as string, caHash: t.value.caHash };
  }
  const why = typeof answer.message === 'string' ? answer.message.replace(/[^\x20-\x7e]/g, '?').slice(0, 300) : `HTTP ${status}`;
  if (status === 400 || status === 401 || status === 403 || status === 409) throw new OrcaError('ORCA_UNAUTHORIZED', `the server refused the join token: ${why}`);
  if (status === 404) throw new OrcaError('ORCA_UNAUTHORIZED', `the server at ${base.host} does not take join tokens (404): it runs an older orca, pass its admin token instead`);
  throw new Error(`the join request answered HTTP ${status}: ${why}`);
}

/** What a dial presents: the bearer token, and the CA to trust for wss. */
export interface DialAuth {
  /** The bearer (and CA) for the next dial; may exchange the join token first. Throws as exchangeToken. */
  next(): Promise<{ bearer: string; ca?: string }>;
  /**
   * The server answered 401 to `bearer`. Resolves with true when it is worth dialling again at
   * once (the join token was exchanged for a new credential), else with the error to give up with.
   */
  refused(bearer: string): Promise<true | OrcaError>;
}

/**
 * The credentials of `orca agent` (SPEC §3.10), in order: the node credential in its data
 * directory; else the join token, exchanged once for a credential (then kept); else the admin
 * token. A credential the server refuses (revoked by `orca nodes rm`) is replaced only when a
 * join token was given; otherwise the agent needs a new token and says so.
 */
export function agentAuth(o: { join: URL; dataDir: string; node: string; joinToken?: string; adminToken?: string; log: Logger }): DialAuth {
  let held: StoredCredential | null | undefined;
  let exchanged = false;
  const tls = isTls(o.join);
  // The CA the pin matched, fetched once per pin: the same hash is the same certificate, so a
  // redial (and the session right after the exchange) needs no second pin-check handshake.
  let pinned: { hash: string; pem: string } | null = null;
  const caFor = async (hash: string): Promise<string> => {
    if (pinned?.hash !== hash) pinned = { hash, pem: await pinnedCa(apiBase(o.join), hash) };
    return pinned.pem;
  };
  return {
    async next() {
      if (held === undefined) held = await readCredential(o.dataDir);
      if (!held && o.joinToken && !exchanged) {
        if (!tls) o.log.warn({ join: o.join.host }, 'joining over plaintext: nothing was verified (the server is not checked against the token, and the token and the credential cross the network in the clear)');
        held = await exchangeToken({ join: o.join, token: o.joinToken, node: o.node, caFor });
        await writeCredential(o.dataDir, held);
        exchanged = true;
        o.log.info({ node: o.node, file: joinPath(o.dataDir, CREDENTIAL_FILE) }, 'joined: node credential stored');
      }
      if (held) return { bearer: held.credential, ...(tls ? { ca: await caFor(held.caHash) } : {}) };
      if (o.adminToken) return { bearer: o.adminToken };
      throw new OrcaError('ORCA_UNAUTHORIZED', 'no credential: pass a join token (--token-file, $ORCA_JOIN_TOKEN)');
    },
    async refused(bearer) {
      if (held && bearer === held.credential) {
        if (o.joinToken && !exchanged) {
          o.log.warn({ node: o.node }, 'the server refused this node\'s credential; exchanging the join token for a new one');
          held = null;
          return true;
        }
        return new OrcaError('ORCA_UNAUTHORIZED', `the server no longer accepts the credential of node ${o.node} (revoked by orca nodes rm, or another cluster): this agent needs a new join token (orca token create on the server, then orca agent --token-file)`);
      }
      return new OrcaError('ORCA_UNAUTHORIZED', `the server at ${o.join.host} refused the token (401): pass the cluster's token (--token, $ORCA_TOKEN, or cluster.token in --data-dir), or a join token`);
    },
  };
}
