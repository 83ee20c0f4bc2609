/**
 * A cheap, linear pass over a manifest's raw text that runs before the TOML parser and refuses
 * what would make the parser or the validator run long or overflow its stack: nesting deeper
 * than LIMITS.depth (arrays, inline tables, dotted keys, table headers), string literals longer
 * than LIMITS.stringChars and bare keys (or bare values) longer than LIMITS.bareWord.
 *
 * It is not a TOML parser: it only tracks strings, comments and brackets well enough to measure.
 * Valid TOML within the limits always passes; anything it does not understand is left to the
 * parser, which reports it as a syntax error. Runs in O(length of text), never throws.
 */
import { LIMITS } from './limits.js';

export interface PrescanError {
  /** 1-based. */
  line: number;
  col: number;
  message: string;
}

const NL = 10;
const CR = 13;
const TAB = 9;
const SPACE = 32;
const DQUOTE = 34;
const SQUOTE = 39;
const HASH = 35;
const BACKSLASH = 92;
const LBRACKET = 91;
const RBRACKET = 93;
const LBRACE = 123;
const RBRACE = 125;
const COMMA = 44;
const EQUALS = 61;
const DOT = 46;

/** Characters that end a bare word. */
function isBreak(c: number): boolean {
  return (
    c === NL || c === CR || c === TAB || c === SPACE || c === DQUOTE || c === SQUOTE || c === HASH || c === LBRACKET ||
    c === RBRACKET || c === LBRACE || c === RBRACE || c === COMMA || c === EQUALS || c === DOT
  );
}

/** The first limit the text exceeds, with its place, or null. */
export function prescan(text: string, limits: Pick<typeof LIMITS, 'depth' | 'bareWord' | 'stringChars'> = LIMITS): PrescanError | null {
  const n = text.length;
  /** Open brackets: 'h' a table header, 'a' an array, 't' an inline table. */
  const stack: Array<'h' | 'a' | 't'> = [];
  let keyMode = true;
  /** Dots seen in the current key (each is one more level of tables). */
  let keySegments = 0;
  let line = 1;
  let lineStart = 0;
  let i = 0;

  const at = (pos: number, message: string): PrescanError => ({ line, col: pos - lineStart + 1, message });
  const tooDeep = (pos: number) => at(pos, `nested more than ${limits.depth} levels deep`);
  const depth = () => stack.length + (keyMode ? keySegments : 0);
  const newline = (pos: number) => {
    line += 1;
    lineStart = pos + 1;
  };

  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === NL) {
      newline(i);
      if (stack.length === 0 || stack[stack.length - 1] === 'h') {
        stack.length = 0;
        keyMode = true;
        keySegments = 0;
      }
      i += 1;
    } else if (c === CR || c === TAB || c === SPACE) {
      i += 1;
    } else if (c === HASH) {
      while (i < n && text.charCodeAt(i) !== NL) i += 1;
    } else if (c === DQUOTE || c === SQUOTE) {
      const start = i;
      const triple = text.charCodeAt(i + 1) === c && text.charCodeAt(i + 2) === c;
      i += triple ? 3 : 1;
      let length = 0;
      for (;;) {
        if (i >= n) return null; // unterminated: the parser says so
        const d = text.charCodeAt(i);
        if (d === c && (!triple || (text.charCodeAt(i + 1) === c && text.charCodeAt(i + 2) === c))) {
          i += triple ? 3 : 1;
          // Up to two more quotes belong to the content of a multi-line string.
          if (triple) for (let k = 0; k < 2 && text.charCodeAt(i) === c; k++) i += 1;
          break;
        }
        if (d === NL) {
          if (!triple) break; // a one-line string cut by a newline: the parser says so
          newline(i);
        }
        if (d === BACKSLASH && c === DQUOTE) {
          if (text.charCodeAt(i + 1) === NL) newline(i + 1);
          i += 2;
          length += 2;
        } else {
          i += 1;
          length += 1;
        }
        if (length > limits.stringChars) {
          return at(start, `string longer than ${limits.stringChars} characters (the most a manifest string may hold)`);
        }
      }
    } else if (c === LBRACKET) {
      if (keyMode && (stack.length === 0 || stack[stack.length - 1] === 'h')) stack.push('h');
      else {
        stack.push('a');
        keyMode = false;
      }
      if (depth() > limits.depth) return tooDeep(i);
      i += 1;
    } else if (c === LBRACE) {
      stack.push('t');
      if (stack.length > limits.depth) return tooDeep(i);
      keyMode = true;
      keySegments = 0;
      i += 1;
    } else if (c === RBRACKET || c === RBRACE) {
      const top = stack.pop();
      if (top !== 'h') keyMode = false;
      i += 1;
    } else if (c === COMMA) {
      const top = stack[stack.length - 1];
      keyMode = top === 't';
      keySegments = 0;
      i += 1;
    } else if (c === EQUALS) {
      keyMode = false;
      keySegments = 0;
      i += 1;
    } else if (c === DOT) {
      if (keyMode) {
        keySegments += 1;
        if (depth() > limits.depth) return tooDeep(i);
      }
      i += 1;
    } else {
      const start = i;
      while (i < n && !isBreak(text.charCodeAt(i))) i += 1;
      if (i - start > limits.bareWord) {
        const what = keyMode ? 'key' : 'bare value';
        return at(start, `${what} longer than ${limits.bareWord} characters`);
      }
      if (i === start) i += 1;
    }
  }
  return null;
}
