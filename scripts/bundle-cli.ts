/**
 * Bundles the CLI for a fast start (`npm run build` runs it after tsc). dist/cli/orca.cjs holds
 * cli/main.ts, cli/program.ts, commander and the light commands (status, logs, events, …) in one
 * CommonJS file, which Node loads with one read and one compile instead of resolving and
 * linking a tree of ES modules; bin/orca runs it. The commands that need the manifest schemas
 * (zod, TOML, YAML: apply, diff, schema, import, nodes, secret) are bundled on their own
 * (dist/cli/bundle/X.cjs) and loaded only when they run, so that `orca status` does not parse
 * a megabyte it never uses.
 *
 * The commands that start long-running processes (server, agent) pull Docker, the store, the
 * state machines and the proxy: they are not bundled, and the CLI loads their compiled modules
 * (dist/cli/commands/X.js) by dynamic import only when that command runs. The build fails if a
 * package that only they need slips into a bundle.
 *
 * Last, it writes dist/cli/orca.cjs.cache: V8's code cache for orca.cjs, taken after one
 * `orca status` (bin/orca hands it to V8, which then skips compiling what that run compiled).
 *
 *   node dist/scripts/bundle-cli.js
 */
import { build, type Metafile, type Plugin } from 'esbuild';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { ROOT } from './root.js';

/** Commands loaded from dist/cli/commands/ at run time, not bundled. */
export const UNBUNDLED_COMMANDS = ['server', 'agent'];

/** Commands with a bundle of their own (dist/cli/bundle/X.cjs): they import the manifest schemas. */
export const SEPARATE_COMMANDS = ['apply', 'schema', 'import-compose', 'nodes', 'secret'];

/** Packages that must be in no bundle: only the unbundled commands need them. */
const HEAVY_PACKAGES = ['dockerode', 'docker-modem', 'ssh2', 'level', 'classic-level', 'memory-level', 'etcd3', 'xstate', 'undici', 'pino', 'pino-pretty', 'prom-client', 'ws', 'acme-client', '@peculiar/x509'];

/** Packages that must not be in orca.cjs: only the separately bundled commands need them. */
const SCHEMA_PACKAGES = ['zod', '@iarna/toml', 'yaml'];

const CLI_DIST = join(ROOT, 'dist', 'cli');
const OUT = join(CLI_DIST, 'orca.cjs');
const PROGRAM = join(ROOT, 'cli', 'program.ts');

const COMMANDS = readdirSync(join(ROOT, 'cli', 'commands'))
  .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
  .map((f) => f.slice(0, -'.ts'.length));

/**
 * `import('./commands/X.js')` in cli/program.ts: bundled into orca.cjs for a light command;
 * `require('./bundle/X.cjs')` for a separately bundled one (CommonJS all the way, so Node's ES
 * module loader is never started); left as it is for an unbundled one (its compiled module).
 * commander is marked free of side effects: a command bundle that imports cli/format.ts for
 * jsonLine alone then leaves commander out.
 */
const commands: Plugin = {
  name: 'orca-cli-commands',
  setup(b) {
    b.onResolve({ filter: /^\.\/commands\/[a-z-]+\.js$/ }, (args) => {
      if (args.importer !== PROGRAM) return undefined;
      const name = args.path.slice('./commands/'.length, -'.js'.length);
      if (!COMMANDS.includes(name)) return { errors: [{ text: `cli/program.ts imports ${args.path}: no such command module` }] };
      if (UNBUNDLED_COMMANDS.includes(name)) return { errors: [{ text: `cli/program.ts: import('${args.path}') of an unbundled command was not rewritten` }] };
      if (SEPARATE_COMMANDS.includes(name)) return { path: name, namespace: 'orca-command' };
      return undefined;
    });
    b.onLoad({ filter: /.*/, namespace: 'orca-command' }, (args) => ({ contents: `module.exports = require('./bundle/${args.path}.cjs');`, loader: 'js' }));
    b.onResolve({ filter: /^\.\/(bundle\/[a-z-]+|import)\.cjs$/ }, (args) => ({ path: args.path, external: true }));
    // An unbundled command: `require('./import.cjs')('./commands/X.js')`, an import() made by a
    // file Node loads itself. bin/orca compiles orca.cjs with a code cache, and a function
    // restored from one cannot run import() (Node: "A dynamic import callback was not specified").
    b.onLoad({ filter: /[/\\]cli[/\\]program\.ts$/ }, async (args) => {
      let contents = await readFile(args.path, 'utf8');
      for (const name of UNBUNDLED_COMMANDS) {
        const from = `import('./commands/${name}.js')`;
        if (!contents.includes(from)) return { errors: [{ text: `cli/program.ts has no ${from}: update UNBUNDLED_COMMANDS` }] };
        contents = contents.replaceAll(from, `require('./import.cjs')('./commands/${name}.js')`);
      }
      return { contents, loader: 'ts' };
    });
    // commander requires node:child_process (and with it dgram, net's child-process plumbing)
    // for executable subcommands, which orca has none of: load it only if spawn is ever called.
    b.onResolve({ filter: /^node:child_process$/ }, (args) =>
      /[/\\]node_modules[/\\]commander[/\\]/.test(args.importer) ? { path: 'child_process', namespace: 'orca-lazy' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'orca-lazy' }, () => ({
      contents: "module.exports = { spawn: (...args) => require('node:child_process').spawn(...args) };",
      loader: 'js',
    }));
    b.onResolve({ filter: /^commander$/ }, async (args) => {
      if (args.pluginData === 'commander') return undefined;
      const r = await b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, pluginData: 'commander' });
      return { ...r, sideEffects: false };
    });
  },
};

