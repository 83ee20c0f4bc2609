import type { ControlPlane } from './control-plane.js';
import type { ServerMember } from './leadership.js';

/** One row of `GET /v1/nodes` (and of the dashboard's node table). */
export interface NodeListing {
  name: string;
  state: string;
  address: string;
  lastHeartbeat: string;
  protocol: number;
  instances: number;
}

/** The nodes as `GET /v1/nodes` lists them: from what each node last reported (cheap, never waits on a slow node). */
export function nodeListing(control: Pick<ControlPlane, 'nodeLinks' | 'lastReports'>): NodeListing[] {
  const reports = control.lastReports();
  return control.nodeLinks().map((n) => ({
    name: n.name,
    state: n.state(),
    address: n.address(),
    lastHeartbeat: n.lastHeartbeat(),
    protocol: n.protocol(),
    instances: reports.filter((r) => r.node === n.name && r.containerId !== null).length,
  }));
}

/** The control plane's members as `GET /v1/servers` lists them (none known: empty). */
export async function serverListing(servers: (() => Promise<ServerMember[]>) | undefined): Promise<ServerMember[]> {
  return servers ? await servers() : [];
}
