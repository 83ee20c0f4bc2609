import type { EventRecord } from './types.js';

/** Longest identifier field of an event (time, reconciler, service, instance, node, action). */
export const MAX_EVENT_ID_CHARS = 256;
/** Longest free-text field of an event (reason, outcome, message). */
export const MAX_EVENT_TEXT_CHARS = 2 * 1024;
/** Upper bound of one stored event as JSON (what the caps above add up to, with room to spare). */
export const MAX_EVENT_RECORD_CHARS = 8 * 1024;

const CUT = '…[cut]';

function cut(s: unknown, max: number): string {
  const text = typeof s === 'string' ? s : String(s ?? '');
  return text.length <= max ? text : text.slice(0, max - CUT.length) + CUT;
}

const cutOrNull = (s: unknown, max: number): string | null => (s === null || s === undefined ? null : cut(s, max));

/**
 * The event as the ring keeps it: only the known fields, each string cut to its bound (marked
 * "…[cut]"), durationMs a finite number ≥ 0. Whatever a reconciler or an agent sent, one record
 * stays under MAX_EVENT_RECORD_CHARS as JSON. Pure; returns the same object when nothing changes.
 */
export function capEventRecord(e: EventRecord): EventRecord {
  const d = typeof e.durationMs === 'number' && Number.isFinite(e.durationMs) && e.durationMs >= 0 ? e.durationMs : 0;
  const out: EventRecord = {
    time: cut(e.time, MAX_EVENT_ID_CHARS),
    reconciler: cut(e.reconciler, MAX_EVENT_ID_CHARS),
    service: cutOrNull(e.service, MAX_EVENT_ID_CHARS),
    instance: cutOrNull(e.instance, MAX_EVENT_ID_CHARS),
    node: cutOrNull(e.node, MAX_EVENT_ID_CHARS),
    action: cut(e.action, MAX_EVENT_ID_CHARS),
    reason: cut(e.reason, MAX_EVENT_TEXT_CHARS),
    outcome: cut(e.outcome, MAX_EVENT_TEXT_CHARS),
    durationMs: d,
    ...(e.message !== undefined ? { message: cut(e.message, MAX_EVENT_TEXT_CHARS) } : {}),
  };
  // Characters that JSON escapes (quotes, control characters) can make a record longer than its
  // fields: halve the longest field until the whole fits.
  while (JSON.stringify(out).length > MAX_EVENT_RECORD_CHARS) {
    const fields = ['reason', 'outcome', 'message', 'time', 'reconciler', 'service', 'instance', 'node', 'action'] as const;
    let longest: (typeof fields)[number] = 'reason';
    for (const f of fields) if ((out[f]?.length ?? 0) > (out[longest]?.length ?? 0)) longest = f;
    const v = out[longest] ?? '';
    (out as unknown as Record<string, string>)[longest] = cut(v, Math.max(CUT.length, Math.floor(v.length / 2)));
  }
  const same = (Object.keys(e) as Array<keyof EventRecord>).length === Object.keys(out).length && (Object.keys(out) as Array<keyof EventRecord>).every((k) => out[k] === e[k]);
  return same ? e : out;
}
