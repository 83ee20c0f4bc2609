import { Client, type ClientOptions } from '../client.js';
import { ago, table } from '../table.js';
import { systemClock } from '../../core/clock.js';
import { jsonLine } from '../format.js';

interface Member {
  name: string;
  address: string;
  role: 'leader' | 'standby';
  since: string;
}

/** `orca servers [-o table|json]` (SPEC §3.11); JSON: `{"servers":[{"name","address","role","since"}]}`, the leader first. */
export async function servers(g: ClientOptions, opts: { output: string }): Promise<void> {
  const body = await new Client(g).json<{ servers: Member[] }>('GET', '/v1/servers');
  if (opts.output === 'json') {
    process.stdout.write(jsonLine(body));
    return;
  }
  const now = systemClock.now();
  process.stdout.write(table(['SERVER', 'ROLE', 'ADDRESS', 'SINCE'], body.servers.map((s) => [s.name, s.role, s.address, ago(s.since, now)])));
}
