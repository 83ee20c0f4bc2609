import { open } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { COMPOSE_MAX_BYTES } from '../../manifest/compose/source.js';
import { renderComposeToml } from '../../manifest/compose/render.js';
import { translateCompose } from '../../manifest/compose/translate.js';
import { formatManifestError, parseManifestText } from '../../manifest/parse.js';
import { CliError, EXIT, isCliError } from '../exit.js';

interface Out {
  write(s: string): unknown;
}

/**
 * `orca import compose FILE`: prints the Orca manifest for a Compose file on stdout; on stderr,
 * every key it could not translate (`FILE:LINE: services.web.build: not translated (…)`) and the
 * `orca secret set` commands for the secrets the services name. Needs no server.
 * Exit 0 when a manifest was printed; 2 (CliError) when FILE cannot be read, is not YAML or not
 * a Compose file; 1 when the manifest made does not pass Orca's own validator (a bug here).
 */
export async function importCompose(file: string, io: { stdout: Out; stderr: Out } = process): Promise<void> {
  const text = await readBounded(file);
  const t = translateCompose(text, { file, dir: dirname(file), absDir: resolve(dirname(file)) });
  if (!t.ok) throw new CliError(EXIT.invalid, `${file}${t.line === undefined ? '' : `:${t.line}`}: ${t.message}`);
  const toml = renderComposeToml(t.value.services, file);
  const check = parseManifestText(toml, `${file} (translated)`);
  if (!check.ok) {
    const why = check.errors.map(formatManifestError).join('\n  ');
    throw new CliError(EXIT.failed, `the manifest made from ${file} does not pass Orca's validator (a bug in orca import compose; please report it):\n  ${why}`);
  }
  for (const n of t.value.notes) io.stderr.write(`${file}:${n.line}: ${n.path}: ${n.message}\n`);
  if (t.value.secretCommands.length > 0) {
    io.stderr.write(`\nSecrets to store before orca apply (values are never copied into the manifest):\n`);
    for (const c of t.value.secretCommands) io.stderr.write(`  ${c}\n`);
  }
  io.stdout.write(toml);
}

/** The file's text, reading at most COMPOSE_MAX_BYTES + 1 bytes (an endless file is not read whole). */
async function readBounded(file: string): Promise<string> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    throw new CliError(EXIT.invalid, `${file}: cannot read: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  try {
    const buf = Buffer.alloc(COMPOSE_MAX_BYTES + 1);
    let size = 0;
    while (size < buf.length) {
      const { bytesRead } = await fh.read(buf, size, buf.length - size, null);
      if (bytesRead === 0) break;
      size += bytesRead;
    }
    if (size > COMPOSE_MAX_BYTES) throw new CliError(EXIT.invalid, `${file}: larger than ${COMPOSE_MAX_BYTES / 1024} KiB, the most orca import compose reads`);
    return buf.subarray(0, size).toString('utf8');
  } catch (e) {
    if (isCliError(e)) throw e;
    throw new CliError(EXIT.invalid, `${file}: cannot read: ${(e as NodeJS.ErrnoException).code === 'EISDIR' ? 'is a directory' : (e as Error).message}`);
  } finally {
    await fh.close().catch(() => undefined);
  }
}
