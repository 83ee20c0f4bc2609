import { Client, type ClientOptions } from '../client.js';
import { ago, table } from '../table.js';
import { systemClock } from '../../core/clock.js';
import { jsonLine } from '../format.js';

interface Node {
  name: string;
  state: string;
  address: string;
  lastHeartbeat: string;
  instances: number;
}

/** `orca nodes [-o table|json]`; JSON: `{"nodes":[{"name","state","address","lastHeartbeat","instances"}]}`. */
export async function nodes(g: ClientOptions, opts: { output: string }): Promise<void> {
  const body = await new Client(g).json<{ nodes: Node[] }>('GET', '/v1/nodes');
  if (opts.output === 'json') {
    process.stdout.write(jsonLine(body));
    return;
  }
  const now = systemClock.now();
  process.stdout.write(table(['NODE', 'STATE', 'ADDRESS', 'LAST HEARTBEAT', 'INSTANCES'], body.nodes.map((n) => [n.name, n.state, n.address, ago(n.lastHeartbeat, now), String(n.instances)])));
}

/** `orca drain NODE` / `orca uncordon NODE` */
export async function drain(g: ClientOptions, node: string, drained: boolean): Promise<void> {
  const r = await new Client(g).json<{ node: string; state: string }>('POST', `/v1/nodes/${encodeURIComponent(node)}/${drained ? 'drain' : 'uncordon'}`);
  process.stdout.write(`node/${r.node} ${drained ? 'drained' : 'uncordoned'} (now ${r.state})\n`);
}

/** `orca nodes rm NODE`: revokes its credential, ends its session, forgets it; its replicas go elsewhere. */
export async function rm(g: ClientOptions, node: string): Promise<void> {
  const r = await new Client(g).json<{ node: string; credentialRevoked: boolean; sessionsClosed: number }>('DELETE', `/v1/nodes/${encodeURIComponent(node)}`);
  const what = [r.credentialRevoked ? 'credential revoked' : 'no credential', r.sessionsClosed ? 'session closed' : 'no live session'];
  process.stdout.write(`node/${r.node} removed (${what.join(', ')})\n`);
}
