import { open } from 'node:fs/promises';
import { Client, type ClientOptions } from '../client.js';
import { CliError, EXIT } from '../exit.js';
import { jsonLine, type Format } from '../format.js';
import { ago, table } from '../table.js';
import { systemClock } from '../../core/clock.js';
import { MAX_SECRET_BYTES, secretNameProblem, secretValueProblem } from '../../server/secrets.js';
import type { SecretListing, SecretSetResult } from '../../server/control-plane.js';

function checkName(name: string): void {
  const bad = secretNameProblem(name);
  if (bad) throw new CliError(EXIT.invalid, `secret name "${name.slice(0, 63)}": ${bad}`);
}

/** At most MAX_SECRET_BYTES + 1 bytes of `file` (an endless file such as /dev/zero is not read whole). */
async function readFileBounded(file: string): Promise<Buffer> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    throw new CliError(EXIT.invalid, `${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    const buf = Buffer.alloc(MAX_SECRET_BYTES + 1);
    let size = 0;
    while (size < buf.length) {
      const { bytesRead } = await fh.read(buf, size, buf.length - size, null);
      if (bytesRead === 0) break;
      size += bytesRead;
    }
    return buf.subarray(0, size);
  } catch (err) {
    throw new CliError(EXIT.invalid, `${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** At most MAX_SECRET_BYTES + 1 bytes of stdin; stops reading once past the limit. */
async function readStdinBounded(): Promise<Buffer> {
  if (process.stdin.isTTY) process.stderr.write('reading the value from stdin (end it with Ctrl-D; a trailing newline is kept)\n');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    const b = chunk as Buffer;
    chunks.push(b);
    size += b.length;
    if (size > MAX_SECRET_BYTES) {
      process.stdin.destroy();
      break;
    }
  }
  return Buffer.concat(chunks).subarray(0, MAX_SECRET_BYTES + 1);
}

/**
 * `orca secret set NAME [-f FILE]`: the value from FILE or stdin, byte for byte (a trailing
 * newline included), at most 64 KiB. Prints what changed and which services roll out; never the value.
 */
export async function set(g: ClientOptions, name: string, opts: { file?: string }): Promise<void> {
  checkName(name);
  const value = opts.file !== undefined ? await readFileBounded(opts.file) : await readStdinBounded();
  const bad = secretValueProblem(value);
  if (bad) throw new CliError(EXIT.invalid, `secret "${name}": ${bad} (from ${opts.file ?? 'stdin'})`);
  const r = await new Client(g).json<SecretSetResult>('PUT', `/v1/secrets/${encodeURIComponent(name)}`, { value: value.toString('base64') });
  process.stdout.write(`secret/${r.name} ${r.change} (version ${r.version})\n`);
  for (const s of r.rolled) process.stdout.write(`service/${s.service} configured (revision ${s.revision}: secret ${r.name} changed)\n`);
}

/** `orca secret ls [-o table|json]`; JSON: `{"secrets":[{"name","version","updated","usedBy":[…]}]}`. */
export async function ls(g: ClientOptions, opts: { output?: Format }): Promise<void> {
  const body = await new Client(g).json<{ secrets: SecretListing[] }>('GET', '/v1/secrets');
  if (opts.output === 'json') {
    process.stdout.write(jsonLine({ secrets: body.secrets.map((s) => ({ name: s.name, version: s.version, updated: s.updated, usedBy: s.usedBy })) }));
    return;
  }
  const now = systemClock.now();
  process.stdout.write(table(['NAME', 'VERSION', 'UPDATED', 'USED BY'], body.secrets.map((s) => [s.name, String(s.version), ago(s.updated, now), s.usedBy.join(',') || '-'])));
}

/** `orca secret rm NAME`: refused (exit 1) while a service uses it. */
export async function rm(g: ClientOptions, name: string): Promise<void> {
  checkName(name);
  await new Client(g).json<{ removed: string }>('DELETE', `/v1/secrets/${encodeURIComponent(name)}`);
  process.stdout.write(`secret/${name} removed\n`);
}
