/**
 * TCP listeners inside a container's network namespace, read from the kernel's socket tables
 * (`/proc/<pid>/net/tcp` and `tcp6` of any process in the container). This proves that something
 * in the container accepts on a port — which a connection to the published host port cannot:
 * Docker's port forwarder accepts on the host whether or not anything listens inside — without
 * dialling a container IP and without running anything inside the container (images without a
 * shell work too).
 */

/** One listening TCP socket: its local address ("0.0.0.0", "::", "127.0.0.1" …) and port. */
export interface Listener {
  address: string;
  port: number;
}

/** TCP state LISTEN in /proc/net/tcp. */
const LISTEN = '0A';
/** More lines than any real table of listeners; the rest is ignored (bounded work). */
const MAX_LINES = 100_000;

/**
 * Parses the text of /proc/net/tcp or /proc/net/tcp6: the LISTEN sockets. Pure; malformed lines
 * are skipped, never thrown on.
 */
export function parseProcNetTcp(text: string): Listener[] {
  const out: Listener[] = [];
  const lines = text.split('\n', MAX_LINES);
  for (let i = 1; i < lines.length; i++) {
    const cols = (lines[i] as string).trim().split(/\s+/);
    if (cols.length < 4 || cols[3] !== LISTEN) continue;
    const local = cols[1] ?? '';
    const colon = local.lastIndexOf(':');
    if (colon < 0) continue;
    const port = Number.parseInt(local.slice(colon + 1), 16);
    const address = decodeAddress(local.slice(0, colon));
    if (address === null || !(port > 0 && port <= 65535)) continue;
    out.push({ address, port });
  }
  return out;
}

/** The kernel prints addresses as 32-bit words in host (little-endian here) byte order. */
function decodeAddress(hex: string): string | null {
  if (!/^[0-9A-Fa-f]+$/.test(hex)) return null;
  const words: number[][] = [];
  for (let w = 0; w < hex.length; w += 8) {
    const word = hex.slice(w, w + 8);
    if (word.length !== 8) return null;
    const bytes = [6, 4, 2, 0].map((o) => Number.parseInt(word.slice(o, o + 2), 16));
    words.push(bytes);
  }
  const bytes = words.flat();
  if (bytes.length === 4) return bytes.join('.');
  if (bytes.length !== 16) return null;
  // IPv4-mapped (::ffff:a.b.c.d) reads as the IPv4 address.
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return bytes.slice(12).join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] as number) << 8) | (bytes[i + 1] as number)).toString(16));
  return compressV6(groups);
}

function compressV6(groups: string[]): string {
  // The longest run of zero groups becomes "::".
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** True for addresses only the container itself can reach (127.0.0.0/8, ::1). */
export function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.');
}

/**
 * Whether something in the container accepts connections on `port` from outside the container
 * (where Docker's published port connects from), with a reason for status and events.
 */
export function listenVerdict(listeners: Listener[], port: number): { ok: boolean; detail: string } {
  const onPort = listeners.filter((l) => l.port === port);
  if (onPort.some((l) => !isLoopback(l.address))) return { ok: true, detail: `listening on ${port}` };
  if (onPort.length > 0) {
    return { ok: false, detail: `listens on ${onPort.map((l) => l.address).join(', ')} port ${port} only, which the published port cannot reach (listen on 0.0.0.0)` };
  }
  const others = [...new Set(listeners.filter((l) => !isLoopback(l.address)).map((l) => l.port))].sort((a, b) => a - b);
  return {
    ok: false,
    detail: `nothing listens on port ${port} inside the container${others.length ? ` (it listens on ${others.slice(0, 10).join(', ')})` : ''}`,
  };
}
