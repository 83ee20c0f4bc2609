/**
 * What a FakeRuntime process "does": the main process of a started container, or a command run
 * by exec. A tiny interpreter for the commands tests use, so the fake prints, touches files and
 * exits like a real container would. FakeRuntime runs the steps (see Step) against the
 * container's fake filesystem, on its clock.
 *
 * Understood: `sh -c SCRIPT` where SCRIPT is statements separated by `;` or newlines, or joined
 * by `&&` / `||` (the next statement runs only if the last status was 0 / not 0):
 *   echo WORDS [>&2] [> FILE | >> FILE]   one line of output (or into FILE); $VAR and ${VAR}
 *                                         expand from the container env
 *   cat FILE...        prints the files; status 1 (and a message on stderr) if one is missing
 *   touch FILE...      creates empty files (keeps existing content)
 *   rm [-f] FILE...    removes files; status 1 for a missing one unless -f
 *   test -e|-f FILE, [ -e|-f FILE ]   status 0 if FILE exists, else 1
 *   exit [N]           exits with N (default 0)
 *   sleep N            waits N seconds on the fake's clock
 *   true / : / false   status 0 / 0 / 1
 *   exec CMD           the script becomes CMD (below)
 *   anything else      a no-op with status 0
 * and as a whole command (or after exec): `sleep N` (exits 0 after N s), `true`, `false`,
 * `cat`, `touch`, `rm`, `test`, `echo`, `sh -c ...`; any other program (a server, say) runs
 * until stopped (for exec: until the timeout). A script that reaches its end exits with the
 * status of its last statement. Not understood: pipes, quoting of `;` `&&` `||`, variables set
 * by the script, redirections other than the ones above.
 */

export interface Redirect {
  path: string;
  append: boolean;
}

export type Step =
  | { kind: 'echo'; text: string; stream: 'stdout' | 'stderr'; to?: Redirect }
  | { kind: 'cat'; paths: string[]; to?: Redirect }
  | { kind: 'touch'; paths: string[] }
  | { kind: 'rm'; paths: string[]; force: boolean }
  | { kind: 'exists'; path: string }
  | { kind: 'status'; code: number }
  | { kind: 'exit'; code: number }
  /** Exits with the status of the last step (the end of an `exec`ed program). */
  | { kind: 'end' }
  /** Skips the next `count` steps when the last status is a success (`||`) / failure (`&&`). */
  | { kind: 'skip'; when: 'success' | 'failure'; count: number }
  | { kind: 'sleep'; secs: number }
  | { kind: 'forever' };

/** The steps of argv (entrypoint followed by cmd, or an exec's command) in env. */
export function fakeProgram(argv: readonly string[], env: Record<string, string>): Step[] {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return [];
  const name = cmd.slice(cmd.lastIndexOf('/') + 1);
  if (name === 'sh' && args[0] === '-c' && args[1] !== undefined) return script(args[1], env);
  if (name === 'echo') return [{ kind: 'echo', text: args.join(' '), stream: 'stdout' }];
  return builtin(name, args) ?? [{ kind: 'forever' }];
}

/** Programs that behave the same as a whole command and inside a script; undefined for others. */
function builtin(name: string, args: string[], to?: Redirect): Step[] | undefined {
  switch (name) {
    case 'sleep':
      return [{ kind: 'sleep', secs: Number(args[0] ?? 0) || 0 }];
    case 'true':
    case ':':
      return [{ kind: 'status', code: 0 }];
    case 'false':
      return [{ kind: 'status', code: 1 }];
    case 'cat':
      return [{ kind: 'cat', paths: args.filter((a) => a !== '-'), ...(to ? { to } : {}) }];
    case 'touch':
      return [{ kind: 'touch', paths: args.filter((a) => !a.startsWith('-')) }];
    case 'rm': {
      const flags = args.filter((a) => a.startsWith('-'));
      return [{ kind: 'rm', paths: args.filter((a) => !a.startsWith('-')), force: flags.some((f) => f.includes('f')) }];
    }
    case 'test':
    case '[': {
      const operands = name === '[' && args[args.length - 1] === ']' ? args.slice(0, -1) : args;
      const [op, path] = operands;
      if ((op === '-e' || op === '-f') && path !== undefined && operands.length === 2) return [{ kind: 'exists', path }];
      return [{ kind: 'status', code: operands.length === 1 && operands[0] !== '' ? 0 : 1 }];
    }
    default:
      return undefined;
  }
}

