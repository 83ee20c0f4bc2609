/**
 * Compose's small value syntaxes, parsed the way `docker compose` reads them: command strings
 * (split like a shell word list, without a shell), durations ("1m30s"), port mappings (short
 * "127.0.0.1:8080:80/tcp" and long syntax) and volume entries. Pure; each returns null (or an
 * error string) for what it does not understand.
 */

/** Splits a command string into words as Compose does (shlex: quotes and backslashes; no shell). */
export function splitCommand(s: string): string[] | null {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < s.length; i += 1) {
    const c = s[i]!;
    if (c === "'") {
      const end = s.indexOf("'", i + 1);
      if (end < 0) return null;
      cur += s.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < s.length && s[j] !== '"'; j += 1) {
        if (s[j] === '\\' && j + 1 < s.length && '\\"$`'.includes(s[j + 1]!)) j += 1;
        cur += s[j];
      }
      if (j >= s.length) return null;
      i = j;
      inWord = true;
    } else if (c === '\\') {
      if (i + 1 < s.length) cur += s[i + 1];
      i += 1;
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

const DURATION_UNITS: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };

/** A Compose (Go) duration in seconds: "1m30s", "1.5s", "500ms"; a bare number is seconds. */
export function parseDuration(v: unknown): number | null {
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v;
  if (typeof v !== 'string' || v.length > 64) return null;
  const s = v.trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s);
  let total = 0;
  let rest = s;
  if (rest === '') return null;
  while (rest.length > 0) {
    const m = /^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/.exec(rest);
    if (!m) return null;
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return total;
}

export interface PortRange {
  from: number;
  to: number;
}

export interface PortMapping {
  /** Container port(s). */
  target: PortRange;
  /** Host port(s) as written ("8080", "8000-8001"), or undefined when none is published. */
  published?: string;
  hostIp?: string;
  protocol: string;
  appProtocol?: string;
}

function range(s: string): PortRange | null {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(s.trim());
  if (!m) return null;
  const from = Number(m[1]);
  const to = m[2] === undefined ? from : Number(m[2]);
  if (from < 1 || to > 65535 || to < from) return null;
  return { from, to };
}

/**
 * One entry of `ports`: short syntax `[[IP:]HOST:]CONTAINER[/PROTO]` (ranges allowed, IPv6
 * in brackets) or long syntax `{ target, published, host_ip, protocol, app_protocol }`.
 */
export function parsePort(v: unknown): PortMapping | null {
  if (typeof v === 'number') return parsePort(String(v));
  if (typeof v === 'string') {
    let s = v.trim();
    let protocol = 'tcp';
    const slash = s.lastIndexOf('/');
    if (slash >= 0) {
      protocol = s.slice(slash + 1).toLowerCase();
      s = s.slice(0, slash);
    }
    let hostIp: string | undefined;
    if (s.startsWith('[')) {
      const end = s.indexOf(']:');
      if (end < 0) return null;
      hostIp = s.slice(1, end);
      s = s.slice(end + 2);
    }
    const parts = s.split(':');
    if (parts.length > 3 || (hostIp !== undefined && parts.length !== 2)) return null;
    if (parts.length === 3) hostIp = parts.shift();
    const target = range(parts[parts.length - 1]!);
    if (!target) return null;
    const published = parts.length === 2 ? parts[0] : undefined;
    if (published !== undefined && published !== '' && !range(published)) return null;
    return { target, protocol, ...(published ? { published } : {}), ...(hostIp ? { hostIp } : {}) };
  }
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    const target = range(String(o.target ?? ''));
    if (!target) return null;
    const published = o.published === undefined || o.published === null || o.published === '' ? undefined : String(o.published);
    if (published !== undefined && !range(published)) return null;
    return {
      target,
      protocol: typeof o.protocol === 'string' ? o.protocol.toLowerCase() : 'tcp',
      ...(published ? { published } : {}),
      ...(typeof o.host_ip === 'string' ? { hostIp: o.host_ip } : {}),
      ...(typeof o.app_protocol === 'string' ? { appProtocol: o.app_protocol } : {}),
    };
  }
  return null;
}

export type VolumeEntry =
  | { kind: 'volume'; source: string; target: string; readOnly: boolean }
  | { kind: 'bind'; source: string; target: string; readOnly: boolean }
  | { kind: 'anonymous'; target: string }
  | { kind: 'tmpfs'; target: string }
  | { kind: 'other'; type: string; target: string };

const isPathLike = (s: string) => s.startsWith('/') || s.startsWith('.') || s.startsWith('~') || /^[A-Za-z]:[\\/]/.test(s);

/** One entry of a service's `volumes`: `SOURCE:TARGET[:MODE]`, `TARGET`, or the long syntax. */
export function parseVolume(v: unknown): VolumeEntry | null {
  if (typeof v === 'string') {
    const parts = v.split(':');
    if (parts.length === 1) return parts[0] ? { kind: 'anonymous', target: parts[0] } : null;
    if (parts.length > 3) return null;
    const [source, target, mode] = parts as [string, string, string | undefined];
    if (!source || !target) return null;
    const readOnly = (mode ?? '').split(',').includes('ro');
    return isPathLike(source) ? { kind: 'bind', source, target, readOnly } : { kind: 'volume', source, target, readOnly };
  }
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    const target = typeof o.target === 'string' ? o.target : undefined;
    if (!target) return null;
    const type = typeof o.type === 'string' ? o.type : 'volume';
    const source = typeof o.source === 'string' && o.source !== '' ? o.source : undefined;
    const readOnly = o.read_only === true;
    if (type === 'volume') return source ? { kind: 'volume', source, target, readOnly } : { kind: 'anonymous', target };
    if (type === 'bind') return source ? { kind: 'bind', source, target, readOnly } : null;
    if (type === 'tmpfs') return { kind: 'tmpfs', target };
    return { kind: 'other', type, target };
  }
  return null;
}

/**
 * A Compose name (letters, digits, `_`, `.`, `-`) as a DNS label, or null when nothing of it is
 * left: lower case, `_` and `.` become `-`, other characters go, at most 63 characters.
 */
export function dnsLabel(name: string): string | null {
  const s = name
    .toLowerCase()
    .replace(/[_.]/g, '-')
    .replace(/[^a-z0-9-]/g, '')
    .replace(/-+/g, '-')
    .slice(0, 63)
    .replace(/^-+|-+$/g, '');
  return s === '' ? null : s;
}
