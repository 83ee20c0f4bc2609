/**
 * Opens the control plane's store on etcd (`orca server --store etcd://…`, SPEC §3.11). The
 * embedded LevelDB store is opened by the server's openStore as before.
 */
import type { Logger } from '../core/log.js';
import { EtcdStore } from '../store/etcd-store.js';
import type { EtcdStoreConfig } from './store-config.js';

/** An open EtcdStore; throws what EtcdStore.open throws (ORCA_STORE_UNAVAILABLE naming the endpoints when etcd cannot be reached). */
export async function openEtcdStore(config: EtcdStoreConfig, log: Logger): Promise<EtcdStore> {
  const store = new EtcdStore({ endpoints: config.endpoints, prefix: config.prefix, ...(config.tls ? { tls: config.tls } : {}) });
  await store.open();
  log.info({ store: 'etcd', endpoints: config.endpoints, prefix: config.prefix, tls: config.tls !== undefined }, 'store open');
  return store;
}
