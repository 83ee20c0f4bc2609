import type { ClientOptions } from '../client.js';
import { Client } from '../client.js';
import { readManifests } from '../manifests.js';
import { CliError, EXIT } from '../exit.js';
import { sleep, systemClock } from '../../core/clock.js';
import type { ServiceStatus } from '../../server/status.js';
import type { ApplyResult } from '../../server/control-plane.js';

/** `orca apply -f PATH… [--dry-run] [--wait] [--timeout S]` */
export async function apply(g: ClientOptions, opts: { file: string[]; dryRun?: boolean; wait?: boolean; timeout?: string }): Promise<void> {
  const timeoutSecs = opts.timeout === undefined ? 300 : Number(opts.timeout);
  if (!Number.isFinite(timeoutSecs) || timeoutSecs <= 0) throw new CliError(EXIT.invalid, `--timeout: must be a positive number of seconds, got "${opts.timeout}"`);
  const { files } = await readManifests(opts.file);
  const client = new Client(g);
  const body = await client.json<{ results: ApplyResult[] }>('POST', '/v1/apply', { files, dryRun: opts.dryRun === true });
  for (const r of body.results) process.stdout.write(`service/${r.service} ${r.action}${opts.dryRun ? ' (dry run)' : ''}\n`);
  if (opts.wait && !opts.dryRun) await waitHealthy(client, body.results, timeoutSecs * 1000);
}

async function waitHealthy(client: Client, results: ApplyResult[], timeoutMs: number): Promise<void> {
  const deadline = systemClock.now() + timeoutMs;
  const last = new Map<string, string>();
  const pending = new Set(results.map((r) => r.service));
  while (pending.size > 0) {
    const { services } = await client.json<{ services: ServiceStatus[] }>('GET', '/v1/status');
    for (const s of services) {
      if (!pending.has(s.name)) continue;
      const live = s.instances.filter((i) => i.state === 'running').length;
      const line = `service/${s.name} revision ${s.revision} ${s.state}: ${s.replicas.ready}/${s.replicas.desired} ready, ${live} instance${live === 1 ? '' : 's'} running`;
      if (last.get(s.name) !== line) process.stdout.write(line + '\n');
      last.set(s.name, line);
      if (s.state === 'healthy' || s.state === 'stopped') pending.delete(s.name);
      else if (s.state === 'rollout-failed') throw new CliError(EXIT.failed, `service/${s.name} rollout failed: ${s.reason ?? 'unknown reason'}`);
    }
    if (pending.size === 0) break;
    if (systemClock.now() > deadline) throw new CliError(EXIT.failed, `timed out waiting for ${[...pending].join(', ')} to become healthy`);
    await sleep(systemClock, 250);
  }
}

/** `orca diff -f PATH…`: exit 0 without differences, 1 with. */
export async function diff(g: ClientOptions, opts: { file: string[] }): Promise<void> {
  const { files } = await readManifests(opts.file);
  const body = await new Client(g).json<{ services: Array<{ service: string; exists: boolean; changes: Array<{ path: string; from: unknown; to: unknown }> }> }>(
    'POST',
    '/v1/diff',
    { files },
  );
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
