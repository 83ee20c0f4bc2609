import { Command, CommanderError, Option } from 'commander';
import { EXIT, isCliError } from './exit.js';
import type { ClientOptions } from './client.js';
import { outputOption } from './format.js';
import { orcaVersion } from './version.js';

/** Global options that take a value (`--api URL`): the token after one is not the command. */
const GLOBAL_VALUE_OPTIONS = new Set(['--api', '--token', '--data-dir', '--ca-cert']);

/**
 * The command argv (node, script, args…) runs: its first word, past the global options and
 * their values. Undefined when that is not certain — no command, `help`, or an option before it
 * that is not a global one with its value (`-h`, `-V`, a mistake) — and then every command is
 * defined in full, as help and error messages need.
 */
export function invokedCommand(argv: string[]): string | undefined {
  const args = argv.slice(2);
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (GLOBAL_VALUE_OPTIONS.has(a)) {
      i++;
      continue;
    }
    if (a.includes('=') && GLOBAL_VALUE_OPTIONS.has(a.slice(0, a.indexOf('=')))) continue; // --api=URL
    if (a.startsWith('-') || a === 'help') return undefined;
    return a;
  }
  return undefined;
}

/**
 * The `orca` command's options and subcommands (cli/main.ts runs it). Command modules are
 * imported only when their command runs, so that `orca status` starts fast. With `argv`, only
 * the command it runs is defined in full (see invokedCommand); without, every command is.
 */