function script(text: string, env: Record<string, string>): Step[] {
  const steps: Step[] = [];
  // Statements and the separators before them: `;` / newline (always runs), `&&`, `||`.
  const parts = text.split(/(;|&&|\|\||\n)/);
  let joiner: string | undefined;
  for (let p = 0; p < parts.length; p += 2) {
    const sep = joiner;
    joiner = parts[p + 1];
    const stmt = statement(shellWords((parts[p] ?? '').trim(), env), env);
    if (stmt.length === 0) continue;
    if (sep === '&&') steps.push({ kind: 'skip', when: 'failure', count: stmt.length });
    if (sep === '||') steps.push({ kind: 'skip', when: 'success', count: stmt.length });
    steps.push(...stmt);
  }
  return steps;
}

/** The steps of one script statement (empty for an empty one). */
function statement(all: string[], env: Record<string, string>): Step[] {
  const { words, to } = redirects(all);
  if (words.length === 0) return [];
  const [cmd = '', ...args] = words;
  switch (cmd) {
    case 'exec':
      // The rest of the script never runs: the process ends with the exec'ed program.
      return [...fakeProgram(args, env), { kind: 'end' }];
    case 'echo': {
      const toStderr = args.some((a) => a === '>&2' || a === '1>&2');
      const text = args.filter((a) => !/^[12]?>&[12]$/.test(a)).join(' ');
      return [{ kind: 'echo', text, stream: toStderr ? 'stderr' : 'stdout', ...(to ? { to } : {}) }];
    }
    case 'exit':
      return [{ kind: 'exit', code: Number(args[0] ?? 0) || 0 }];
    default:
      return builtin(cmd, args, to) ?? [{ kind: 'status', code: 0 }];
  }
}

/** Splits off `> FILE`, `>> FILE`, `>FILE` (stdout only; 2>... redirections are dropped). */
function redirects(words: string[]): { words: string[]; to?: Redirect } {
  const out: string[] = [];
  let to: Redirect | undefined;
  for (let i = 0; i < words.length; i++) {
    const w = words[i] as string;
    const m = /^(1|2)?(>>?)(.*)$/.exec(w);
    if (!m || /^[12]?>&[12]$/.test(w)) {
      out.push(w);
      continue;
    }
    let path = m[3] ?? '';
    if (path === '') path = words[++i] ?? '';
    if (m[1] !== '2' && path !== '') to = { path, append: m[2] === '>>' };
  }
  return to ? { words: out, to } : { words: out };
}

/** Shell-like words: 'single' literal, "double" and bare words expand $VAR / ${VAR}. */
function shellWords(s: string, env: Record<string, string>): string[] {
  const words: string[] = [];
  const re = /'([^']*)'|"((?:[^"\\]|\\.)*)"|(\S+)/g;
  let current: string | undefined;
  let lastEnd = -1;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    const piece = m[1] ?? expand((m[2] ?? m[3] ?? '').replace(/\\(.)/g, '$1'), env);
    // Adjacent pieces without whitespace form one word (a"b"c).
    if (current !== undefined && m.index === lastEnd) current += piece;
    else {
      if (current !== undefined) words.push(current);
      current = piece;
    }
    lastEnd = m.index + m[0].length;
  }
  if (current !== undefined) words.push(current);
  return words;
}

function expand(s: string, env: Record<string, string>): string {
  return s.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_, a, b) => env[a ?? b] ?? '');
}
