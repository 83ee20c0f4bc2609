/**
 * A Compose file's text → its value as plain data, and the line of every key in it (for the
 * notes of `orca import compose`). The text is hostile: its size is bounded before parsing
 * (COMPOSE_MAX_BYTES), aliases are capped (a "billion laughs" document is refused, not
 * expanded), duplicate keys are errors as in Compose, and a parser that overflows its stack on
 * absurd nesting is reported, never thrown. Never throws.
 */
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';

/** The largest Compose file read, in bytes: real ones are a few KiB. */
export const COMPOSE_MAX_BYTES = 1024 * 1024;
/** Aliases a document may resolve (yaml's default): a few anchors are common, thousands an attack. */
export const COMPOSE_MAX_ALIASES = 100;

export type Path = ReadonlyArray<string | number>;

export interface ComposeSource {
  /** The document as plain data (merge keys `<<` applied). */
  value: unknown;
  /** The 1-based line of the key (or list item) at `path`; the nearest enclosing one if absent. */
  lineOf(path: Path): number;
}

export type SourceResult = { ok: true; source: ComposeSource } | { ok: false; line?: number; message: string };

export function readComposeText(text: string): SourceResult {
  if (Buffer.byteLength(text, 'utf8') > COMPOSE_MAX_BYTES) {
    return { ok: false, message: `larger than ${COMPOSE_MAX_BYTES / 1024} KiB, the most orca import compose reads` };
  }
  const lineCounter = new LineCounter();
  let doc: Document.Parsed;
  let value: unknown;
  try {
    doc = parseDocument(text, { lineCounter, merge: true, uniqueKeys: true, prettyErrors: false, strict: true });
    const err = doc.errors[0];
    if (err) {
      const line = err.pos?.[0] === undefined ? undefined : Math.max(1, lineCounter.linePos(err.pos[0]).line);
      return { ok: false, ...(line === undefined ? {} : { line }), message: `not valid YAML: ${firstLine(err.message)}` };
    }
    value = doc.toJS({ maxAliasCount: COMPOSE_MAX_ALIASES });
  } catch (e) {
    if (e instanceof RangeError) return { ok: false, message: 'not valid YAML: nested too deeply' };
    const msg = e instanceof Error ? e.message : String(e);
    if (/alias/i.test(msg)) return { ok: false, message: `refused: its aliases expand too much (more than ${COMPOSE_MAX_ALIASES}; a "billion laughs" document?)` };
    return { ok: false, message: `not valid YAML: ${firstLine(msg)}` };
  }
  const line = (offset: number | undefined) => (offset === undefined ? 1 : Math.max(1, lineCounter.linePos(offset).line));
  const root = doc.contents;
  return {
    ok: true,
    source: {
      value,
      lineOf(path: Path): number {
        let node: unknown = root;
        let at = line((root as Node | null)?.range?.[0]);
        for (const seg of path) {
          const found = child(doc, node, seg, 0);
          if (!found) break;
          at = line(found.offset);
          node = found.node;
        }
        return at;
      },
    },
  };
}

/** The child of a map (by key, following merge keys) or a list (by index), with its offset. */
function child(doc: Document.Parsed, node: unknown, seg: string | number, depth: number): { node: unknown; offset: number | undefined } | undefined {
  if (depth > 8) return undefined;
  if (isAlias(node)) node = node.resolve(doc);
  if (isMap(node)) {
    let merged: unknown[] = [];
    for (const pair of node.items) {
      // A merge key's value is a symbol; its source text is "<<".
      const key = isScalar(pair.key) ? (typeof pair.key.value === 'symbol' ? pair.key.source : String(pair.key.value)) : undefined;
      if (key === String(seg)) return { node: pair.value, offset: (pair.key as Node | null)?.range?.[0] };
      if (key === '<<') merged = isSeq(pair.value) ? pair.value.items : [pair.value];
    }
    for (const m of merged) {
      const found = child(doc, m, seg, depth + 1);
      if (found) return found;
    }
    return undefined;
  }
  if (isSeq(node) && typeof seg === 'number') {
    const item = node.items[seg] as Node | undefined;
    return item ? { node: item, offset: item.range?.[0] } : undefined;
  }
  return undefined;
}

const firstLine = (s: string) => (s.split('\n')[0] ?? '').slice(0, 200);
