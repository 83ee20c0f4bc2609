import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import { Proxy } from './proxy.js';
import { ProxyPlane } from './plane.js';
import type { PlaneMetrics } from './plane-metrics.js';

/** What the server uses of its proxy: the in-process Proxy and the multi-process ProxyPlane both offer it. */
export type DataPlane = Pick<Proxy, 'setRoutes' | 'routes' | 'drain' | 'listen' | 'listenTls' | 'listenAlso' | 'setEdge' | 'close'>;

/**
 * The server's proxy (`--proxy-workers`): with 1 worker the Proxy runs in the server's own process,
 * as it always did; with more, a ProxyPlane runs that many worker processes.
 */
export function createDataPlane(o: { log: Logger; clock: Clock; metrics: PlaneMetrics; workers: number }): DataPlane {
  if (o.workers <= 1) return new Proxy({ log: o.log, clock: o.clock, metrics: o.metrics });
  return new ProxyPlane({ log: o.log, clock: o.clock, metrics: o.metrics, workers: o.workers });
}
