import type { Clock, TimerHandle } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { EventRecord, ServiceRecord } from '../store/types.js';
import type { Route } from '../proxy/table.js';

/** A ready instance and where it answers. */
export interface Endpoint {
  service: string;
  instance: string;
  /** host:port on the node's advertise address. */
  address: string;
  node: string;
}

/**
 * The route reconciler's planner: desired routes × ready instances → the routing table.
 * Only services with a `route` (and so a `port`) get one; only instances on nodes that are
 * reachable are backends. Pure; backends sorted for a stable table.
 */
export function planRoutes(services: ServiceRecord[], endpoints: Endpoint[], reachable: (node: string) => boolean): Route[] {
  const byService = new Map<string, Endpoint[]>();
  for (const e of endpoints) {
    if (!reachable(e.node)) continue;
    const list = byService.get(e.service) ?? [];
    list.push(e);
    byService.set(e.service, list);
  }
  const routes: Route[] = [];
  for (const s of services) {
    if (s.deletedAt || !s.spec.route || s.spec.port === undefined) continue;
    const backends = (byService.get(s.name) ?? [])
      .map((e) => ({ instance: e.instance, address: e.address }))
      .sort((a, b) => a.instance.localeCompare(b.instance));
    routes.push({ service: s.name, host: s.spec.route.host, path: s.spec.route.path, backends });
  }
  return routes.sort((a, b) => a.host.localeCompare(b.host) || a.path.localeCompare(b.path));
}

export interface RouteReconcilerDeps {
  clock: Clock;
  log: Logger;
  /** Applies a routing table (the proxy's atomic swap). */
  apply: (routes: Route[]) => void;
  /** Ready instances on every node, now (from memory kept in step with Docker). */
  endpoints: () => Endpoint[];
  reachable: (node: string) => boolean;
  record: (e: EventRecord) => void;
}

/**
 * Keeps the proxy's table equal to planRoutes(...). Recomputed on every instance state change
 * (poke, coalesced to one pass per tick) and on each watchdog cycle; every backend added or
 * removed is one line of the reconciliation log.
 */
export class RouteReconciler {
  private services: ServiceRecord[] = [];
  private current = new Map<string, Route>();
  private timer: TimerHandle | null = null;

  constructor(private readonly deps: RouteReconcilerDeps) {}

  /** The desired services changed (apply, delete, rollback). */
  setServices(services: ServiceRecord[]): void {
    this.services = services;
    this.reconcileNow();
  }

  /** Something about instances changed: recompute within this tick. */
  poke(): void {
    if (this.timer) return;
    this.timer = this.deps.clock.setTimeout(() => {
      this.timer = null;
      this.reconcileNow();
    }, 0);
  }

  stop(): void {
    if (this.timer) this.deps.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  routes(): Route[] {
    return [...this.current.values()];
  }

  /** Computes and applies the table now; idempotent. */
  reconcileNow(): void {
    const started = this.deps.clock.now();
    const next = planRoutes(this.services, this.deps.endpoints(), this.deps.reachable);
    const nextByService = new Map(next.map((r) => [r.service, r]));
    const changes: Array<{ action: 'route.add' | 'route.remove'; service: string; instance: string; reason: string }> = [];
    for (const [service, old] of this.current) {
      const now = nextByService.get(service);
      for (const b of old.backends) {
        if (now?.backends.some((x) => x.instance === b.instance && x.address === b.address)) continue;
        changes.push({ action: 'route.remove', service, instance: b.instance, reason: now ? 'instance-not-ready' : 'service-has-no-route' });
      }
    }
    for (const r of next) {
      const old = this.current.get(r.service);
      for (const b of r.backends) {
        if (old?.backends.some((x) => x.instance === b.instance && x.address === b.address)) continue;
        changes.push({ action: 'route.add', service: r.service, instance: b.instance, reason: 'instance-ready' });
      }
    }
    const sameShape = next.length === this.current.size && next.every((r) => {
      const o = this.current.get(r.service);
      return o && o.host === r.host && o.path === r.path;
    });
    if (changes.length === 0 && sameShape) return;
    this.deps.apply(next);
    this.current = nextByService;
    const durationMs = this.deps.clock.now() - started;
    const time = new Date(this.deps.clock.now()).toISOString();
    for (const c of changes) {
      // `reconciler: 'route'` is bound by the child logger the server passes in (not repeated here).
      this.deps.log.info({ key: `${c.service}/${c.instance}`, action: c.action, reason: c.reason, outcome: 'ok', durationMs }, 'reconcile action');
      this.deps.record({ time, reconciler: 'route', service: c.service, instance: c.instance, node: null, action: c.action, reason: c.reason, outcome: 'ok', durationMs });
    }
  }
}
