/**
 * Splitting what an agent sends so that no message exceeds the server's limit
 * (LIMITS.maxMessageBytes): batches of records are cut into parts of at most `maxCount` records
 * and about `budgetBytes` of JSON. Pure.
 */

/**
 * Cuts items into consecutive parts, each of at most maxCount items and at most budgetBytes of
 * JSON (an item larger than the budget alone goes in a part of its own). Always at least one
 * part (possibly empty), so a caller can send "the whole set, which is empty".
 */
export function splitByBytes<T>(items: readonly T[], budgetBytes: number, maxCount: number): T[][] {
  const parts: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = Buffer.byteLength(JSON.stringify(item) ?? 'null') + 1;
    if (current.length > 0 && (bytes + size > budgetBytes || current.length >= maxCount)) {
      parts.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += size;
  }
  parts.push(current);
  return parts;
}

/** The JSON size of a value in bytes. */
export function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? 'null');
}
