import type { Clock, TimerHandle } from '../core/clock.js';
import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/log.js';

export interface GatewayListenerDeps {
  clock: Clock;
  log: Logger;
  /** The cluster network's gateway address now (null: no network yet, or it has no gateway). May reject. */
  gateway: () => Promise<string | null>;
  /** Listens on host:port (the proxy's listenAlso); rejects when it cannot. */
  listen: (host: string, port: number) => Promise<{ close(): Promise<void> }>;
  /** The port: the proxy's own (SPEC §3.8: `http://orca.internal:<proxy port>`). */
  port: number;
  /** How often the gateway is looked at again (the network may have been made again on another subnet). */
  recheckMs: number;
}

/**
 * Keeps the node's proxy listening on its cluster network's gateway address too, at the proxy's
 * port, so that containers reach it as `orca.internal` (their hosts file maps that name to the
 * same gateway, see DockerRuntime.create). The network appears with the node's first instance
 * and may be made again on another subnet: the gateway is looked at on `poke()` while there is no
 * listener, and every `recheckMs` in any case; a new address moves the listener there. When it
 * cannot listen (the address is absent, the port taken) it logs why, once per address and
 * reason, and the proxy goes on serving its main listener. Never throws.
 */
export class GatewayListener {
  private current: { address: string; close(): Promise<void> } | null = null;
  private lastProblem = '';
  private running: Promise<void> | null = null;
  private again = false;
  private timer: TimerHandle | null = null;
  private stopped = false;

  constructor(private readonly deps: GatewayListenerDeps) {}

  /** Where it listens now ("ip:port"), or null. */
  get address(): string | null {
    return this.current ? `${this.current.address}:${this.deps.port}` : null;
  }

  /** Looks now, then every recheckMs until stop(). */
  start(): Promise<void> {
    const tick = () => {
      if (this.stopped) return;
      this.timer = this.deps.clock.setTimeout(() => {
        this.timer = null;
        void this.check().finally(tick);
      }, this.deps.recheckMs);
    };
    return this.check().finally(tick);
  }

  /** Something changed on the node (an instance started): look at once if there is no listener yet. */
  poke(): void {
    if (!this.current && !this.stopped) void this.check();
  }

  /** Looks at the gateway and listens there (or moves there); concurrent calls are coalesced. */
  check(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.pass();
      } while (this.again && !this.stopped);
    })().finally(() => (this.running = null));
    return this.running;
  }

  /** Stops listening on the gateway (the main listener is the proxy's own). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) this.deps.clock.clearTimeout(this.timer);
    this.timer = null;
    await this.running?.catch(() => undefined);
    const c = this.current;
    this.current = null;
    await c?.close().catch(() => undefined);
  }

  private async pass(): Promise<void> {
    if (this.stopped) return;
    let address: string | null;
    try {
      address = await this.deps.gateway();
    } catch (err) {
      this.problem(`cannot inspect the cluster network: ${errorMessage(err)}`, {}, 'cannot look up the cluster network gateway for orca.internal; serving the main listener only');
      return;
    }
    if (this.current && this.current.address === address) return;
    if (this.current) {
      const old = this.current;
      this.current = null;
      await old.close().catch(() => undefined);
      this.deps.log.info({ gateway: `${old.address}:${this.deps.port}` }, 'the cluster network gateway moved: stopped listening on the old one');
    }
    if (address === null) {
      this.problem('no-network', {}, 'no cluster network gateway yet: the orca.internal listener waits for the node\'s first instance');
      return;
    }
    if (this.stopped) return;
    try {
      const l = await this.deps.listen(address, this.deps.port);
      if (this.stopped) {
        await l.close().catch(() => undefined);
        return;
      }
      this.current = { address, close: () => l.close() };
      this.lastProblem = '';
      this.deps.log.info({ gateway: `http://${hostPort(address, this.deps.port)}`, host: 'orca.internal' }, 'proxy listening on the cluster network gateway');
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      this.problem(`${address}:${typeof code === 'string' ? code : errorMessage(err)}`, { gateway: hostPort(address, this.deps.port), err: { message: errorMessage(err), ...(typeof code === 'string' ? { code } : {}) } }, 'cannot listen on the cluster network gateway for orca.internal; serving the main listener only');
    }
  }

  /** Logs a problem once until it changes (a recheck every interval would otherwise repeat it). */
  private problem(key: string, fields: Record<string, unknown>, msg: string): void {
    if (key === this.lastProblem) return;
    this.lastProblem = key;
    if (key === 'no-network') this.deps.log.info(fields, msg);
    else this.deps.log.warn(fields, msg);
  }
}

function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
