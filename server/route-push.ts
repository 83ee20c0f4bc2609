import type { Clock, TimerHandle } from '../core/clock.js';
import type { NodeEndpoint } from '../core/endpoint.js';
import type { Logger } from '../core/log.js';
import type { Route } from '../proxy/table.js';
import type { RouteEntry } from '../protocol/routes.js';

/** What the push needs of a node (server/remote-node.ts RemoteNode). */
export interface RoutePushNode {
  readonly name: string;
  readonly attached: boolean;
  state(): string;
  setRoutes(routes: RouteEntry[]): void;
}

export interface RoutePushDeps {
  clock: Clock;
  log: Logger;
  /** Every node the server knows. */
  nodes: () => readonly RoutePushNode[];
  /** Ready endpoints on every node, as last reported: which node each backend runs on. */
  endpoints: () => readonly NodeEndpoint[];
  /**
   * Longest wait after start for the known nodes to come back before the first table goes out
   * (the heartbeat timeout: a node not back by then is unreachable, its routes dropped anyway).
   */
  graceMs: number;
}

/**
 * The route table to every agent that runs a proxy (SPEC §3.11 "ingress on every node"): the
 * route reconciler's table, each backend with its node, to every node on each change and to a
 * node whose session starts (each node's session sends it only when its agent runs a proxy and
 * the table changed; see protocol/server-session.ts).
 *
 * Not before the server serves and the nodes it knew before a restart are back (every `ready`
 * or `draining` one attached) or graceMs has passed: until then its table lacks the endpoints of
 * nodes that have not said hello again, and an agent would drop them from a table that was
 * right, while it keeps serving that table on its own meanwhile.
 */
export class RoutePush {
  private table: RouteEntry[] = [];
  private open = false;
  private started = false;
  private timer: TimerHandle | null = null;

  constructor(private readonly deps: RoutePushDeps) {}

  /** The server serves (routes restored, proxy listening): the push opens once the known nodes are back, or after graceMs. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.timer = this.deps.clock.setTimeout(() => {
      this.timer = null;
      this.openNow('grace');
    }, this.deps.graceMs);
    this.check();
  }

  stop(): void {
    if (this.timer) this.deps.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  /** The route reconciler swapped the table. */
  update(routes: readonly Route[]): void {
    this.table = agentRouteTable(routes, this.deps.endpoints());
    if (this.open) for (const n of this.deps.nodes()) n.setRoutes(this.table);
    else this.check();
  }

  /** A node's session began: it gets the table now (if the push is open). */
  sessionStarted(node: RoutePushNode): void {
    if (this.open) node.setRoutes(this.table);
    else this.check();
  }

  private check(): void {
    if (this.open || !this.started) return;
    const missing = this.deps.nodes().filter((n) => !n.attached && (n.state() === 'ready' || n.state() === 'draining'));
    if (missing.length === 0) this.openNow('nodes-back');
  }

  private openNow(why: 'grace' | 'nodes-back'): void {
    if (this.open) return;
    this.open = true;
    this.stop();
    const waiting = this.deps.nodes().filter((n) => !n.attached && (n.state() === 'ready' || n.state() === 'draining')).map((n) => n.name);
    this.deps.log.info({ why, routes: this.table.length, ...(waiting.length ? { notBack: waiting } : {}) }, 'route table pushed to the agents that run a proxy');
    for (const n of this.deps.nodes()) n.setRoutes(this.table);
  }
}

/**
 * The proxy's table as the agents get it: each backend with the node that reported it (looked up
 * by instance and address among the endpoints the table was planned from). A backend no node
 * reports any more (a race with a report) keeps node "" — some other node's to every agent.
 */
export function agentRouteTable(routes: readonly Route[], endpoints: readonly NodeEndpoint[]): RouteEntry[] {
  const nodeOf = new Map<string, string>();
  for (const e of endpoints) nodeOf.set(`${e.instance}\n${e.address}`, e.node);
  return routes.map((r) => ({
    service: r.service,
    host: r.host,
    path: r.path,
    backends: r.backends.map((b) => ({ instance: b.instance, address: b.address, node: nodeOf.get(`${b.instance}\n${b.address}`) ?? '' })),
    ...(r.tls ? { tls: r.tls } : {}),
  }));
}
