import type { ServiceSpec } from '../manifest/types.js';
import type { ServiceRecord } from '../store/types.js';

/** The identity of a route: host (case-insensitive) and path (a trailing slash does not count). */
function routeKey(route: { host: string; path: string }): string {
  const path = route.path.replace(/\/+$/, '') || '/';
  return `${route.host.toLowerCase()} ${path}`;
}

/**
 * Routes claimed twice once `incoming` is applied over the live stored services: one error per
 * clash, naming both services and where each comes from (SPEC §2: two services claiming the same
 * route host and path is an error at apply). A stored service that `incoming` redefines counts
 * with its new spec. Pure.
 */
export function routeConflicts(incoming: Array<{ spec: ServiceSpec; file: string }>, stored: ServiceRecord[]): string[] {
  const claims = new Map<string, { service: string; where: string }>();
  const redefined = new Set(incoming.map((i) => i.spec.name));
  const errors: string[] = [];
  for (const s of stored) {
    if (s.deletedAt || redefined.has(s.name) || !s.spec.route) continue;
    claims.set(routeKey(s.spec.route), { service: s.name, where: 'already applied' });
  }
  for (const { spec, file } of incoming) {
    if (!spec.route) continue;
    const key = routeKey(spec.route);
    const other = claims.get(key);
    if (other) {
      errors.push(
        `${file}: service "${spec.name}": route.host "${spec.route.host}" with path "${spec.route.path}" is already claimed by service "${other.service}" (${other.where}); ` +
          'give one of them another host or path',
      );
      continue;
    }
    claims.set(key, { service: spec.name, where: file });
  }
  return errors;
}
