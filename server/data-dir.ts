import { OrcaError } from '../core/errors.js';
export { prepareDataDir } from '../store/data-dir.js';
import { LABEL } from '../runtime/labels.js';
import type { Runtime } from '../runtime/types.js';
import type { Store } from '../store/types.js';

/** The kv key that records which cluster and node this data directory serves. */
export const IDENTITY_KEY = 'server/identity';

export interface DataDirIdentity {
  cluster: string;
  node: string;
  createdAt: string;
}

/**
 * Refuses to start a server over containers that another server manages (issue: two servers with
 * their own data directories and the same cluster id and node name on one Docker host would each
 * take the other's containers for orphans and remove them).
 *
 * A data directory that has never served (no identity recorded and no service ever stored) must
 * not find containers of its cluster and node in Docker: if it does, they belong to another data
 * directory, and starting would remove them. A directory that has served before adopts as always
 * (older stores without the identity record but with services count as having served). On success
 * the identity is recorded, so the next start adopts.
 *
 * Throws OrcaError ORCA_CONFLICT naming the containers and the way out.
 */
export async function claimDataDir(
  store: Store,
  runtime: Runtime,
  who: { cluster: string; node: string; dataDir: string; now: string },
): Promise<void> {
  const known = await store.getKv<DataDirIdentity>(IDENTITY_KEY);
  if (known) return;
  const served = (await store.listServices({ includeDeleted: true })).length > 0;
  if (!served) {
    const found = await runtime.list({ [LABEL.cluster]: who.cluster, [LABEL.node]: who.node });
    if (found.length > 0) {
      const names = found.slice(0, 5).map((c) => `${c.name} (${c.id.slice(0, 12)}, ${c.status})`);
      const more = found.length > names.length ? ` and ${found.length - names.length} more` : '';
      throw new OrcaError(
        'ORCA_CONFLICT',
        `Docker already runs containers of cluster "${who.cluster}" on node "${who.node}" that the data directory ${who.dataDir} ` +
          `has never managed: ${names.join(', ')}${more}. Another orca server (with another data directory) manages them, ` +
          `and starting would remove them as orphans. Start this server with its own --cluster-id (or another --node-name), ` +
          `or start it with that server's --data-dir; remove the containers only if their server is gone for good.`,
      );
    }
  }
  await store.putKv(IDENTITY_KEY, { cluster: who.cluster, node: who.node, createdAt: who.now } satisfies DataDirIdentity);
}
