import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

/** The dashboard's session cookie (SPEC §6). */
export const SESSION_COOKIE = 'orca_session';
/** A session lasts this long from sign-in. */
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
/** A Cookie header longer than this is not looked into (Node's header cap bounds it anyway). */
export const MAX_COOKIE_HEADER_CHARS = 8 * 1024;
const VALUE_RE = /^v1\.(\d{13})\.([0-9a-f]{16})\.([0-9a-f]{64})$/;

/**
 * The key that signs sessions, derived from the admin token (HKDF-SHA256, info "orca-ui-session"):
 * every server of a cluster (they share the token) and a restarted one accept a session, and a new
 * admin token ends every session. The token itself never signs anything.
 */
export function sessionKey(adminToken: string): Buffer {
  return Buffer.from(hkdfSync('sha256', adminToken, Buffer.alloc(0), 'orca-ui-session', 32));
}

function mac(key: Buffer, payload: string): string {
  return createHmac('sha256', key).update(payload).digest('hex');
}

/**
 * A new session value, `v1.<expiryMs>.<random16hex>.<hmac>`: stateless, so nothing is stored and
 * nothing needs sharing between servers; the random part makes two sign-ins in one millisecond differ.
 */
export function issueSession(key: Buffer, nowMs: number, random: Buffer = randomBytes(8)): { value: string; expiresMs: number } {
  const expiresMs = nowMs + SESSION_TTL_MS;
  const payload = `v1.${String(expiresMs).padStart(13, '0')}.${random.toString('hex').slice(0, 16).padEnd(16, '0')}`;
  return { value: `${payload}.${mac(key, payload)}`, expiresMs };
}

/** True when the value is a session this key signed and it has not expired; the MAC is compared in constant time. Never throws. */
export function sessionValid(key: Buffer, value: string | undefined, nowMs: number): boolean {
  if (!value || value.length > 200) return false;
  const m = VALUE_RE.exec(value);
  if (!m) return false;
  const expiresMs = Number(m[1]);
  const payload = `v1.${m[1]}.${m[2]}`;
  const want = Buffer.from(mac(key, payload), 'hex');
  const got = Buffer.from(m[3] ?? '', 'hex');
  if (got.length !== want.length || !timingSafeEqual(got, want)) return false;
  // Not beyond the lifetime a session is given either (a clock set far back would otherwise hold it for long).
  return nowMs < expiresMs && expiresMs - nowMs <= SESSION_TTL_MS;
}

/**
 * The value of one cookie in a Cookie header, or undefined. Hostile input: an overlong header is
 * not looked into, malformed pairs are skipped, a name present twice counts as absent (which one
 * the browser meant is ambiguous).
 */
export function cookieValue(header: string | string[] | undefined, name: string): string | undefined {
  const text = Array.isArray(header) ? header.join('; ') : header;
  if (!text || text.length > MAX_COOKIE_HEADER_CHARS) return undefined;
  let found: string | undefined;
  let count = 0;
  for (const part of text.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() !== name) continue;
    count++;
    found = part.slice(eq + 1).trim();
  }
  return count === 1 ? found : undefined;
}

/** The Set-Cookie header of a new session: HttpOnly, SameSite=Strict, Path=/, Secure under TLS. */
export function sessionCookie(value: string, secure: boolean): string {
  return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_TTL_MS / 1000}${secure ? '; Secure' : ''}`;
}

/** The Set-Cookie header that makes the browser forget its session. */
export function clearedCookie(secure: boolean): string {
  return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${secure ? '; Secure' : ''}`;
}