export function buildProgram(argv?: string[]): Command {
  const only = argv === undefined ? undefined : invokedCommand(argv);
  const program = new Command('orca')
    .description('Orca: a self-healing container orchestrator for a handful of Docker hosts')
    .version(orcaVersion(import.meta.dirname), '-V, --version', 'print the version')
    .option('--api <url>', 'server API URL, or several comma-separated (env ORCA_API, default http://127.0.0.1:6880)')
    .option('--token <token>', 'API token (env ORCA_TOKEN, default: <data-dir>/cluster.token)')
    .option('--data-dir <dir>', 'data directory (env ORCA_HOME, default ~/.orca)')
    .option('--ca-cert <file>', 'the cluster CA to trust for https:// and wss:// (env ORCA_CA_CERT, default <data-dir>/tls/ca.crt)')
    // Subcommands inherit this: `orca status --help` lists --api, --token and --data-dir too.
    .configureHelp({ showGlobalOptions: true })
    .showHelpAfterError()
    .exitOverride();
  const g = (): ClientOptions => program.opts();
  const collect = (v: string, prev: string[] = []) => [...prev, v];
  /**
   * A top-level command: always named and described (the command list, suggestions for a
   * mistyped one); its arguments, options, action and subcommands only when it may run, so that
   * `orca status` does not build the server's thirty options (a few ms of every start).
   */
  const command = (name: string, description: string, define: (c: Command) => unknown): void => {
    const c = program.command(name).description(description);
    if (only === undefined || only === name) define(c);
  };

  command('server', 'run the control plane (store, API, local agent) in the foreground', (c) =>
    c
      .option('--config <file>', 'cluster.toml with the same keys as the flags')
      .option('--api-listen <host:port>', 'API address (default 127.0.0.1:6880)')
      .option('--proxy-listen <host:port>', 'proxy address (default 127.0.0.1:8080)')
      .option('--proxy-workers <n|auto>', 'processes serving the proxy; 1 = in the server process (default auto: half the cores, at most 4)')
      .option('--node-name <name>', 'this node’s name (default: hostname)')
      .option('--advertise <addr>', 'address published ports bind to (default 127.0.0.1)')
      .option('--cluster-id <id>', 'cluster label on every container (default "default")')
      .option('--watchdog-interval <secs>', 'full resync period (default 30)')
      .option('--heartbeat-interval <secs>', 'agent heartbeat period (default 5)')
      .option('--heartbeat-timeout <secs>', 'node unreachable after (default 15)')
      .option('--node-down-grace <secs>', 'node down after (default 60)')
      .option('--leader-lease-secs <secs>', 'with --store etcd: the leader lease; a lost leader is replaced within it (+2 s) (default 5)')
      .option('--no-local-agent', 'do not run containers on this host')
      .option('--cluster-key-file <file>', 'the 32-byte key that seals secrets (default <data-dir>/cluster.key, made on first start)')
      .option('--allow-host-path <dir>', 'allow host mounts under this directory on this node (repeatable; none by default)', collect)
      .option('--tls', 'serve the API over TLS on loopback too (beyond loopback it always is, unless --insecure-plaintext)')
      .option('--tls-san <name>', 'another DNS name or IP address for the server certificate (repeatable)', collect)
      .option('--insecure-plaintext', 'serve the API in plaintext on a non-loopback address (tokens and secrets unencrypted; warned at every start)')
      .option('--store <etcd://host:port,…>', 'keep the cluster state in etcd v3 (several servers may share it); default: LevelDB in the data directory')
      .option('--store-prefix <prefix>', 'with --store: the etcd key prefix (default /orca/<cluster-id>)')
      .option('--etcd-ca <file>', 'with --store: TLS to etcd, trusting this CA (PEM)')
      .option('--etcd-cert <file>', 'with --store: TLS client certificate for etcd (PEM; with --etcd-key)')
      .option('--etcd-key <file>', 'with --store: the key of --etcd-cert (PEM)')
      .option('--token-file <file>', "the admin token to use (on a shared store: the first server's cluster.token) instead of making one")
      .option('--proxy-listen-tls <host:port>', 'serve HTTPS too, for routes with tls = "acme" or "manual" (default off)')
      .option('--acme-directory <url>', "the ACME CA's directory for tls = \"acme\" (default Let's Encrypt production)")
      .option('--acme-email <email>', 'the contact of the ACME account')
      .option('--acme-ca-file <file>', "trust this CA (PEM) for the ACME directory's HTTPS (a test CA)")
      .addOption(new Option('--acme-retry-secs <secs>', 'first retry of a failed certificate order (tests; default 1 h, doubling to 24 h)').hideHelp())
      .action(async (opts) => (await import('./commands/server.js')).run({ ...opts, dataDir: g().dataDir })),
  );

  command('agent', 'run a worker agent on this host in the foreground', (c) =>
    c
      .requiredOption('--join <url>', "the server's API URL, e.g. http://orca-server:6880")
      .option('--node-name <name>', 'this node’s name (default: hostname)')
      .option('--token-file <file>', 'file holding the join token (orca token create; env ORCA_JOIN_TOKEN), exchanged once for <data-dir>/node.credential')
      .option('--advertise <addr>', 'address published ports bind to (default 127.0.0.1)')
      .option('--cluster-id <id>', 'cluster label on every container (default "default")')
      .option('--reconnect-initial <secs>', 'first reconnect delay (default 5)')
      .option('--reconnect-max <secs>', 'longest reconnect delay (default 60)')
      .option('--watchdog-interval <secs>', 'full local resync period (default 30)')
      .option('--label <key=value>', 'node label for placement.labels (repeatable)', collect)
      .option('--allow-host-path <dir>', 'allow host mounts under this directory (repeatable; none by default)', collect)
      .option('--proxy-listen <host:port>', 'run the proxy on this node too, serving every route (off by default); also on the cluster network gateway (orca.internal) at the same port')
      .option('--proxy-listen-tls <host:port>', 'with --proxy-listen: serve HTTPS too, for routes with tls = "acme" or "manual" (the certificates come from the server)')
      .action(async (opts) => (await import('./commands/agent.js')).run(opts, g())),
  );

  command('apply', 'apply manifests (files or directories of *.toml)', (c) =>
    c
      .requiredOption('-f, --file <path>', 'manifest file or directory (repeatable)', collect)
      .option('--dry-run', 'show what would change, change nothing')
      .option('--wait', 'wait until the applied services are healthy and stable (fails fast on crashloop, a failed rollout or a missing image)')
      .option('--timeout <duration>', 'with --wait: give up after (default 300s)')
      .option('--settle <duration>', 'with --wait: every instance ready and none restarted for this long (default 2s)')
      .addOption(outputOption('{"dryRun","results":[{"service","result","revision"}]}; with --wait, progress goes to stderr'))
      .action(async (opts) => (await import('./commands/apply.js')).apply(g(), opts)),
  );

  command('diff', 'field-level diff of manifests against the stored desired state (exit 1 when different)', (c) =>
    c
      .requiredOption('-f, --file <path>', 'manifest file or directory (repeatable)', collect)
      .addOption(outputOption('{"differs","services":[{"service","exists","changes":[{"path","from","to"}]}]}'))
      .action(async (opts) => (await import('./commands/apply.js')).diff(g(), opts)),
  );

  command('schema', "print the manifest's JSON Schema (draft-07) for editors, e.g. orca schema > orca.schema.json", (c) =>
    c
      .action(async () => (await import('./commands/schema.js')).schema()),
  );

  command('import', 'translate another format into an Orca manifest', (c) =>
    c
      .command('compose')
      .description('print the Orca manifest for a Compose file; every key it could not translate is named on stderr with its line')
      .argument('<file>')
      .action(async (file: string) => (await import('./commands/import-compose.js')).importCompose(file)),
  );

  command('delete', 'delete services (by name, or those defined in manifests)', (c) =>
    c
      .argument('[service...]')
      .option('-f, --file <path>', 'manifest file or directory (repeatable)', collect)
      .option('--volumes', "also remove the services' named volumes once their containers are gone (their data is lost)")
      .action(async (services: string[], opts) => (await import('./commands/apply.js')).del(g(), services, opts)),
  );

  command('volumes', 'named volumes: node, service, slot, size when known, and whether an instance uses them', (c) =>
    c
      .addOption(outputOption('{"volumes":[{"name","node","service","volume","slot","inUse","size"}]}'))
      .action(async (opts) => (await import('./commands/volumes.js')).volumes(g(), opts)),
  );

  command('status', 'observed state of services', (c) =>
    c
      .argument('[service]')
      .addOption(outputOption('one line; with --watch, one line per refresh'))
      .option('-w, --watch', 'refresh every second until interrupted')
      .action(async (service: string | undefined, opts) => (await import('./commands/status.js')).status(g(), service, opts)),
  );

  command('logs', 'container output of a service', (c) =>
    c
      .argument('<service>')
      .option('--tail <n>', 'only the last N lines')
      .option('-f, --follow', 'stream new output')
      .option('--instance <id>', 'one instance')
      .option('-p, --previous', 'the last exited instance of each slot (why it died)')
      .action(async (service: string, opts) => (await import('./commands/logs.js')).logs(g(), service, opts)),
  );

  command('events', 'the reconciliation log: every action, by which reconciler, why, and its outcome', (c) =>
    c
      .option('-f, --follow', 'stream new events')
      .option('--service <name>', 'only this service')
      .option('--since <duration>', 'only events newer than this (e.g. 10m, 1h, 90s)')
      .addOption(outputOption('JSON Lines, one event object a line', { text: 'table' }))
      .action(async (opts) => (await import('./commands/events.js')).events(g(), opts)),
  );

  command('history', 'revisions of a service', (c) =>
    c
      .argument('<service>')
      .addOption(outputOption())
      .action(async (service: string, opts) => (await import('./commands/history.js')).history(g(), service, opts)),
  );

  command('rollback', 'apply an earlier revision as a new revision', (c) =>
    c
      .argument('<service>')
      .option('--to-revision <n>', 'revision to roll back to (default: the previous one)')
      .action(async (service: string, opts) => (await import('./commands/history.js')).rollback(g(), service, opts)),
  );

  command('nodes', 'nodes of the cluster', (c) => {
    c.addOption(outputOption()).action(async (opts) => (await import('./commands/nodes.js')).nodes(g(), opts));
    c.command('rm')
      .description('remove a node: revoke its credential, end its session, forget it; its replicas are rescheduled')
      .argument('<node>')
      .action(async (node: string) => (await import('./commands/nodes.js')).rm(g(), node));
  });

  command('servers', 'the servers of the control plane and which one leads', (c) =>
    c
      .addOption(outputOption())
      .action(async (opts) => (await import('./commands/servers.js')).servers(g(), opts)),
  );

  command('drain', 'move every replica off a node (start-first), and keep new ones away', (c) =>
    c
      .argument('<node>')
      .action(async (node: string) => (await import('./commands/nodes.js')).drain(g(), node, true)),
  );

  command('uncordon', 'let a drained node take replicas again', (c) =>
    c
      .argument('<node>')
      .action(async (node: string) => (await import('./commands/nodes.js')).drain(g(), node, false)),
  );

  command('rebalance', 'move replicas start-first, one at a time, until every service (or SERVICE) is spread again (after a node came back); slots with volumes stay', (c) =>
    c
      .argument('[service]')
      .addOption(outputOption('{"moved":[{"service","slot","from","to","instance","readyMs","goneMs"}],"failed","stay"} at the end'))
      .action(async (service: string | undefined, opts) => (await import('./commands/rebalance.js')).rebalance(g(), service, opts)),
  );

  command('token', 'join tokens: what a new agent presents once to get its node credential', (token) => {
    token
      .command('create')
      .description('make a join token and print it (alone on stdout)')
      .option('--ttl <duration>', 'valid for this long (default 24h)')
      .option('--uses <n>', 'at most this many joins (default unlimited)')
      .action(async (opts) => (await import('./commands/token.js')).create(g(), opts));
    token
      .command('ls')
      .description('join tokens: id, created, expires, uses used and left (never the secret)')
      .addOption(outputOption('{"tokens":[{"id","created","expires","uses","used","left","state"}]}'))
      .action(async (opts) => (await import('./commands/token.js')).ls(g(), opts));
    token
      .command('rm')
      .description('remove a join token (joins with it are refused; joined nodes stay)')
      .argument('<id>')
      .action(async (id: string) => (await import('./commands/token.js')).rm(g(), id));
  });

  command('cert', 'certificates for routes with tls = "manual" (SPEC: HTTPS at the edge)', (cert) =>
    cert
      .command('set')
      .description('store a certificate (PEM chain, leaf first) and its key for HOST, checked against HOST; every proxy serves it at once')
      .argument('<host>')
      .requiredOption('--cert <file>', 'the certificate chain, PEM')
      .requiredOption('--key <file>', 'its private key, PEM (no passphrase)')
      .action(async (host: string, opts) => (await import('./commands/certs.js')).set(g(), host, opts)),
  );

  command('certs', 'certificates: host, status (valid, pending, failed), issuer, expiry, and why', (c) =>
    c
      .addOption(outputOption('{"certs":[{"host","issuer","notAfter","status","reason"}]}'))
      .action(async (opts) => (await import('./commands/certs.js')).certs(g(), opts)),
  );

  command('secret', 'secrets: values sealed in the store, delivered to the services that name them', (secret) => {
    secret
      .command('set')
      .description('store a secret (the value from FILE or stdin, byte for byte, at most 64 KiB); a new value rolls out the services that use it')
      .argument('<name>')
      .option('-f, --file <file>', 'read the value from this file (default: stdin)')
      .action(async (name: string, opts) => (await import('./commands/secret.js')).set(g(), name, opts));
    secret
      .command('ls')
      .description('secrets: names, versions, when updated, used by (never values)')
      .addOption(outputOption('{"secrets":[{"name","version","updated","usedBy"}]}'))
      .action(async (opts) => (await import('./commands/secret.js')).ls(g(), opts));
    secret
      .command('rm')
      .description('remove a secret (refused while a service uses it)')
      .argument('<name>')
      .action(async (name: string) => (await import('./commands/secret.js')).rm(g(), name));
  });

  return program;
}

/** Runs `orca` with argv (node, script, args…); resolves with the exit code of SPEC §4. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram(argv);
  try {
    await program.parseAsync(argv);
    return process.exitCode === undefined ? EXIT.ok : Number(process.exitCode);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version') return EXIT.ok;
      return EXIT.invalid;
    }
    if (isCliError(err)) {
      process.stderr.write(`error: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`error: ${(err as Error)?.stack ?? String(err)}\n`);
    return EXIT.failed;
  }
}
