/**
 * HTTPS at the edge in `orca server` (SPEC §3.12), wired in one place: the certificates in the
 * store (CertStore), their push to this server's proxy and to every agent with a proxy (EdgeHub),
 * the leader's ACME client (AcmeManager, for route hosts with tls = "acme"), the TLS listener
 * (`--proxy-listen-tls`) and the certificates' API.
 */
import type { Clock } from '../core/clock.js';
import { errorMessage, OrcaError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { DataPlane } from '../proxy/data-plane.js';
import type { EventRecord, ServiceRecord, Store } from '../store/types.js';
import { AcmeManager } from './acme.js';
import { CertStore, type WantedCert } from './certs.js';
import type { CertApiDeps } from './certs-api.js';
import { EdgeHub, type EdgeNode } from './edge.js';
import type { ServerConfig } from './config.js';

/** Certificates are read from the store again this often anyway (a standby's proxy, another leader's order). */
export const EDGE_REFRESH_MS = 30_000;

export interface EdgeServices {
  certs: CertStore;
  api: CertApiDeps;
  /** The proxy listens: load the certificates, push them, listen for TLS, begin ordering. */
  start(nodes: () => readonly EdgeNode[]): Promise<void>;
  /** The desired services or the leadership changed: the ACME client looks at the hosts again. */
  servicesChanged(): void;
  sessionStarted(node: EdgeNode): void;
  /** Where the TLS listener is bound, once it is. */
  tlsAddress(): { host: string; port: number } | null;
}

export function edgeServices(o: {
  config: ServerConfig;
  store: Store;
  clusterKey: Buffer;
  clock: Clock;
  log: Logger;
  proxy: DataPlane;
  leading: () => boolean;
  services: () => readonly ServiceRecord[];
  record: (e: EventRecord) => void;
  signal: AbortSignal;
}): EdgeServices {
  const log = o.log.child({ component: 'edge' });
  const certs = new CertStore(o.store, o.clusterKey);
  let nodes: () => readonly EdgeNode[] = () => [];
  const hub = new EdgeHub({ clock: o.clock, log, certs, proxy: o.proxy, nodes: () => nodes(), refreshMs: EDGE_REFRESH_MS });
  const wanted = (): WantedCert[] =>
    o.services().flatMap((s) => (!s.deletedAt && s.spec.port !== undefined && s.spec.route?.tls ? [{ host: s.spec.route.host, tls: s.spec.route.tls }] : []));
  const acme = new AcmeManager({
    clock: o.clock,
    log: log.child({ component: 'acme' }),
    certs,
    settings: o.config.edge?.acme ?? { directory: 'https://acme-v02.api.letsencrypt.org/directory' },
    hosts: () => wanted().flatMap((w) => (w.tls === 'acme' ? [w.host] : [])),
    leading: o.leading,
    challenges: hub,
    record: o.record,
  });
  let started = false;
  let tlsBound: { host: string; port: number } | null = null;
  o.signal.addEventListener(
    'abort',
    () => {
      acme.stop();
      hub.stop();
    },
    { once: true },
  );
  return {
    certs,
    api: { certs, wanted: async () => wanted(), clock: o.clock },
    async start(list) {
      nodes = list;
      await hub.start();
      const t = o.config.edge?.proxyListenTls;
      if (t) {
        try {
          tlsBound = await o.proxy.listenTls(t.host, t.port);
        } catch (err) {
          throw new OrcaError('ORCA_USAGE', `--proxy-listen-tls ${t.host}:${t.port}: cannot listen: ${errorMessage(err)}`);
        }
        log.info({ proxy: `https://${tlsBound.host.includes(':') ? `[${tlsBound.host}]` : tlsBound.host}:${tlsBound.port}` }, 'proxy listening for TLS');
      }
      started = true;
      acme.poke();
    },
    servicesChanged() {
      if (started) acme.poke();
    },
    sessionStarted(node) {
      hub.sessionStarted(node);
    },
    tlsAddress: () => tlsBound,
  };
}
