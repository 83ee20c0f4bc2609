import type { ClientOptions } from '../client.js';
import { Client } from '../client.js';
import { readManifests } from '../manifests.js';
import { CliError, EXIT } from '../exit.js';
import { jsonLine, type Format } from '../format.js';
import { sleep, systemClock } from '../../core/clock.js';
import type { ServiceStatus } from '../../server/status.js';
import type { ApplyResult } from '../../server/control-plane.js';

/**
 * `orca apply -f PATH… [--dry-run] [--wait] [--timeout S] [-o table|json]`. With `-o json`,
 * stdout is one document `{"dryRun","results":[{"service","result","revision"}]}` and the
 * progress of `--wait` goes to stderr.
 */
export async function apply(g: ClientOptions, opts: { file: string[]; dryRun?: boolean; wait?: boolean; timeout?: string; output?: Format }): Promise<void> {
  const timeoutSecs = opts.timeout === undefined ? 300 : Number(opts.timeout);
  if (!Number.isFinite(timeoutSecs) || timeoutSecs <= 0) throw new CliError(EXIT.invalid, `--timeout: must be a positive number of seconds, got "${opts.timeout}"`);
  const { files } = await readManifests(opts.file);
  const client = new Client(g);
  const body = await client.json<{ results: ApplyResult[] }>('POST', '/v1/apply', { files, dryRun: opts.dryRun === true });
  if (opts.output === 'json') {
    const results = body.results.map((r) => ({ service: r.service, result: r.action, revision: r.revision }));
    process.stdout.write(jsonLine({ dryRun: opts.dryRun === true, results }));
  } else {
    for (const r of body.results) process.stdout.write(`service/${r.service} ${r.action}${opts.dryRun ? ' (dry run)' : ''}\n`);
  }
  const progress = opts.output === 'json' ? process.stderr : process.stdout;
  if (opts.wait && !opts.dryRun) await waitHealthy(client, body.results, timeoutSecs * 1000, progress);
}

async function waitHealthy(client: Client, results: ApplyResult[], timeoutMs: number, progress: NodeJS.WritableStream): Promise<void> {
  const deadline = systemClock.now() + timeoutMs;
  const last = new Map<string, string>();
  const pending = new Set(results.map((r) => r.service));
  while (pending.size > 0) {
    const { services } = await client.json<{ services: ServiceStatus[] }>('GET', '/v1/status');
    for (const s of services) {
      if (!pending.has(s.name)) continue;
      const live = s.instances.filter((i) => i.state === 'running').length;
      const line = `service/${s.name} revision ${s.revision} ${s.state}: ${s.replicas.ready}/${s.replicas.desired} ready, ${live} instance${live === 1 ? '' : 's'} running`;
      if (last.get(s.name) !== line) progress.write(line + '\n');
      last.set(s.name, line);
      if (s.state === 'healthy' || s.state === 'stopped') pending.delete(s.name);
      else if (s.state === 'rollout-failed') throw new CliError(EXIT.failed, `service/${s.name} rollout failed: ${s.reason ?? 'unknown reason'}`);
    }
    if (pending.size === 0) break;
    if (systemClock.now() > deadline) throw new CliError(EXIT.failed, `timed out waiting for ${[...pending].join(', ')} to become healthy`);
    await sleep(systemClock, 250);
  }
}

/**
 * `orca diff -f PATH… [-o table|json]`: exit 0 without differences, 1 with. With `-o json`:
 * `{"differs","services":[{"service","exists","changes":[{"path","from","to"}]}]}` (`from` is
 * absent for a field that was unset, `to` for one that becomes unset).
 */
export async function diff(g: ClientOptions, opts: { file: string[]; output?: Format }): Promise<void> {
  const { files } = await readManifests(opts.file);
  const body = await new Client(g).json<{ services: Array<{ service: string; exists: boolean; changes: Array<{ path: string; from: unknown; to: unknown }> }> }>(
    'POST',
    '/v1/diff',
    { files },
  );
  if (opts.output === 'json') {
    const differs = body.services.some((s) => !s.exists || s.changes.length > 0);
    process.stdout.write(jsonLine({ differs, services: body.services }));
    process.exitCode = differs ? EXIT.failed : EXIT.ok;
    return;
  }
  let differs = false;
  for (const s of body.services) {
    if (!s.exists) {
      differs = true;
      process.stdout.write(`service/${s.service}: new service\n`);
      continue;
    }
    if (s.changes.length === 0) continue;
    differs = true;
    process.stdout.write(`service/${s.service}:\n`);
    for (const c of s.changes) process.stdout.write(`  ${c.path}: ${show(c.from)} → ${show(c.to)}\n`);
  }
  if (!differs) process.stdout.write('no differences\n');
  process.exitCode = differs ? EXIT.failed : EXIT.ok;
}

const show = (v: unknown) => (v === undefined ? '(unset)' : JSON.stringify(v));

/** `orca delete SERVICE… | -f PATH…` */
export async function del(g: ClientOptions, names: string[], opts: { file?: string[] }): Promise<void> {
  const services = [...names];
  if (opts.file?.length) services.push(...(await readManifests(opts.file)).services);
  if (services.length === 0) throw new CliError(EXIT.invalid, 'name at least one service, or -f with manifests');
  const body = await new Client(g).json<{ deleted: string[] }>('POST', '/v1/delete', { services: [...new Set(services)] });
  for (const s of body.deleted) process.stdout.write(`service/${s} deleted\n`);
}
