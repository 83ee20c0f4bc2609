/**
 * Alerts in `orca server` (SPEC §6), wired in one place: the facts the server holds (services'
 * states from the nodes' last reports, node states, certificates), the detector, the problems
 * already alerted (kept in the store, so a restarted server or a new leader does not alert them
 * again), OOM kills from the reconciliation log, and the dispatcher.
 *
 * Only the leader alerts: a control plane of three servers sends each alert once. The facts are
 * looked at after every poke (an event, a node's report; bursts folded) and every
 * `checkIntervalMs`. A new term (this server starts leading) first settles for `settleMs`
 * (the heartbeat timeout: every agent has reported again or is unreachable by then), during
 * which problems may begin but none ends.
 */
import type { Clock, TimerHandle } from '../../core/clock.js';
import type { Logger } from '../../core/log.js';
import type { EventRecord, ServiceRecord, Store } from '../../store/types.js';
import type { CertView } from '../certs.js';
import { ALERT_DEFAULTS, type AlertWebhook } from './config.js';
import { detectAlerts, OomAlerts, sameProblems, type ActiveProblems, type Alert, type CertFact } from './detector.js';
import { AlertDispatcher, type DispatchPolicy } from './dispatcher.js';
import { certFacts, nodeFacts, serviceFacts, type NodeView } from './facts.js';
import { httpPoster, type PostFn } from './post.js';

/** The store key of the problems already alerted. */
export const ALERT_STATE_KEY = 'alert-state';

export interface AlertServiceDeps {
  clock: Clock;
  log: Logger;
  store: Pick<Store, 'getKv' | 'putKv'>;
  webhooks: readonly AlertWebhook[];
  leading: () => boolean;
  /** The desired services (deleted ones are skipped). */
  services: () => readonly ServiceRecord[];
  nodes: () => readonly NodeView[];
  /** `orca certs`' rows now (may reject: the certificates are then taken as they were). */
  certs: () => Promise<CertView[]>;
  /** The reconciliation log. */
  record: (e: EventRecord) => void;
  /** How long a new term settles (the heartbeat timeout). */
  settleMs: number;
  post?: PostFn;
  policy?: Partial<DispatchPolicy>;
  checkIntervalMs?: number;
  pokeDebounceMs?: number;
  oomWindowMs?: number;
  attemptTimeoutMs?: number;
}

export class AlertService {
  readonly dispatcher: AlertDispatcher;
  private readonly oom: OomAlerts;
  /** This server's term as leader: the problems alerted, and until when it settles. */
  private term: { active: ActiveProblems; settleUntilMs: number } | null = null;
  private lastCerts: CertFact[] = [];
  private checking: Promise<void> | null = null;
  private again = false;
  private pokeTimer: TimerHandle | null = null;
  private tickTimer: TimerHandle | null = null;
  private stopped = false;

  constructor(private readonly deps: AlertServiceDeps) {
    this.oom = new OomAlerts(deps.oomWindowMs ?? ALERT_DEFAULTS.oomWindowMs);
    this.dispatcher = new AlertDispatcher({
      clock: deps.clock,
      log: deps.log,
      webhooks: deps.webhooks,
      post: deps.post ?? httpPoster(deps.clock, deps.attemptTimeoutMs ?? ALERT_DEFAULTS.attemptTimeoutMs),
      record: deps.record,
      ...(deps.policy ? { policy: deps.policy } : {}),
    });
  }

  /** Begins the periodic look; everything stops when the signal aborts. */
  start(signal: AbortSignal): void {
    signal.addEventListener('abort', () => this.stop(), { once: true });
    const tick = (): void => {
      this.tickTimer = this.deps.clock.setTimeout(() => {
        this.requestCheck();
        tick();
      }, this.deps.checkIntervalMs ?? ALERT_DEFAULTS.checkIntervalMs);
    };
    tick();
    this.poke();
  }

  stop(): void {
    this.stopped = true;
    if (this.pokeTimer) this.deps.clock.clearTimeout(this.pokeTimer);
    if (this.tickTimer) this.deps.clock.clearTimeout(this.tickTimer);
    this.pokeTimer = this.tickTimer = null;
    this.dispatcher.stop();
  }

  /** Something changed (a node's report, a node's state): look soon. */
  poke(): void {
    if (this.pokeTimer || this.stopped) return;
    this.pokeTimer = this.deps.clock.setTimeout(() => {
      this.pokeTimer = null;
      this.requestCheck();
    }, this.deps.pokeDebounceMs ?? ALERT_DEFAULTS.pokeDebounceMs);
  }

  /** Sees every record of the reconciliation log: OOM kills alert; anything else is a poke. */
  onEvent(e: EventRecord): void {
    if (e.reconciler === 'alert' || this.stopped) return;
    this.poke();
    if (!this.deps.leading()) return;
    const alert = this.oom.see(e, this.deps.clock.now());
    if (alert) this.emit(alert);
  }

  /** Looks at the facts now (serialised: a look asked for during one runs once after it). Never rejects. */
  check(): Promise<void> {
    if (this.checking) {
      this.again = true;
      return this.checking;
    }
    this.checking = (async () => {
      do {
        this.again = false;
        try {
          await this.checkOnce();
        } catch (err) {
          this.deps.log.warn({ err }, 'alert check failed');
        }
      } while (this.again && !this.stopped);
    })().finally(() => (this.checking = null));
    return this.checking;
  }

  private requestCheck(): void {
    void this.check();
  }

  private async checkOnce(): Promise<void> {
    if (this.stopped) return;
    if (!this.deps.leading()) {
      this.term = null;
      return;
    }
    const now = this.deps.clock.now();
    if (!this.term) this.term = { active: await this.loadActive(), settleUntilMs: now + this.deps.settleMs };
    const term = this.term;
    const services = this.deps.services();
    let certs = this.lastCerts;
    try {
      certs = certFacts(await this.deps.certs(), services);
      this.lastCerts = certs;
    } catch (err) {
      this.deps.log.warn({ err }, 'alerts: could not read the certificates; taking them as they were');
    }
    const nodes = this.deps.nodes();
    const { alerts, active } = detectAlerts(
      term.active,
      { services: serviceFacts(services, nodes), nodes: nodeFacts(nodes), certs },
      { time: new Date(now).toISOString(), settling: now < term.settleUntilMs },
    );
    if (!sameProblems(term.active, active)) {
      // Written before anything is sent: a server that lost the lead (its write fenced) sends
      // nothing, and the next leader knows what was alerted.
      await this.deps.store.putKv(ALERT_STATE_KEY, active);
    }
    if (this.term !== term || !this.deps.leading()) return;
    term.active = active;
    for (const a of alerts) this.emit(a);
  }

  private emit(alert: Alert): void {
    this.deps.log.warn({ alert }, 'alert raised');
    this.dispatcher.send(alert);
  }

  private async loadActive(): Promise<ActiveProblems> {
    const raw = await this.deps.store.getKv<unknown>(ALERT_STATE_KEY);
    const out: ActiveProblems = {};
    if (typeof raw !== 'object' || raw === null) return out;
    for (const [k, v] of Object.entries(raw as Record<string, unknown>).slice(0, 100_000)) {
      if (typeof v !== 'object' || v === null) continue;
      const p = v as Record<string, unknown>;
      if (typeof p.since !== 'string') continue;
      out[k] = { since: p.since, ...(typeof p.revision === 'number' ? { revision: p.revision } : {}) };
    }
    return out;
  }
}
