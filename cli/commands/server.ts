import { createLogger } from '../../core/log.js';
import { isOrcaError } from '../../core/errors.js';
import { loadServerConfig, type ServerFlags } from '../../server/config.js';
import { startServerHost } from '../../hosts/server-host.js';
import { CliError, EXIT } from '../exit.js';

/** `orca server …`: runs until SIGINT or SIGTERM, then stops cleanly. */
export async function run(flags: ServerFlags): Promise<void> {
  const cfg = await loadServerConfig(flags);
  if (!cfg.ok) throw new CliError(EXIT.invalid, cfg.errors.join('\n'));
  const log = createLogger();
  let server;
  try {
    server = await startServerHost(cfg.value, { log });
  } catch (err) {
    if (isOrcaError(err)) {
      log.fatal({ code: err.code, err: { message: err.message } }, 'server could not start');
      throw new CliError(EXIT.failed, err.message);
    }
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') throw new CliError(EXIT.failed, `cannot listen: ${e.message} (another orca server? use --api-listen)`);
    throw err;
  }
  const running = server;
  const failure = await new Promise<Error | null>((resolve) => {
    const onSignal = (sig: string) => {
      log.info({ signal: sig }, 'stopping');
      resolve(null);
    };
    process.once('SIGINT', () => onSignal('SIGINT'));
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    // A server that cannot start serving (the proxy's address is taken…) must not linger half-up.
    running.ready().catch((err: Error) => resolve(err));
  });
  await server.stop();
  log.flush?.();
  if (failure) {
    const e = failure as NodeJS.ErrnoException;
    throw new CliError(EXIT.failed, e.code === 'EADDRINUSE' ? `cannot listen: ${e.message} (use --proxy-listen)` : `could not start serving: ${e.message}`);
  }
}
