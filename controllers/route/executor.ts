import type { Clock } from '../../core/clock.js';
import { errorMessage, isOrcaError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { Route } from '../../proxy/table.js';
import type { EventRecord } from '../../store/types.js';
import type { RoutePlan } from './planner.js';

export interface RouteExecutorDeps {
  clock: Clock;
  /** Bound to `reconciler: 'route'` by the host. */
  log: Logger;
  /** Swaps the proxy's whole table (atomic: a request sees the old table or the new one). */
  apply: (table: Route[]) => void;
  /** Receives one record per action (the reconciliation log). */
  record: (e: EventRecord) => void;
}

/**
 * Applies a route plan: one swap of the proxy's table (only when it changed), then one log line
 * and one reconciliation-log record per backend added or removed — the same record as a
 * container action's (`reconciler: 'route'`, node null: the table is the server's). A swap that
 * throws is recorded against every action of the plan and rethrown (the controller retries).
 */
export class RouteExecutor {
  constructor(private readonly deps: RouteExecutorDeps) {}

  execute(plan: RoutePlan): void {
    if (!plan.changed) return;
    const started = this.deps.clock.now();
    let error: unknown;
    try {
      this.deps.apply(plan.table);
    } catch (err) {
      error = err;
    }
    const outcome = error === undefined ? 'ok' : isOrcaError(error) ? `error: ${error.code}` : 'error';
    const now = this.deps.clock.now();
    const durationMs = now - started;
    const time = new Date(now).toISOString();
    for (const a of plan.actions) {
      const fields = { key: a.key, action: a.kind, reason: a.reason, outcome, durationMs };
      if (error !== undefined) this.deps.log.warn({ ...fields, err: error }, 'reconcile action failed');
      else this.deps.log.info(fields, 'reconcile action');
      this.deps.record({
        time,
        reconciler: 'route',
        service: a.service,
        instance: a.instance,
        node: null,
        action: a.kind,
        reason: a.reason,
        outcome,
        durationMs,
        ...(error !== undefined ? { message: errorMessage(error) } : {}),
      });
    }
    if (error !== undefined) throw error;
  }
}