rmSync(join(CLI_DIST, 'bundle'), { recursive: true, force: true });
rmSync(`${OUT}.cache`, { force: true });
const result = await build({
  entryPoints: {
    orca: join(ROOT, 'cli', 'main.ts'),
    ...Object.fromEntries(SEPARATE_COMMANDS.map((c) => [`bundle/${c}`, join(ROOT, 'cli', 'commands', `${c}.ts`)])),
  },
  outdir: CLI_DIST,
  outExtension: { '.js': '.cjs' },
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // Every import() left (node:http in cli/client.ts) becomes a require(): see import.cjs above.
  supported: { 'dynamic-import': false },
  // The version lookup walks up from here to package.json: dist/cli/ or dist/cli/bundle/ will do.
  define: { 'import.meta.dirname': '__dirname' },
  plugins: [commands],
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
  banner: { js: '// Generated by scripts/bundle-cli.ts (npm run build): the orca CLI for a fast start. Do not edit.' },
});

const problems = [...result.errors, ...result.warnings].map((m) => m.text);
const inputsOf = (out: Metafile['outputs'][string]) => Object.keys(out.inputs);
for (const [file, out] of Object.entries(result.metafile.outputs)) {
  const forbidden = file.endsWith('/orca.cjs') ? [...HEAVY_PACKAGES, ...SCHEMA_PACKAGES] : HEAVY_PACKAGES;
  for (const pkg of forbidden) {
    const hit = inputsOf(out).find((i) => i.includes(`node_modules/${pkg}/`));
    if (hit) problems.push(`${hit} is in ${file}: a command imports more than it should (or belongs in UNBUNDLED_COMMANDS / SEPARATE_COMMANDS)`);
  }
}
if (problems.length) {
  process.stderr.write(`bundle-cli: ${problems.join('\n')}\n`);
  process.exit(1);
}

writeFileSync(
  join(CLI_DIST, 'import.cjs'),
  '// Generated by scripts/bundle-cli.ts: orca.cjs loads the unbundled commands (ES modules) through this.\n' +
    "'use strict';\nmodule.exports = (specifier) => import(specifier);\n",
);

// The code cache: one run of `orca status` against a stand-in for the API (a service with two
// instances), with bin/orca told to write the cache on exit, so that it holds the code of the
// request and of the table too. Without a cache the CLI works the same, only starts slower.
const instance = (i: number) => ({ id: `web-${i}`, node: 'n1', state: 'running', ready: true, restarts: 0, address: `127.0.0.1:${32000 + i}`, lastExit: null });
const sample = JSON.stringify({
  services: [{ name: 'web', revision: 1, state: 'healthy', replicas: { ready: 2, running: 2, desired: 2 }, instances: [instance(1), instance(2)] }],
});
const api = createServer((req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(req.url === '/v1/status' ? sample : '{}'));
await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
const run = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'orca'), 'status', '--api', `http://127.0.0.1:${(api.address() as AddressInfo).port}`], {
    env: { ...process.env, ORCA_CLI_WRITE_CODE_CACHE: '1', ORCA_TOKEN: 'none' },
    stdio: ['ignore', 'ignore', 'pipe'],
    timeout: 30_000,
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  child.on('close', (code) => resolve({ code, stderr }));
});
api.close();
const cached = existsSync(`${OUT}.cache`);
if (run.code !== 0 || !cached) {
  process.stderr.write(`bundle-cli: orca status from the bundle failed (exit ${run.code}): ${run.stderr}\n`);
  process.exit(1);
}

const kib = (file: string) => `${((result.metafile.outputs[relative(process.cwd(), file)]?.bytes ?? 0) / 1024).toFixed(0)} KiB`;
process.stdout.write(
  `bundle-cli: ${relative(ROOT, OUT)} (${kib(OUT)}${cached ? ', code cache' : ''}); own bundles in dist/cli/bundle/: ${SEPARATE_COMMANDS.join(', ')}; not bundled: ${UNBUNDLED_COMMANDS.join(', ')}\n`,
);
