/**
 * Delivers alerts to the webhooks that want their kind: one POST per alert per webhook, in the
 * order the alerts came, each webhook on its own queue (a dead receiver delays only its own).
 * A failed attempt (not 2xx, timeout, connection error) is retried after 1, 2, 4 … s (capped),
 * at most `maxAttempts` in all; each failed attempt and each final outcome is an event in the
 * reconciliation log (reconciler `alert`, action `alert.deliver`). A queue holds at most
 * `queueMax` alerts: beyond it the oldest waiting ones are dropped, with an event saying how many.
 * Nothing here throws or rejects: a delivery failure is an event, never a crash.
 */
import type { Clock, TimerHandle } from '../../core/clock.js';
import { backoffDelayMs } from '../../core/backoff.js';
import type { Logger } from '../../core/log.js';
import type { EventRecord } from '../../store/types.js';
import { ALERT_DEFAULTS, type AlertWebhook } from './config.js';
import type { Alert } from './detector.js';
import type { PostFn } from './post.js';

export interface DispatchPolicy {
  maxAttempts: number;
  retryInitialMs: number;
  retryMaxMs: number;
  queueMax: number;
}

export interface AlertDispatcherDeps {
  clock: Clock;
  log: Logger;
  webhooks: readonly AlertWebhook[];
  post: PostFn;
  /** The reconciliation log. Must not throw. */
  record: (e: EventRecord) => void;
  policy?: Partial<DispatchPolicy>;
}

interface Item {
  alert: Alert;
  body: string;
  /** Attempts made so far. */
  attempts: number;
}

class WebhookQueue {
  readonly items: Item[] = [];
  /** The head is being sent or waits for its retry. */
  busy = false;
  timer: TimerHandle | null = null;
  dropped = 0;
  dropReport: TimerHandle | null = null;
  delivered = 0;
  failed = 0;
  constructor(readonly hook: AlertWebhook) {}
}

export class AlertDispatcher {
  private readonly queues: WebhookQueue[];
  private readonly policy: DispatchPolicy;
  private stopped = false;

  constructor(private readonly deps: AlertDispatcherDeps) {
    this.queues = deps.webhooks.map((h) => new WebhookQueue(h));
    this.policy = {
      maxAttempts: deps.policy?.maxAttempts ?? ALERT_DEFAULTS.maxAttempts,
      retryInitialMs: deps.policy?.retryInitialMs ?? ALERT_DEFAULTS.retryInitialMs,
      retryMaxMs: deps.policy?.retryMaxMs ?? ALERT_DEFAULTS.retryMaxMs,
      queueMax: deps.policy?.queueMax ?? ALERT_DEFAULTS.queueMax,
    };
  }

  /** Queues the alert for every webhook whose `on` lists its kind. */
  send(alert: Alert): void {
    if (this.stopped) return;
    const body = JSON.stringify({ time: alert.time, kind: alert.kind, service: alert.service, instance: alert.instance, node: alert.node, message: alert.message });
    for (const q of this.queues) {
      if (!q.hook.kinds.includes(alert.kind)) continue;
      q.items.push({ alert, body, attempts: 0 });
      this.bound(q);
      this.pump(q);
    }
  }

  /** Alerts waiting (or being sent) per webhook, and what became of the others. */
  stats(): Array<{ webhook: string; queued: number; delivered: number; failed: number; dropped: number }> {
    return this.queues.map((q) => ({ webhook: q.hook.name, queued: q.items.length, delivered: q.delivered, failed: q.failed, dropped: q.dropped }));
  }

  /** Stops: no new attempt begins; what waits is left (an attempt under way ends on its own deadline). */
  stop(): void {
    this.stopped = true;
    for (const q of this.queues) {
      if (q.timer) this.deps.clock.clearTimeout(q.timer);
      if (q.dropReport) this.deps.clock.clearTimeout(q.dropReport);
      q.timer = null;
      q.dropReport = null;
    }
  }

