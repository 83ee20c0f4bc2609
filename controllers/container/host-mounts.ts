import { OrcaError } from '../../core/errors.js';
import { hostPathAllowed } from '../../core/host-paths.js';
import type { MountSpec } from '../../runtime/types.js';

/** The details of a refused host mount (OrcaError ORCA_CONFLICT), so callers can tell it from other conflicts. */
export const HOST_PATH_REFUSED = 'host-path-refused';

export function isHostPathRefused(err: unknown): err is OrcaError {
  return err instanceof OrcaError && (err.details as { kind?: unknown } | undefined)?.kind === HOST_PATH_REFUSED;
}

/**
 * Resolves every bind mount's host path (symlinks included, with `realpath`) and checks it lies
 * under one of the node's allowed directories (resolved the same way): the mount then uses the
 * resolved path, so a symlink swapped afterwards cannot widen it. Named volumes pass as they are.
 * Throws OrcaError ORCA_CONFLICT (details.kind = HOST_PATH_REFUSED) naming the path when it is
 * outside, does not exist, or the node allows no host path at all.
 */
export async function resolveHostMounts(mounts: readonly MountSpec[], allowed: readonly string[], realpath: (p: string) => Promise<string>): Promise<MountSpec[]> {
  const binds = mounts.filter((m) => m.type === 'bind');
  if (binds.length === 0) return [...mounts];
  const refuse = (path: string, why: string) =>
    new OrcaError('ORCA_CONFLICT', `host path ${path} refused: ${why}`, { details: { kind: HOST_PATH_REFUSED, path } });
  if (allowed.length === 0) throw refuse(binds[0]?.source ?? '?', 'this node allows no host paths (orca agent --allow-host-path DIR)');
  const dirs: string[] = [];
  for (const d of allowed) {
    try {
      dirs.push(await realpath(d));
    } catch {
      // An allowed directory that does not exist allows nothing.
    }
  }
  const out: MountSpec[] = [];
  for (const m of mounts) {
    if (m.type !== 'bind') {
      out.push(m);
      continue;
    }
    if (!hostPathAllowed(m.source, allowed)) throw refuse(m.source, `not under an allowed directory (${allowed.join(', ')})`);
    let real: string;
    try {
      real = await realpath(m.source);
    } catch {
      throw refuse(m.source, 'it does not exist on this node');
    }
    if (!hostPathAllowed(real, dirs)) throw refuse(m.source, `it resolves to ${real}, outside the allowed directories (${allowed.join(', ')})`);
    out.push({ ...m, source: real });
  }
  return out;
}
