/**
 * `[[alert]]` tables of cluster.toml (SPEC §6): where alerts go and which kinds each receiver
 * wants. Parsed here, apart from the rest of the server's settings; every problem names the
 * table and key (`alert[1].webhook: …`).
 */

/** The alert kinds of SPEC §6, in the order the docs list them. */
export const ALERT_KINDS = ['crashloop', 'rollout-failed', 'oom', 'node-unreachable', 'node-down', 'cert-failed'] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];

/** Bounds and timing of alert delivery (all in one place; units in the names). */
export const ALERT_DEFAULTS = {
  /** `[[alert]]` tables at most. */
  maxWebhooks: 16,
  maxUrlChars: 2048,
  maxHeaders: 16,
  maxHeaderValueChars: 4096,
  /** One attempt: connect, send, status line and headers. */
  attemptTimeoutMs: 5_000,
  /** Attempts per alert and webhook (the first included); then the alert is given up with an event. */
  maxAttempts: 6,
  /** Retry delays: 1, 2, 4, 8, 16 … s, capped. */
  retryInitialMs: 1_000,
  retryMaxMs: 60_000,
  /** Alerts waiting per webhook; beyond it the oldest are dropped (with an event saying how many). */
  queueMax: 1_000,
  /** At most one `oom` alert per service in this window; the kills in between are counted in the next. */
  oomWindowMs: 60_000,
  /** The facts are looked at again this often even without a poke. */
  checkIntervalMs: 5_000,
  /** A poke (an event, a node's report) is looked at after this (bursts fold into one look). */
  pokeDebounceMs: 200,
} as const;

export interface AlertWebhook {
  /** `alert[i]`: how logs and events name it (never with its headers, which may hold a token). */
  name: string;
  url: string;
  kinds: readonly AlertKind[];
  headers: Record<string, string>;
}

/** Header names a webhook may not set: the request's framing and target are Orca's. */
const RESERVED_HEADERS = new Set(['host', 'content-length', 'content-type', 'transfer-encoding', 'connection', 'expect', 'upgrade', 'te', 'trailer', 'keep-alive']);
const TOKEN_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/;

const show = (v: unknown): string => {
  const s = typeof v === 'string' ? `"${v}"` : JSON.stringify(v) ?? String(v);
  return s.length > 120 ? `${s.slice(0, 117)}…` : s;
};

/**
 * Parses the `alert` array of cluster.toml (undefined: no alerts). Each problem is pushed to
 * `errors` prefixed with `file` and naming `alert[i].key`; returns what was valid.
 * `on` omitted means every kind; an empty `on` is an error (omit the table instead).
 */
export function parseAlertConfig(raw: unknown, file: string, errors: string[]): AlertWebhook[] {
  if (raw === undefined) return [];
  const err = (m: string) => errors.push(`${file}: ${m}`);
  if (!Array.isArray(raw)) {
    err('alert: must be [[alert]] tables');
    return [];
  }
  if (raw.length > ALERT_DEFAULTS.maxWebhooks) err(`alert: at most ${ALERT_DEFAULTS.maxWebhooks} [[alert]] tables, got ${raw.length}`);
  const out: AlertWebhook[] = [];
  raw.slice(0, ALERT_DEFAULTS.maxWebhooks).forEach((t: unknown, i) => {
    const where = `alert[${i}]`;
    if (typeof t !== 'object' || t === null || Array.isArray(t)) {
      err(`${where}: must be a table with webhook = "URL"`);
      return;
    }
    const table = t as Record<string, unknown>;
    const before = errors.length;
    const unknown = Object.keys(table).filter((k) => k !== 'webhook' && k !== 'on' && k !== 'headers');
    if (unknown.length) err(`${where}: unknown key ${unknown.map((k) => `"${k.slice(0, 60)}"`).join(', ')} (allowed: webhook, on, headers)`);

    const url = webhookUrl(table.webhook);
    if (typeof url !== 'string') err(`${where}.webhook: ${url.problem}`);

    let kinds: AlertKind[] = [...ALERT_KINDS];
    if (table.on !== undefined) {
      if (!Array.isArray(table.on)) err(`${where}.on: must be a list of kinds, e.g. on = ["crashloop", "node-down"]`);
      else if (table.on.length === 0) err(`${where}.on: is empty; list at least one kind, or leave "on" out for all of them`);
      else {
        kinds = [];
        for (const k of table.on) {
          if (typeof k === 'string' && (ALERT_KINDS as readonly string[]).includes(k)) {
            if (!kinds.includes(k as AlertKind)) kinds.push(k as AlertKind);
          } else err(`${where}.on: unknown kind ${show(k)}; valid kinds: ${ALERT_KINDS.join(', ')}`);
        }
      }
    }

    const headers: Record<string, string> = {};
    if (table.headers !== undefined) {
      const h = table.headers;
      if (typeof h !== 'object' || h === null || Array.isArray(h)) err(`${where}.headers: must be a table, e.g. headers = { Authorization = "Bearer …" }`);
      else {
        const entries = Object.entries(h as Record<string, unknown>);
        if (entries.length > ALERT_DEFAULTS.maxHeaders) err(`${where}.headers: at most ${ALERT_DEFAULTS.maxHeaders} headers`);
        for (const [name, value] of entries.slice(0, ALERT_DEFAULTS.maxHeaders)) {
          const at = `${where}.headers.${name.slice(0, 60)}`;
          if (!TOKEN_RE.test(name)) err(`${at}: not a valid HTTP header name`);
          else if (RESERVED_HEADERS.has(name.toLowerCase())) err(`${at}: is set by Orca and cannot be configured`);
          // Only the value's kind and length are named: it may be a token.
          else if (typeof value !== 'string') err(`${at}: must be a string`);
          else if (value.length > ALERT_DEFAULTS.maxHeaderValueChars) err(`${at}: at most ${ALERT_DEFAULTS.maxHeaderValueChars} characters`);
          else if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(value) || /[^\u0000-\u00ff]/.test(value)) err(`${at}: must not hold control characters (line breaks included) or characters beyond Latin-1`);
          else headers[name] = value;
        }
      }
    }
    if (errors.length === before && typeof url === 'string') out.push({ name: where, url, kinds, headers });
  });
  return out;
}

/** The webhook URL, normalised, or why it cannot be one. */
function webhookUrl(v: unknown): string | { problem: string } {
  if (v === undefined) return { problem: 'is required: the URL alerts are POSTed to (http:// or https://)' };
  if (typeof v !== 'string') return { problem: `must be a URL string, got ${show(v)}` };
  if (v.length > ALERT_DEFAULTS.maxUrlChars) return { problem: `at most ${ALERT_DEFAULTS.maxUrlChars} characters` };
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return { problem: `${show(v)} is not a URL; expected http://HOST[:PORT]/PATH or https://…` };
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return { problem: `${show(v)}: only http:// and https:// webhooks are supported, not ${u.protocol.replace(/:$/, '')}://` };
  if (!u.hostname) return { problem: `${show(v)} has no host` };
  if (u.hash) return { problem: `${show(v)}: a webhook URL has no #fragment` };
  return u.href;
}