  /** Drops the oldest waiting alerts beyond the bound (never the one being sent). */
  private bound(q: WebhookQueue): void {
    const over = q.items.length - this.policy.queueMax;
    if (over <= 0) return;
    const from = q.busy ? 1 : 0;
    q.items.splice(from, over);
    q.dropped += over;
    // One event for a burst of drops.
    if (!q.dropReport) {
      const before = q.dropped - over;
      q.dropReport = this.deps.clock.setTimeout(() => {
        q.dropReport = null;
        const n = q.dropped - before;
        this.deps.log.warn({ webhook: q.hook.name, dropped: n }, 'alert queue full; oldest alerts dropped');
        this.event(q, null, 'alert.drop', 'queue full', 'failed', 0, `${n} alert${n === 1 ? '' : 's'} for ${q.hook.name} dropped: more than ${this.policy.queueMax} waiting (the receiver is down or slow)`);
      }, 0);
    }
  }

  private pump(q: WebhookQueue): void {
    if (q.busy || this.stopped) return;
    const item = q.items[0];
    if (!item) return;
    q.busy = true;
    void this.attempt(q, item);
  }

  private async attempt(q: WebhookQueue, item: Item): Promise<void> {
    const started = this.deps.clock.now();
    item.attempts++;
    let result: Awaited<ReturnType<PostFn>>;
    try {
      result = await this.deps.post(q.hook.url, item.body, q.hook.headers);
    } catch (err) {
      result = { ok: false, reason: err instanceof Error ? err.message : String(err) };
    }
    const took = this.deps.clock.now() - started;
    if (result.ok) {
      q.delivered++;
      this.event(q, item, 'alert.deliver', `HTTP ${result.status}`, 'ok', took, `${item.alert.kind} alert delivered to ${q.hook.name} (attempt ${item.attempts})`);
      this.next(q, item);
      return;
    }
    if (item.attempts >= this.policy.maxAttempts) {
      q.failed++;
      this.deps.log.warn({ webhook: q.hook.name, kind: item.alert.kind, attempts: item.attempts, reason: result.reason }, 'alert not delivered; giving up');
      this.event(q, item, 'alert.deliver', result.reason, 'failed', took, `${item.alert.kind} alert to ${q.hook.name}: attempt ${item.attempts} of ${this.policy.maxAttempts} failed; given up`);
      this.next(q, item);
      return;
    }
    const delayMs = backoffDelayMs({ initialMs: this.policy.retryInitialMs, maxMs: this.policy.retryMaxMs }, item.attempts - 1);
    this.deps.log.info({ webhook: q.hook.name, kind: item.alert.kind, attempt: item.attempts, reason: result.reason, retryInMs: delayMs }, 'alert delivery failed; retrying');
    this.event(q, item, 'alert.deliver', result.reason, 'failed', took, `${item.alert.kind} alert to ${q.hook.name}: attempt ${item.attempts} of ${this.policy.maxAttempts} failed; next in ${delayMs / 1000} s`);
    if (this.stopped) return;
    q.timer = this.deps.clock.setTimeout(() => {
      q.timer = null;
      if (this.stopped) return;
      // Still the head: bound() never drops the alert being sent.
      void this.attempt(q, item);
    }, delayMs);
  }

  private next(q: WebhookQueue, item: Item): void {
    if (q.items[0] === item) q.items.shift();
    q.busy = false;
    this.pump(q);
  }

  private event(q: WebhookQueue, item: Item | null, action: string, reason: string, outcome: 'ok' | 'failed', durationMs: number, message: string): void {
    try {
      this.deps.record({
        time: new Date(this.deps.clock.now()).toISOString(),
        reconciler: 'alert',
        service: item?.alert.service ?? null,
        instance: item?.alert.instance ?? null,
        node: item?.alert.node ?? null,
        action,
        reason: reason.slice(0, 500),
        outcome,
        durationMs: Math.max(0, Math.round(durationMs)),
        message,
      });
    } catch (err) {
      this.deps.log.error({ err, webhook: q.hook.name }, 'could not record an alert event');
    }
  }
}
