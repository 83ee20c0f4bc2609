import type { ClientOptions } from '../client.js';
import { Client } from '../client.js';
import { readManifests } from '../manifests.js';
import { CliError, EXIT } from '../exit.js';
import { jsonLine, type Format } from '../format.js';
import { sleep, systemClock } from '../../core/clock.js';
import { parseDuration } from '../duration.js';
import type { ServiceStatus } from '../../server/status.js';
import type { ApplyResult } from '../../server/control-plane.js';

/**
 * `orca apply -f PATH… [--dry-run] [--wait] [--timeout D] [--settle D] [-o table|json]`. With `-o json`,
 * stdout is one document `{"dryRun","results":[{"service","result","revision"}]}` and the
 * progress of `--wait` goes to stderr.
 */
export async function apply(
  g: ClientOptions,
  opts: { file: string[]; dryRun?: boolean; wait?: boolean; timeout?: string; settle?: string; output?: Format },
): Promise<void> {
  const timeoutMs = durationFlag('--timeout', opts.timeout, 300_000);
  const settleMs = durationFlag('--settle', opts.settle, DEFAULT_SETTLE_MS, true);
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
  if (opts.wait && !opts.dryRun) await waitStable(client, body.results, { timeoutMs, settleMs }, progress);
}

/** How long every instance must stay ready, with no restart, before --wait succeeds. */
export const DEFAULT_SETTLE_MS = 2_000;

function durationFlag(flag: string, text: string | undefined, fallback: number, zeroOk = false): number {
  if (text === undefined) return fallback;
  const ms = parseDuration(text);
  if (ms === undefined || ms < 0 || (!zeroOk && ms === 0)) {
    throw new CliError(EXIT.invalid, `${flag}: must be a duration such as 30s, 5m or a number of seconds, got "${text}"`);
  }
  return ms;
}

/** Everything about a service that must hold still through the settle window. */
function fingerprint(s: ServiceStatus): string {
  return s.instances.map((i) => `${i.id}:${i.containerId}:${i.restarts}:${i.ready}`).sort().join(',');
}

/** Why waiting longer cannot help, or null. */
function terminal(s: ServiceStatus): string | null {
  if (s.state === 'rollout-failed') return `rollout failed: ${s.reason ?? 'unknown reason'}`;
  if (s.state === 'crashloop') return `is crash-looping: ${s.reason ?? 'its instances keep failing'}${s.hint ? ` (${s.hint})` : ''}`;
  const error = s.instances.find((i) => i.error)?.error;
  if (error) return `cannot start: ${error}`;
  return null;
}

/**
 * Waits until every applied service is stable: healthy (every instance of the new revision
 * ready) and unchanged — no restart, no new instance — for the settle window. Fails (exit 1,
 * with the reason) on a failed rollout, a crash loop or a terminal error such as a missing
 * image, once two polls in a row say so, and at the timeout.
 */
export async function waitStable(
  client: Client,
  results: ApplyResult[],
  o: { timeoutMs: number; settleMs: number; pollMs?: number },
  progress: NodeJS.WritableStream,
): Promise<void> {
  const deadline = systemClock.now() + o.timeoutMs;
  const last = new Map<string, string>();
  const stable = new Map<string, { since: number; print: string }>();
  const pending = new Set(results.map((r) => r.service));
  /** Services found terminal on the last poll. */
  const doomed = new Set<string>();
  while (pending.size > 0) {
    const { services } = await client.json<{ services: ServiceStatus[] }>('GET', '/v1/status');
    const now = systemClock.now();
    for (const s of services) {
      if (!pending.has(s.name)) continue;
      const live = s.instances.filter((i) => i.state === 'running').length;
      const line = `service/${s.name} revision ${s.revision} ${s.state}: ${s.replicas.ready}/${s.replicas.desired} ready, ${live} instance${live === 1 ? '' : 's'} running`;
      if (last.get(s.name) !== line) progress.write(line + '\n');
      last.set(s.name, line);
      // A verdict must hold on two polls in a row, and the second one's words are reported:
      // the node may correct a cause a moment after it (Docker can report an OOM kill after
      // the exit), and a status that says why must say the final why.
      const fatal = terminal(s);
      if (fatal && doomed.has(s.name)) throw new CliError(EXIT.failed, `service/${s.name} ${fatal}`);
      if (fatal) doomed.add(s.name);
      else doomed.delete(s.name);
      if (s.state !== 'healthy' && s.state !== 'stopped') {
        stable.delete(s.name);
        continue;
      }
      const print = fingerprint(s);
      const seen = stable.get(s.name);
      if (!seen || seen.print !== print) stable.set(s.name, { since: now, print });
      else if (now - seen.since >= o.settleMs) {
        pending.delete(s.name);
        progress.write(`service/${s.name} stable for ${(o.settleMs / 1000).toFixed(1)} s\n`);
      }
    }
    if (pending.size === 0) break;
    if (systemClock.now() > deadline) throw new CliError(EXIT.failed, `timed out waiting for ${[...pending].join(', ')} to become healthy and stable`);
    await sleep(systemClock, o.pollMs ?? 250);
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
export async function del(g: ClientOptions, names: string[], opts: { file?: string[]; volumes?: boolean }): Promise<void> {
  const services = [...names];
  if (opts.file?.length) services.push(...(await readManifests(opts.file)).services);
  if (services.length === 0) throw new CliError(EXIT.invalid, 'name at least one service, or -f with manifests');
  const body = await new Client(g).json<{ deleted: string[]; volumes?: { removed: string[]; failed: Array<{ name: string; node: string; error: string }> } }>('POST', '/v1/delete', {
    services: [...new Set(services)],
    ...(opts.volumes ? { volumes: true } : {}),
  });
  for (const s of body.deleted) process.stdout.write(`service/${s} deleted\n`);
  for (const v of body.volumes?.removed ?? []) process.stdout.write(`volume/${v} removed\n`);
  const failed = body.volumes?.failed ?? [];
  if (failed.length > 0) throw new CliError(EXIT.failed, failed.map((f) => `volume ${f.name} on node ${f.node} not removed: ${f.error}`).join('\n'));
}
