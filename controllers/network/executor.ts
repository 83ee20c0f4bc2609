import type { Clock } from '../../core/clock.js';
import { errorMessage, isOrcaError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { Runtime } from '../../runtime/types.js';
import type { EventRecord } from '../../store/types.js';
import type { NetworkAction } from './actions.js';

export interface NetworkExecutorDeps {
  runtime: Pick<Runtime, 'ensureNetwork' | 'connect'>;
  clock: Clock;
  log: Logger;
  node: string;
  /** Receives one record per action (the reconciliation log). */
  record: (e: EventRecord) => void;
}

export interface NetworkExecution {
  /** Services with an instance attached by this run (their published ports may have moved). */
  attached: Set<string>;
  /** First failure, if any. */
  error?: unknown;
}

/**
 * Applies a network plan: the network first (when it cannot be made, no attachment is tried),
 * then the attachments, concurrently. Each action becomes one log line and one reconciliation-log
 * record (`reconciler: 'network'`), like a container action's. Never throws.
 */
export async function applyNetworkActions(deps: NetworkExecutorDeps, actions: readonly NetworkAction[]): Promise<NetworkExecution> {
  const attached = new Set<string>();
  let firstError: unknown;
  const run = async (a: NetworkAction): Promise<boolean> => {
    const started = deps.clock.now();
    let error: unknown;
    try {
      if (a.kind === 'network.create') await deps.runtime.ensureNetwork(a.network, a.labels);
      else await deps.runtime.connect(a.containerId, a.network, a.aliases);
    } catch (err) {
      error = err;
      firstError ??= err;
    }
    const outcome = error === undefined ? 'ok' : isOrcaError(error) ? `error: ${error.code}` : 'error';
    const durationMs = deps.clock.now() - started;
    const service = a.kind === 'network.connect' ? a.service : null;
    const instance = a.kind === 'network.connect' ? a.instance : null;
    const fields = { key: a.key, action: a.kind, reason: a.reason, outcome, durationMs, service, instance, node: deps.node, network: a.network };
    if (error !== undefined) deps.log.warn({ ...fields, err: error }, 'reconcile action failed');
    else deps.log.info(fields, 'reconcile action');
    deps.record({
      time: new Date(deps.clock.now()).toISOString(),
      reconciler: 'network',
      service,
      instance,
      node: deps.node,
      action: a.kind,
      reason: a.reason,
      outcome,
      durationMs,
      ...(error !== undefined ? { message: errorMessage(error) } : {}),
    });
    if (error === undefined && a.kind === 'network.connect') attached.add(a.service);
    return error === undefined;
  };
  for (const a of actions) {
    if (a.kind === 'network.create' && !(await run(a))) return { attached, error: firstError };
  }
  await Promise.all(actions.filter((a) => a.kind === 'network.connect').map(run));
  return firstError === undefined ? { attached } : { attached, error: firstError };
}
