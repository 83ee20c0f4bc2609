import { open } from 'node:fs/promises';
import { Client, type ClientOptions } from '../client.js';
import { CliError, EXIT, isCliError } from '../exit.js';
import { jsonLine, type Format } from '../format.js';
import { table } from '../table.js';
import { CERT_LIMITS, certHostProblem } from '../../server/cert-check.js';
import type { CertView } from '../../server/certs.js';

/** At most `max` + 1 bytes of `file` as text (an endless file is not read whole). */
async function readBounded(file: string, max: number, what: string): Promise<string> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    throw new CliError(EXIT.invalid, `${what} ${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    const buf = Buffer.alloc(max + 1);
    let size = 0;
    while (size < buf.length) {
      const { bytesRead } = await fh.read(buf, size, buf.length - size, null);
      if (bytesRead === 0) break;
      size += bytesRead;
    }
    if (size > max) throw new CliError(EXIT.invalid, `${what} ${file}: larger than ${max / 1024} KiB`);
    return buf.subarray(0, size).toString('utf8');
  } catch (err) {
    if (isCliError(err)) throw err;
    throw new CliError(EXIT.invalid, `${what} ${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/**
 * `orca cert set HOST --cert FILE --key FILE` (SPEC §3.12): a manual certificate for a route with
 * tls = "manual". The server checks it (PEM, key matches, valid now, valid for HOST — a wildcard
 * certificate covers its sub-domains) and refuses with exit 2 saying what is wrong.
 */
export async function set(g: ClientOptions, hostArg: string, opts: { cert: string; key: string }): Promise<void> {
  const host = hostArg.toLowerCase();
  const bad = certHostProblem(host);
  if (bad) throw new CliError(EXIT.invalid, `host "${hostArg.slice(0, 253)}": ${bad}`);
  const cert = await readBounded(opts.cert, CERT_LIMITS.certBytes, '--cert');
  const key = await readBounded(opts.key, CERT_LIMITS.keyBytes, '--key');
  const r = await new Client(g).json<{ cert?: CertView }>('PUT', `/v1/certs/${encodeURIComponent(host)}`, { cert, key });
  const c = r.cert;
  process.stdout.write(`cert/${host} set${c?.issuer ? ` (issuer ${c.issuer}, valid until ${c.notAfter})` : ''}\n`);
}

/** `orca certs [-o table|json]`; JSON: `{"certs":[{"host","issuer","notAfter","status","reason"}]}`. */
export async function certs(g: ClientOptions, opts: { output?: Format }): Promise<void> {
  const body = await new Client(g).json<{ certs: CertView[] }>('GET', '/v1/certs');
  if (opts.output === 'json') {
    process.stdout.write(jsonLine({ certs: body.certs.map((c) => ({ host: c.host, issuer: c.issuer, notAfter: c.notAfter, status: c.status, reason: c.reason, source: c.source, ...(c.next ? { next: c.next } : {}) })) }));
    return;
  }
  process.stdout.write(
    table(
      ['HOST', 'STATUS', 'SOURCE', 'ISSUER', 'NOT AFTER', 'REASON'],
      body.certs.map((c) => [c.host, c.status, c.source ?? '-', c.issuer ?? '-', c.notAfter ? `${c.notAfter.slice(0, 16)}Z` : '-', c.reason ?? '-']),
    ),
  );
}
