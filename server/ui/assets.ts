import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Content types of the files the dashboard may hold (anything else in ui/ is not served). */
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};
/** The files served without a session: the sign-in page and what it loads. */
export const PUBLIC_ASSETS = new Set(['login.html', 'login.js', 'login.css']);
/** A file larger than this in ui/ is not served (the dashboard's own are a few dozen KiB). */
const MAX_ASSET_BYTES = 2 * 1024 * 1024;

/** Security headers of every dashboard answer (pages, assets, stream). */
export const UI_HEADERS: Readonly<Record<string, string>> = {
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

export interface Asset {
  type: string;
  body: Buffer;
}

/**
 * The repository's ui/ folder, found from this module: server/ui/ when run from source,
 * dist/server/ui/ when built; the first ancestor holding ui/index.html. Null when none does.
 */
export function findUiDir(from = dirname(fileURLToPath(import.meta.url))): string | null {
  let dir = from;
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'ui');
    if (candidate !== from && existsSync(join(candidate, 'index.html'))) return candidate;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return null;
}

/** Reads the dashboard's files once (at start): name → content type and bytes. Empty when there is no ui/ folder. */
export function loadAssets(dir: string | null = findUiDir()): Map<string, Asset> {
  const out = new Map<string, Asset>();
  if (!dir) return out;
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    const path = join(dir, name);
    if (!type || !/^[A-Za-z0-9._-]+$/.test(name)) continue;
    const st = statSync(path);
    if (!st.isFile() || st.size > MAX_ASSET_BYTES) continue;
    out.set(name, { type, body: readFileSync(path) });
  }
  return out;
}
