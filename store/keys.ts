/**
 * Key layout of the store (one flat LevelDB keyspace, UTF-8 keys, JSON values):
 *
 *   meta!format                          store-format marker, written once on creation
 *   svc!<name>                           ServiceRecord (kept after delete, with deletedAt)
 *   ctr!<name>                           { last: number }, highest revision ever issued; never deleted
 *   rev!<name>!<revision, 10 digits>     RevisionRecord
 *   evt!<time ms, 15 digits>!<seq, 12>   EventRecord; seq is a store-wide counter, so keys never collide
 *   kv!<key>                             any JSON value
 *
 * Zero-padded numbers make byte order equal numeric order, so range scans come back sorted.
 */

import { OrcaError } from '../core/errors.js';

export const FORMAT_KEY = 'meta!format';
/** Bump when the layout above changes incompatibly. */
export const STORE_FORMAT = 1;

export const PREFIX = {
  meta: 'meta!',
  service: 'svc!',
  counter: 'ctr!',
  revision: 'rev!',
  event: 'evt!',
  kv: 'kv!',
} as const;

const REVISION_DIGITS = 10;
const EVENT_MS_DIGITS = 15;
const EVENT_SEQ_DIGITS = 12;

export const MAX_REVISION = 10 ** REVISION_DIGITS - 1;
export const MAX_EVENT_MS = 10 ** EVENT_MS_DIGITS - 1;

function pad(n: number, digits: number): string {
  return String(n).padStart(digits, '0');
}

/**
 * Throws ORCA_INTERNAL for a service name that would break the key layout (empty or holding '!').
 * Names that pass the manifest's DNS-label rule always pass here.
 */
export function assertServiceName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0 || name.includes('!')) {
    throw new OrcaError('ORCA_INTERNAL', `invalid service name for the store: ${JSON.stringify(name)}`);
  }
}

export const serviceKey = (name: string): string => `${PREFIX.service}${name}`;
export const counterKey = (name: string): string => `${PREFIX.counter}${name}`;
export const revisionPrefix = (name: string): string => `${PREFIX.revision}${name}!`;
export const revisionKey = (name: string, revision: number): string =>
  `${revisionPrefix(name)}${pad(revision, REVISION_DIGITS)}`;
export const eventKey = (timeMs: number, seq: number): string =>
  `${PREFIX.event}${pad(timeMs, EVENT_MS_DIGITS)}!${pad(seq, EVENT_SEQ_DIGITS)}`;
/** The smallest event key at or after timeMs. */
export const eventFloorKey = (timeMs: number): string => `${PREFIX.event}${pad(timeMs, EVENT_MS_DIGITS)}`;
export const kvKey = (key: string): string => `${PREFIX.kv}${key}`;

/**
 * Range covering every key that starts with prefix, for prefixes that end in '!'
 * ('"' is the next byte after '!').
 */
export function prefixRange(prefix: string): { gte: string; lt: string } {
  if (!prefix.endsWith('!')) throw new OrcaError('ORCA_INTERNAL', `prefix must end in '!': ${prefix}`);
  return { gte: prefix, lt: `${prefix.slice(0, -1)}"` };
}

/** Parses `rev!<name>!<revision>`; undefined when the key is not of that shape. */
export function parseRevisionKey(key: string): { name: string; revision: number } | undefined {
  const m = /^rev!([^!]+)!(\d{10})$/.exec(key);
  if (!m || m[1] === undefined || m[2] === undefined) return undefined;
  return { name: m[1], revision: Number(m[2]) };
}

/** Parses `evt!<ms>!<seq>`; undefined when the key is not of that shape. */
export function parseEventKey(key: string): { timeMs: number; seq: number } | undefined {
  const m = /^evt!(\d{15})!(\d{12})$/.exec(key);
  if (!m || m[1] === undefined || m[2] === undefined) return undefined;
  return { timeMs: Number(m[1]), seq: Number(m[2]) };
}
