import { Client, type ClientOptions } from '../client.js';
import { ago, inTime, table } from '../table.js';
import { sleep, systemClock } from '../../core/clock.js';
import type { ServiceStatus } from '../../server/status.js';

// Types only: erased at build time, so the CLI loads none of the server's code.
/**
 * `orca status [SERVICE] [-o table|json] [--watch]` — observed state, read from the nodes now.
 * `-o json` prints `{"services":[…]}` on one line; with --watch, one such line per refresh.
 */
export async function status(g: ClientOptions, service: string | undefined, opts: { output: string; watch?: boolean }): Promise<void> {
  const client = new Client(g);
  const path = service ? `/v1/status?service=${encodeURIComponent(service)}` : '/v1/status';
  for (;;) {
    const body = await client.json<{ services: ServiceStatus[] }>('GET', path);
    const text = opts.output === 'json' ? JSON.stringify(body) + '\n' : render(body.services, systemClock.now());
    if (opts.watch && process.stdout.isTTY) process.stdout.write('\x1b[2J\x1b[H');
    process.stdout.write(text);
    if (!opts.watch) return;
    await sleep(systemClock, 1000);
    // Tables are separated by a blank line; JSON stays one document a line (JSON Lines).
    if (!process.stdout.isTTY && opts.output !== 'json') process.stdout.write('\n');
  }
}

function render(services: ServiceStatus[], now: number): string {
  if (services.length === 0) return 'no services (apply some with `orca apply -f FILE`)\n';
  let out = table(
    ['SERVICE', 'REVISION', 'STATE', 'READY', 'RUNNING', 'DESIRED'],
    services.map((s) => [s.name, String(s.revision), s.state + (s.reason ? ` (${s.reason})` : ''), String(s.replicas.ready), String(s.replicas.running), String(s.replicas.desired)]),
  );
  for (const s of services) if (s.hint) out += `${s.name}: ${s.hint}\n`;
  const rows = services.flatMap((s) =>
    s.instances.map((i) => [
      i.id ?? `${s.name} (pending)`,
      i.node,
      i.state === 'crashloop' ? `crashloop (retry ${inTime(i.nextRetryAt, now)})` : i.state,
      i.ready ? 'yes' : 'no',
      String(i.restarts),
      i.address ?? '-',
      i.lastExit ? `${i.lastExit.reason} (${i.lastExit.code ?? '-'}) ${ago(i.lastExit.at, now)}` : '-',
    ]),
  );
  if (rows.length) out += '\n' + table(['INSTANCE', 'NODE', 'STATE', 'READY', 'RESTARTS', 'ADDRESS', 'LAST EXIT'], rows);
  // `orca status SERVICE`: why, per instance, and what happened lately.
  if (services.length === 1 && services[0]?.events) out += describe(services[0], now);
  return out;
}

/** The describe-style section of `orca status SERVICE`: probe answers, errors, latest events. */
function describe(s: ServiceStatus, now: number): string {
  let out = '';
  const why = s.instances.filter((i) => i.probe || i.error);
  if (why.length) {
    out += '\nWHY\n';
    for (const i of why) {
      const who = i.id ?? `${s.name} (pending)`;
      if (i.error) out += `  ${who}: ${i.error}\n`;
      if (i.probe) out += `  ${who}: last readiness check: ${i.probe}\n`;
    }
  }
  const events = s.events ?? [];
  if (events.length) {
    out += '\nEVENTS\n';
    for (const e of events) {
      const detail = e.message ? ` — ${e.message}` : '';
      out += `  ${ago(e.time, now)}  ${e.action}  ${e.reason}  ${e.outcome}${e.instance ? `  ${e.instance}` : ''}${detail}\n`;
    }
  }
  return out;
}
