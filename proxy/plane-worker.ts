/**
 * A worker process of the proxy plane (proxy/plane.ts): runs the ordinary Proxy (proxy/proxy.ts)
 * with the table, certificates and listeners the primary sends over IPC, and reports metrics in
 * batches. Its listeners are the primary's sockets, shared through the cluster module (every
 * worker accepts from the same socket). It ends when the primary says close, and when the IPC
 * channel goes away (the primary died): a worker never outlives its server.
 */
import cluster from 'node:cluster';
import { systemClock } from '../core/clock.js';
import { createLogger, type Logger } from '../core/log.js';
import { errorMessage } from '../core/errors.js';
import { Proxy } from './proxy.js';
import { MetricsBatcher } from './plane-metrics.js';
import { asToWorker, type FromWorker, type ToWorker } from './plane-messages.js';

if (cluster.isPrimary || !process.send) {
  process.stderr.write('proxy/plane-worker.js is started by the proxy plane, not by hand\n');
  process.exit(2);
}

const send = (m: FromWorker, cb?: () => void): void => {
  if (!process.connected) return cb?.();
  process.send!(m, undefined, {}, () => cb?.());
};

let proxy: Proxy | null = null;
let batcher: MetricsBatcher | null = null;
let log: Logger | null = null;
let closing = false;
/** Listener id → how to stop it (listenAlso's close; the main and TLS listeners stop with the proxy). */
const listeners = new Map<number, () => Promise<void>>();

/** Flushes the metrics, then exits once the primary has them. */
function exit(code: number): void {
  batcher?.flush();
  send({ t: 'closed' }, () => process.exit(code));
  // The channel may be gone already: do not wait on it for long.
  systemClock.setTimeout(() => process.exit(code), 1_000);
}

process.on('uncaughtException', (err) => {
  // A bug outside a request's own boundary: this worker ends and the primary starts another.
  (log ?? createLogger()).fatal({ err }, 'proxy worker failed');
  process.exit(1);
});

// The primary is gone: nothing may keep serving a table nobody updates.
process.on('disconnect', () => process.exit(0));

// The server decides when its workers stop (close: in-flight requests finish first). A terminal's
// Ctrl-C and systemd's SIGTERM reach every process of the group or unit at once: a worker that
// ended on them would cut its requests and be restarted by a server that is stopping.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => undefined);

process.on('message', (raw: unknown) => {
  const m = asToWorker(raw);
  if (m) void handle(m);
});
// Listening for messages now: the primary sends the table and options.
send({ t: 'hello' });

async function handle(m: ToWorker): Promise<void> {
  switch (m.t) {
    case 'init': {
      log = createLogger({ level: m.logLevel }).child({ component: 'proxy', worker: m.index });
      batcher = new MetricsBatcher(systemClock, m.flushMs, (batch) => send({ t: 'metrics', ...batch }));
      proxy = new Proxy({ log, clock: systemClock, metrics: batcher, ...m.options });
      proxy.setRoutes(m.routes);
      proxy.setEdge(m.edge);
      send({ t: 'ready' });
      return;
    }
    case 'routes':
      proxy?.setRoutes(m.routes);
      return;
    case 'edge':
      proxy?.setEdge(m.edge);
      return;
    case 'listen': {
      if (!proxy || closing) return send({ t: 'listen-failed', id: m.id, error: 'the worker is closing' });
      try {
        // The cluster module hands this listen to the primary, which shares one socket per address.
        let bound: { host: string; port: number };
        if (m.kind === 'tls') bound = await proxy.listenTls(m.host, m.port);
        else if (m.kind === 'main') bound = await proxy.listen(m.host, m.port);
        else {
          const extra = await proxy.listenAlso(m.host, m.port);
          listeners.set(m.id, extra.close);
          bound = extra;
        }
        send({ t: 'listening', id: m.id, host: bound.host, port: bound.port });
      } catch (err) {
        send({ t: 'listen-failed', id: m.id, error: errorMessage(err), ...((err as { code?: string }).code ? { code: (err as { code: string }).code } : {}) });
      }
      return;
    }
    case 'unlisten': {
      const close = listeners.get(m.id);
      listeners.delete(m.id);
      await close?.().catch((err: unknown) => log?.warn({ err }, 'closing a proxy listener'));
      return;
    }
    case 'drain':
      await proxy?.drain(m.address, m.maxMs);
      send({ t: 'drained', id: m.id });
      return;
    case 'close':
      if (closing) return;
      closing = true;
      await proxy?.close().catch((err: unknown) => log?.warn({ err }, 'closing the proxy'));
      exit(0);
      return;
  }
}
