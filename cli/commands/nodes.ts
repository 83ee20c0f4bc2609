import { Client, type ClientOptions } from '../client.js';
import { ago, table } from '../table.js';
import { systemClock } from '../../core/clock.js';
import { jsonLine } from '../format.js';
import { PROTOCOL_VERSION } from '../../protocol/messages.js';

interface Node {
  name: string;
  state: string;
  address: string;
  lastHeartbeat: string;
  instances: number;
  /** The agent protocol version the node speaks (absent from a server before protocol 2). */
  protocol?: number;
}

/**
 * `orca nodes [-o table|json]`; JSON: `{"nodes":[{"name","state","address","lastHeartbeat","protocol","instances"}]}`.
 * PROTOCOL is the agent protocol version the node speaks: one below the server's says "upgrade".
 */
export async function nodes(g: ClientOptions, opts: { output: string }): Promise<void> {
  const body = await new Client(g).json<{ nodes: Node[] }>('GET', '/v1/nodes');
  if (opts.output === 'json') {
    process.stdout.write(jsonLine(body));
    return;
  }
  const now = systemClock.now();
  const newest = Math.max(0, ...body.nodes.map((n) => n.protocol ?? 0));
  const proto = (n: Node) => (n.protocol === undefined ? '-' : n.protocol < Math.max(newest, PROTOCOL_VERSION) ? `${n.protocol} (upgrade agent)` : String(n.protocol));
  process.stdout.write(
    table(['NODE', 'STATE', 'ADDRESS', 'LAST HEARTBEAT', 'PROTOCOL', 'INSTANCES'], body.nodes.map((n) => [n.name, n.state, n.address, ago(n.lastHeartbeat, now), proto(n), String(n.instances)])),
  );
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
