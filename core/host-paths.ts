import { posix } from 'node:path';

/**
 * Whether an absolute host path lies at or under one of the allowed directories, compared after
 * lexical normalisation (`..` and `.` folded, trailing slashes dropped), so `/srv/a/../../etc`
 * is `/etc`. Relative paths are never allowed. Symlinks are not looked at: the agent resolves
 * them before it mounts (controllers/container/host-mounts.ts). Pure.
 */
export function hostPathAllowed(path: string, allowed: readonly string[]): boolean {
  if (!posix.isAbsolute(path)) return false;
  const p = posix.normalize(path);
  return allowed.some((dir) => {
    if (!posix.isAbsolute(dir)) return false;
    const d = posix.normalize(dir).replace(/\/+$/, '') || '/';
    return p === d || p.startsWith(d === '/' ? '/' : `${d}/`);
  });
}
