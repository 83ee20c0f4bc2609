/**
 * HTTPS at the edge, the server's side of the push (SPEC §3.12): the certificates in the store
 * (server/certs.ts) and the ACME challenges the leader answers now, to this server's own proxy
 * and to every agent that runs one (RemoteNode.setEdge; the session sends keys only to a TLS
 * proxy). Certificates are read from the store again on every change made here, and every
 * refreshMs anyway, so a standby's proxy (or one whose leader changed) serves what another
 * server obtained; nothing restarts for a new certificate.
 */
import type { Clock, TimerHandle } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { AcmeChallenge, EdgeState } from '../proxy/tls.js';
import type { ChallengeBoard } from './acme.js';
import type { CertStore } from './certs.js';

export interface EdgeNode {
  setEdge(edge: EdgeState): void;
}

export interface EdgeHubDeps {
  clock: Clock;
  log: Logger;
  certs: CertStore;
  /** This server's proxy. */
  proxy: { setEdge(edge: EdgeState): void };
  /** Every node the server knows (each session decides whether its agent gets it). */
  nodes: () => readonly EdgeNode[];
  /** How often the certificates are read from the store anyway. */
  refreshMs: number;
}

export class EdgeHub implements ChallengeBoard {
  private state: EdgeState = { certs: [], challenges: [] };
  private readonly challenges = new Map<string, AcmeChallenge>();
  private timer: TimerHandle | null = null;
  private loading: Promise<void> = Promise.resolve();
  private stopped = false;
  private unsubscribe: (() => void) | null = null;

  constructor(private readonly deps: EdgeHubDeps) {}

  /** Reads the certificates now, then on every change and every refreshMs. */
  async start(): Promise<void> {
    this.unsubscribe = this.deps.certs.onChange(() => void this.reload());
    await this.reload();
    this.tick();
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.timer) this.deps.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  /** What every proxy is given now. */
  current(): EdgeState {
    return this.state;
  }

  /** A node's session began: it gets the current state. */
  sessionStarted(node: EdgeNode): void {
    node.setEdge(this.state);
  }

  add(c: AcmeChallenge): void {
    this.challenges.set(c.token, c);
    this.publish({ ...this.state, challenges: [...this.challenges.values()] });
  }

  remove(token: string): void {
    if (!this.challenges.delete(token)) return;
    this.publish({ ...this.state, challenges: [...this.challenges.values()] });
  }

  /** Reads the certificates from the store again (serialised) and pushes them when they changed. */
  reload(): Promise<void> {
    this.loading = this.loading.then(async () => {
      if (this.stopped) return;
      try {
        const certs = await this.deps.certs.edgeCerts(this.deps.clock.now(), (host, err) => this.deps.log.error({ host, err }, 'a stored certificate key does not open; its host is not served over TLS'));
        const same = certs.length === this.state.certs.length && certs.every((c, i) => c.host === this.state.certs[i]?.host && c.cert === this.state.certs[i]?.cert);
        if (same) return;
        this.deps.log.info({ hosts: certs.map((c) => c.host) }, 'certificates served by every proxy');
        this.publish({ certs, challenges: [...this.challenges.values()] });
      } catch (err) {
        this.deps.log.warn({ err }, 'cannot read the certificates from the store; the proxies keep the last ones');
      }
    });
    return this.loading;
  }

  private publish(state: EdgeState): void {
    this.state = state;
    this.deps.proxy.setEdge(state);
    for (const n of this.deps.nodes()) n.setEdge(state);
  }

  private tick(): void {
    if (this.stopped) return;
    this.timer = this.deps.clock.setTimeout(() => {
      this.timer = null;
      void this.reload().finally(() => this.tick());
    }, this.deps.refreshMs);
  }
}
