import type { Clock, TimerHandle } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { EventRecord, Store } from '../store/types.js';
import type { ServiceStatus } from './status.js';

/**
 * Records how each revision's rollout ended (SPEC §3.4, shown by `orca history`): a halt
 * reported by an agent makes the current revision `rollout-failed` with the agent's reason;
 * a service whose instances all run the current revision and are ready makes it
 * `rolled-out`. Checks are debounced: node changes come in bursts.
 */
export class RolloutWatcher {
  private timer: TimerHandle | null = null;
  /** A check is under way; `again`: something changed meanwhile, check once more after it. */
  private checking = false;
  private again = false;

  constructor(
    private readonly store: Store,
    private readonly status: () => Promise<ServiceStatus[]>,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly debounceMs = 100,
  ) {}

  /** Sees every reconciliation record; acts on rollout halts. */
  onEvent(e: EventRecord): void {
    if (e.action !== 'rollout.halt' || !e.service) return;
    const service = e.service;
    void (async () => {
      const svc = await this.store.getService(service);
      if (!svc || svc.deletedAt) return;
      const rev = await this.store.getRevision(service, svc.revision);
      if (rev?.outcome !== 'pending') return;
      await this.store.setRevisionOutcome(service, svc.revision, 'rollout-failed', e.message ?? e.reason);
      this.log.warn({ service, revision: svc.revision, reason: e.message ?? e.reason }, 'rollout failed');
    })().catch((err) => this.log.error({ err, service }, 'could not record a rollout failure'));
  }

  /** Something changed on a node: look (soon) for rollouts that completed. */
  poke(): void {
    if (this.checking) {
      this.again = true;
      return;
    }
    if (this.timer) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      this.checking = true;
      void this.check()
        .catch((err) => this.log.warn({ err }, 'rollout check failed'))
        .finally(() => {
          // One check at a time: overlapping ones would each record the same outcome.
          this.checking = false;
          if (this.again) {
            this.again = false;
            this.poke();
          }
        });
    }, this.debounceMs);
  }

  stop(): void {
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  private async check(): Promise<void> {
    const pending: Array<{ name: string; revision: number }> = [];
    for (const svc of await this.store.listServices()) {
      const rev = await this.store.getRevision(svc.name, svc.revision);
      if (rev?.outcome === 'pending') pending.push({ name: svc.name, revision: svc.revision });
    }
    if (pending.length === 0) return;
    const statuses = new Map((await this.status()).map((s) => [s.name, s]));
    for (const p of pending) {
      const s = statuses.get(p.name);
      if (!s || s.revision !== p.revision) continue;
      if (s.state === 'healthy' || s.state === 'stopped') {
        await this.store.setRevisionOutcome(p.name, p.revision, 'rolled-out');
        this.log.info({ service: p.name, revision: p.revision }, 'rollout complete');
      }
    }
  }
}
