/**
 * What a FakeRuntime container "does" once started: a tiny interpreter for the commands tests
 * use, so the fake prints logs and exits like a real container would.
 *
 * Understood: `sh -c SCRIPT` where SCRIPT is statements separated by `;`, `&&` or newlines:
 *   echo WORDS [>&2]   one log line; $VAR and ${VAR} expand from the container env
 *   exit [N]           exits with N (default 0)
 *   sleep N            waits N seconds on the fake's clock
 *   true / : / false   status 0 / 0 / 1
 *   exec CMD           the script becomes CMD (below)
 *   anything else      a no-op with status 0
 * and as a whole command (or after exec): `sleep N` (exits 0 after N s), `true`, `false`,
 * `sh -c ...`; any other program (a server, say) runs until stopped. A script that reaches its
 * end exits with the status of its last statement.
 */

export type Step =
  | { kind: 'echo'; text: string; stream: 'stdout' | 'stderr' }
  | { kind: 'status'; code: number }
  | { kind: 'exit'; code: number }
  | { kind: 'sleep'; secs: number }
  | { kind: 'forever' };

/** The steps of argv (entrypoint followed by cmd) in env. */
export function fakeProgram(argv: readonly string[], env: Record<string, string>): Step[] {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return [];
  const name = cmd.slice(cmd.lastIndexOf('/') + 1);
  if (name === 'sh' && args[0] === '-c' && args[1] !== undefined) return script(args[1], env);
  if (name === 'sleep') return [{ kind: 'sleep', secs: Number(args[0] ?? 0) || 0 }];
  if (name === 'true') return [];
  if (name === 'false') return [{ kind: 'status', code: 1 }];
  return [{ kind: 'forever' }];
}

function script(text: string, env: Record<string, string>): Step[] {
  const steps: Step[] = [];
  for (const raw of text.split(/;|&&|\n/)) {
    let words = shellWords(raw.trim(), env);
    if (words.length === 0) continue;
    if (words[0] === 'exec') {
      words = words.slice(1);
      steps.push(...fakeProgram(words, env));
      return steps;
    }
    const [cmd, ...args] = words;
    switch (cmd) {
      case 'echo': {
        const toStderr = args.some((a) => a === '>&2' || a === '1>&2');
        const text = args.filter((a) => !/^[12]?>&[12]$/.test(a)).join(' ');
        steps.push({ kind: 'echo', text, stream: toStderr ? 'stderr' : 'stdout' });
        break;
      }
      case 'exit':
        steps.push({ kind: 'exit', code: Number(args[0] ?? 0) || 0 });
        return steps;
      case 'sleep':
        steps.push({ kind: 'sleep', secs: Number(args[0] ?? 0) || 0 });
        break;
      case 'false':
        steps.push({ kind: 'status', code: 1 });
        break;
      default:
        steps.push({ kind: 'status', code: 0 });
    }
  }
  return steps;
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
