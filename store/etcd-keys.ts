/**
 * Key layout of the store on etcd: the LevelDB layout (keys.ts) under `<prefix>/store/`, so one
 * etcd cluster can hold several Orca clusters (one prefix each, default `/orca/<cluster-id>`) and
 * the leader election's keys (`<prefix>/election/`, `<prefix>/servers/`) sit beside the data:
 *
 *   <prefix>/store/meta!format                              store-format marker, written once
 *   <prefix>/store/svc!<name>                               ServiceRecord; its revision is the last issued
 *   <prefix>/store/rev!<name>!<revision, 10 digits>         RevisionRecord
 *   <prefix>/store/evt!<ms, 15>!<open rev, 20>!<seq, 12>!<writer>   EventRecord
 *   <prefix>/store/kv!<key>                                 any JSON value
 *
 * No counter key: the service record is never deleted (delete only marks it) and always holds the
 * highest revision issued, so it is the counter, and the compare-and-swap target of a commit.
 * Event keys sort by time, then by the etcd revision at which their writer opened the store, then
 * by the writer's own sequence: a writer that opens later sorts after every earlier one within a
 * millisecond, and the writer id keeps two servers that opened at the same revision apart.
 */

import { OrcaError } from '../core/errors.js';
import { PREFIX } from './keys.js';

const EVENT_MS_DIGITS = 15;
const OPEN_REV_DIGITS = 20;
const EVENT_SEQ_DIGITS = 12;

export const MAX_EVENT_SEQ = 10 ** EVENT_SEQ_DIGITS - 1;

/** The part of every store key after the prefix. */
export const STORE_DIR = '/store/';

const pad = (n: number | bigint | string, digits: number): string => String(n).padStart(digits, '0');

/**
 * Why `prefix` cannot be a store prefix, or null: it must start with '/', not end with one, and
 * hold only printable ASCII without spaces (at most 256 characters).
 */
export function prefixProblem(prefix: string): string | null {
  if (prefix.length > 256) return 'must be at most 256 characters';
  if (!prefix.startsWith('/')) return "must start with '/'";
  if (prefix.length > 1 && prefix.endsWith('/')) return "must not end with '/'";
  if (prefix === '/') return "must name a directory below '/' (for example /orca/default)";
  if (!/^[\x21-\x7e]+$/.test(prefix)) return 'must be printable ASCII without spaces';
  if (prefix.includes('//')) return "must not hold '//'";
  return null;
}

/** The default prefix of a cluster: `/orca/<cluster-id>`. */
export const defaultStorePrefix = (clusterId: string): string => `/orca/${clusterId}`;

/** An event key of writer `writer` (hex) that opened the store at etcd revision `openRev`. */
export function etcdEventKey(timeMs: number, openRev: string, seq: number, writer: string): string {
  if (!/^\d{1,20}$/.test(openRev)) throw new OrcaError('ORCA_INTERNAL', `bad etcd revision ${JSON.stringify(openRev)}`);
  return `${PREFIX.event}${pad(timeMs, EVENT_MS_DIGITS)}!${pad(openRev, OPEN_REV_DIGITS)}!${pad(seq, EVENT_SEQ_DIGITS)}!${writer}`;
}

/** The smallest event key at or after timeMs. */
export const etcdEventFloorKey = (timeMs: number): string => `${PREFIX.event}${pad(timeMs, EVENT_MS_DIGITS)}`;

/** Whether `key` (after the store directory) has the shape of an event key. */
export const isEtcdEventKey = (key: string): boolean => /^evt!\d{15}!\d{20}!\d{12}![0-9a-f]{1,32}$/.test(key);

/**
 * The end (exclusive) of the range of every key starting with `start`: the same bytes with the
 * last byte that is not 0xff incremented (etcd's prefix range). Throws ORCA_INTERNAL for an empty
 * or all-0xff start.
 */
export function prefixEnd(start: Buffer): Buffer {
  const end = Buffer.from(start);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] ?? 0xff) < 0xff) {
      end[i] = (end[i] ?? 0) + 1;
      return end.subarray(0, i + 1);
    }
  }
  throw new OrcaError('ORCA_INTERNAL', 'no prefix range for an empty or all-0xff key');
}

/** The smallest key after `key` (for paging a range upwards). */
export const keyAfter = (key: Buffer): Buffer => Buffer.concat([key, Buffer.from([0])]);
