/**
 * What the server can verify of an endpoint an agent reports before it may become a route
 * backend (SPEC §3.10 "Node identity"): the address is the reporting node's advertise address
 * with a port 1–65535, it is none of the server's own listening addresses (the API, the proxy),
 * and the instance belongs to a slot assigned to that node. Pure; never throws.
 */

export interface HostPort {
  /** Canonical host: IPv6 without brackets, lowercase. */
  host: string;
  port: number;
}

/** "127.0.0.1:8080", "[::1]:8080", "node2.example:8080" → host and port; null when malformed. */
export function parseHostPort(address: string): HostPort | null {
  if (typeof address !== 'string' || address.length === 0 || address.length > 300) return null;
  let host: string;
  let portText: string;
  if (address.startsWith('[')) {
    const close = address.indexOf(']');
    if (close < 0 || address[close + 1] !== ':') return null;
    host = address.slice(1, close);
    portText = address.slice(close + 2);
    if (!host.includes(':')) return null;
  } else {
    const colon = address.lastIndexOf(':');
    if (colon <= 0) return null;
    host = address.slice(0, colon);
    portText = address.slice(colon + 1);
    // An unbracketed IPv6 address is ambiguous ("::1:8080"): refused.
    if (host.includes(':')) return null;
  }
  if (!/^[0-9]{1,5}$/.test(portText)) return null;
  const port = Number(portText);
  if (port < 1 || port > 65535) return null;
  const canon = canonicalHost(host);
  return canon === null ? null : { host: canon, port };
}

/** The canonical form of a host (an IPv6 literal compressed, names lowercase); null when it is not a host. */
export function canonicalHost(host: string): string | null {
  if (typeof host !== 'string' || host.length === 0 || host.length > 253) return null;
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  try {
    const h = new URL(`http://${bare.includes(':') ? `[${bare}]` : bare}/`).hostname;
    if (!h) return null;
    return h.startsWith('[') ? h.slice(1, -1) : h;
  } catch {
    return null;
  }
}

/** host:port, bracketing an IPv6 literal ("::1", 80 → "[::1]:80"). */
export function joinHostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

const WILDCARDS = new Set(['0.0.0.0', '::']);
function isLoopback(host: string): boolean {
  return host === '::1' || host === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Whether host:port may be one of the server's own listeners (an SSRF-style endpoint). */
export function isOwnAddress(hp: HostPort, own: ReadonlyArray<{ host: string; port: number }>): boolean {
  for (const o of own) {
    if (o.port !== hp.port) continue;
    const h = canonicalHost(o.host);
    if (h === null || WILDCARDS.has(h) || h === hp.host || (isLoopback(h) && isLoopback(hp.host))) return true;
  }
  return false;
}

/** `web-3-0-k2j9` of service `web` → revision 3, slot 0; null when the id is not one of that service's. */
export function parseInstanceId(service: string, instance: string): { revision: number; slot: number } | null {
  if (typeof instance !== 'string' || !instance.startsWith(`${service}-`)) return null;
  const m = /^([0-9]{1,9})-([0-9]{1,6})-[a-z0-9]{1,16}$/.exec(instance.slice(service.length + 1));
  if (!m) return null;
  return { revision: Number(m[1]), slot: Number(m[2]) };
}

/** Slots assigned to a node, `service/slot` → the revision it should run. */
export type AssignedSlots = ReadonlyMap<string, number>;

/** Whether an instance belongs to a slot assigned to the node (at that revision or an earlier one, still serving in a rollout). */
export function isAssigned(e: { service: string; instance: string }, assigned: AssignedSlots): boolean {
  const id = parseInstanceId(e.service, e.instance);
  if (!id) return false;
  const rev = assigned.get(`${e.service}/${id.slot}`);
  return rev !== undefined && id.revision >= 1 && id.revision <= rev;
}

export type Verdict = { ok: true } | { ok: false; reason: string };

/** The address half of the check: on the node's advertise address, a valid port, not the server itself. */
export function checkEndpointAddress(address: string, ctx: { advertise: string; own: ReadonlyArray<{ host: string; port: number }> }): Verdict {
  const hp = parseHostPort(address);
  if (!hp) return { ok: false, reason: 'not host:port with a port 1–65535' };
  const adv = canonicalHost(ctx.advertise);
  if (adv === null || hp.host !== adv) return { ok: false, reason: 'not on the node’s advertise address' };
  if (isOwnAddress(hp, ctx.own)) return { ok: false, reason: 'one of the server’s own addresses' };
  return { ok: true };
}

/** The whole check: address, and an instance of a slot assigned to the node. */
export function checkEndpoint(
  e: { service: string; instance: string; address: string },
  ctx: { advertise: string; own: ReadonlyArray<{ host: string; port: number }>; assigned: AssignedSlots },
): Verdict {
  const a = checkEndpointAddress(e.address, ctx);
  if (!a.ok) return a;
  if (!isAssigned(e, ctx.assigned)) return { ok: false, reason: 'instance not assigned to this node' };
  return { ok: true };
}
