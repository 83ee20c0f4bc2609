import { Client, type ClientOptions } from '../client.js';
import { table } from '../table.js';
import { jsonLine } from '../format.js';

interface Volume {
  name: string;
  node: string;
  service: string;
  volume: string;
  slot: number;
  inUse: boolean | null;
  size?: number;
  stale?: boolean;
}

/**
 * `orca volumes [-o table|json]`; JSON: `{"volumes":[{"name","node","service","volume","slot","inUse"}]}`
 * plus `size` (bytes) when the engine knows it, and `stale: true` with `inUse: null` for a node
 * that cannot be asked now (what it last listed).
 */
export async function volumes(g: ClientOptions, opts: { output: string }): Promise<void> {
  const body = await new Client(g).json<{ volumes: Volume[] }>('GET', '/v1/volumes');
  if (opts.output === 'json') {
    process.stdout.write(jsonLine(body));
    return;
  }
  const inUse = (v: Volume) => (v.inUse === null ? 'unknown' : v.inUse ? 'yes' : 'no');
  process.stdout.write(
    table(
      ['NAME', 'NODE', 'SERVICE', 'VOLUME', 'SLOT', 'IN USE', 'SIZE'],
      body.volumes.map((v) => [v.name, v.stale ? `${v.node} (last known)` : v.node, v.service, v.volume, String(v.slot), inUse(v), v.size === undefined ? '-' : String(v.size)]),
    ),
  );
}
