import type { Clock } from '../core/clock.js';
import type { Endpoint } from '../core/endpoint.js';
import { errorMessage, OrcaError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { Store } from '../store/types.js';
import type { Route } from '../proxy/table.js';
import type { EdgeState } from '../proxy/tls.js';
import { routesMessageSchema, type RouteEntry } from '../protocol/routes.js';
import { nodeRouteTable } from './ingress-routes.js';
import { GatewayListener } from '../proxy/gateway-listener.js';

/** What the ingress needs of the proxy (proxy/proxy.ts Proxy). */
export interface IngressProxy {
  setRoutes(routes: Route[]): void;
  listen(host: string, port: number): Promise<{ host: string; port: number }>;
  listenAlso(host: string, port: number): Promise<{ host: string; port: number; close(): Promise<void> }>;
  drain(address: string, maxMs: number): Promise<void>;
  close(): Promise<void>;
  /** HTTPS at the edge (SPEC §3.12), with --proxy-listen-tls. */
  listenTls?(host: string, port: number): Promise<{ host: string; port: number }>;
  setEdge?(edge: EdgeState): void;
}

export interface NodeIngressDeps {
  node: string;
  clock: Clock;
  log: Logger;
  /** The agent's own store: the last table is kept there, so a restart cut off from the control plane still serves it. */
  store: Store;
  proxy: IngressProxy;
  /** `--proxy-listen`. */
  listen: { host: string; port: number };
  /** `--proxy-listen-tls` (SPEC §3.12): serve TLS there too, with the certificates the server pushes. */
  listenTls?: { host: string; port: number };
  /** The cluster network's gateway address now, or null (see GatewayListener). */
  gateway: () => Promise<string | null>;
  /** How often the gateway is looked at again. */
  gatewayRecheckMs: number;
}

const ROUTES_KEY = 'routes';
const tableSchema = routesMessageSchema.shape.routes;

/**
 * Ingress on a worker (SPEC §3.11, `orca agent --proxy-listen`): the node's own proxy, serving
 * the cluster's route table as the control plane last pushed it, with this node's backends
 * following the node's own state at once (nodeRouteTable). While the control plane cannot be
 * reached the last table is served (kept in the agent's store across restarts too); a dead remote
 * endpoint costs a retry on another one (the proxy retries a refused or timed-out connect, any
 * method). It also listens on the cluster network's gateway for `orca.internal` (GatewayListener).
 */
export class NodeIngress {
  private table: RouteEntry[] | null = null;
  private own: Endpoint[] = [];
  private applied = '';
  private saving: Promise<void> = Promise.resolve();
  private bound: { host: string; port: number } | null = null;
  private tlsBound: { host: string; port: number } | null = null;
  private gatewayListener: GatewayListener | null = null;

  constructor(private readonly deps: NodeIngressDeps) {}

  /** Where the main listener is bound, once it is. */
  get address(): { host: string; port: number } | null {
    return this.bound;
  }

  /** Whether it serves TLS (--proxy-listen-tls): the hello asks for the certificates then. */
  get servesTls(): boolean {
    return this.deps.listenTls !== undefined;
  }

  /** Where the TLS listener is bound, once it is (--proxy-listen-tls). */
  get tlsAddress(): { host: string; port: number } | null {
    return this.tlsBound;
  }

  /** The certificates and ACME challenges as the server pushed them (SPEC §3.12); kept in memory only (keys never on this node's disk). */
  setEdge(edge: EdgeState): void {
    this.deps.proxy.setEdge?.(edge);
  }

  /** Where it listens on the cluster network's gateway now ("ip:port"), or null. */
  get gatewayAddress(): string | null {
    return this.gatewayListener?.address ?? null;
  }

  /**
   * Loads the last table from the store and listens. Throws OrcaError ORCA_USAGE (saying which
   * flag) when the main address cannot be listened on; the gateway's listener failing is only logged.
   */
  async start(): Promise<void> {
    try {
      const cached = await this.deps.store.getKv<unknown>(ROUTES_KEY);
      if (cached !== undefined && this.table === null) {
        const t = tableSchema.safeParse(cached);
        if (t.success) {
          this.table = t.data;
          this.deps.log.info({ routes: t.data.length }, 'serving the last route table until the control plane sends one');
        } else this.deps.log.warn({ error: t.error.issues[0]?.message }, 'the cached route table is not valid; ignored');
      }
    } catch (err) {
      this.deps.log.warn({ err }, 'cannot read the cached route table');
    }
    this.apply();
    const { host, port } = this.deps.listen;
    try {
      this.bound = await this.deps.proxy.listen(host, port);
    } catch (err) {
      throw new OrcaError('ORCA_USAGE', `--proxy-listen ${host}:${port}: cannot listen: ${errorMessage(err)}`);
    }
    this.deps.log.info({ proxy: `http://${this.bound.host.includes(':') ? `[${this.bound.host}]` : this.bound.host}:${this.bound.port}` }, 'proxy listening');
    if (this.deps.listenTls && this.deps.proxy.listenTls) {
      const t = this.deps.listenTls;
      try {
        this.tlsBound = await this.deps.proxy.listenTls(t.host, t.port);
      } catch (err) {
        throw new OrcaError('ORCA_USAGE', `--proxy-listen-tls ${t.host}:${t.port}: cannot listen: ${errorMessage(err)}`);
      }
      this.deps.log.info({ proxy: `https://${this.tlsBound.host.includes(':') ? `[${this.tlsBound.host}]` : this.tlsBound.host}:${this.tlsBound.port}` }, 'proxy listening for TLS');
    }
    const gw = new GatewayListener({
      clock: this.deps.clock,
      log: this.deps.log,
      gateway: this.deps.gateway,
      listen: (h, p) => this.deps.proxy.listenAlso(h, p),
      port: this.bound.port,
      recheckMs: this.deps.gatewayRecheckMs,
    });
    this.gatewayListener = gw;
    await gw.start();
  }

  /** The cluster's whole table, as the control plane pushed it. */
  setTable(routes: RouteEntry[]): void {
    const first = this.table === null;
    this.table = routes;
    if (first) this.deps.log.info({ routes: routes.length }, 'route table received from the control plane');
    this.apply();
    this.saving = this.saving.then(() => this.deps.store.putKv(ROUTES_KEY, routes)).catch((err: unknown) => this.deps.log.warn({ err }, 'cannot keep the route table in the store'));
  }

  /** The node's ready instances now (its lifecycle): its own backends follow at once. */
  localChanged(own: Endpoint[]): void {
    this.own = own;
    this.apply();
    this.gatewayListener?.poke();
  }

  /** Waits (at most maxMs) for the requests this proxy has in flight to a backend being stopped. */
  drain(address: string, maxMs: number): Promise<void> {
    return this.deps.proxy.drain(address, maxMs);
  }

  /** Stops both listeners and ends what is in flight (bounded: see Proxy.close). */
  async stop(): Promise<void> {
    await this.gatewayListener?.stop();
    await this.deps.proxy.close();
    await this.saving;
  }

  private apply(): void {
    const routes = nodeRouteTable(this.table ?? [], this.deps.node, this.own);
    const text = JSON.stringify(routes);
    if (text === this.applied) return;
    this.applied = text;
    this.deps.proxy.setRoutes(routes);
    if (this.deps.log.isLevelEnabled('debug')) {
      const own = this.own.length <= 32 ? this.own.map((e) => e.instance) : this.own.length;
      this.deps.log.debug({ routes: routes.length, backends: routes.reduce((n, r) => n + r.backends.length, 0), own }, 'node route table swapped');
    }
  }
}
