import type { ObservedContainer } from '../runtime/types.js';
import { parseInstanceLabels } from '../runtime/labels.js';
import type { LastExit, SlotAssignment, SlotState } from '../controllers/container/types.js';

import type { InstanceStateName } from '../controllers/instance/machine.js';
import type { InstanceReport } from '../protocol/reports.js';

export type { InstanceStateName, InstanceReport };

/** What the reports need of the instance lifecycle (the xstate actors). */
export interface LifecycleView {
  state(instance: string): InstanceStateName | undefined;
  ready(instance: string): boolean;
}

const EXIT_REASON_TEXT: Record<string, string> = {
  'oom-killed': 'OOMKilled',
  exited: 'Error',
  completed: 'Completed',
  removed: 'Removed',
  liveness: 'LivenessFailed',
  unhealthy: 'Unhealthy',
  'create-failed': 'CreateFailed',
  'start-timeout': 'StartTimeout',
};

/**
 * The slot recorded this very instance's exit after the container last started: the container
 * list was read before the death was handled (the list is read first, the slots after), so the
 * container is dead whatever the list says. A container started again after its recorded exit
 * (someone ran `docker start`) is live.
 */
function diedSinceListed(c: ObservedContainer, instance: string, slot: SlotState | undefined): boolean {
  const e = slot?.lastExit;
  if (!e || e.instance !== instance || slot.handledInstance !== instance) return false;
  const started = c.startedAt ? Date.parse(c.startedAt) : NaN;
  return !(started > Date.parse(e.at));
}

function exitView(e: LastExit | null): InstanceReport['lastExit'] {
  if (!e) return null;
  return { code: e.code, reason: EXIT_REASON_TEXT[e.reason] ?? e.reason, at: e.at };
}

function stateOf(c: ObservedContainer): InstanceStateName {
  switch (c.status) {
    case 'created':
      return 'starting';
    case 'running':
    case 'paused':
      return 'running';
    case 'restarting':
      return 'starting';
    case 'removing':
      return 'stopping';
    default:
      return 'exited';
  }
}

/**
 * Builds the instance view of one node from what the runtime shows now and the slot
 * memory: one row per live container, and one per desired slot that has no live container
 * (pending, or crashloop while waiting for its backoff). Pure.
 */
export function buildReports(
  node: string,
  assignments: SlotAssignment[],
  containers: ObservedContainer[],
  slots: ReadonlyMap<string, SlotState>,
  now: number,
  lifecycle?: LifecycleView,
  errors?: ReadonlyMap<string, string>,
): InstanceReport[] {
  const out: InstanceReport[] = [];
  const desired = new Map(assignments.map((a) => [`${a.service}/${a.slot}`, a]));
  const liveSlots = new Set<string>();
  for (const c of containers) {
    const l = parseInstanceLabels(c.labels);
    if (!l) continue;
    const key = `${l.service}/${l.slot}`;
    const a = desired.get(key);
    const slot = slots.get(key);
    const live = c.status !== 'exited' && c.status !== 'dead' && !diedSinceListed(c, l.instance, slot);
    if (!live) continue;
    liveSlots.add(key);
    const running = c.status === 'running';
    out.push({
      id: l.instance,
      service: l.service,
      slot: l.slot,
      revision: l.revision,
      specHash: l.specHash,
      node,
      state: lifecycle?.state(l.instance) ?? stateOf(c),
      ready: lifecycle?.state(l.instance) !== undefined ? lifecycle.ready(l.instance) : running,
      restarts: slot?.restarts ?? 0,
      lastExit: exitView(slot?.lastExit ?? null),
      containerId: c.id,
      address: c.hostIp && c.hostPort ? `${c.hostIp.includes(':') ? `[${c.hostIp}]` : c.hostIp}:${c.hostPort}` : null,
      nextRetryAt: null,
      startedAt: c.startedAt,
      current: a !== undefined && a.specHash === l.specHash,
      rolloutFailed: a && slot?.rolloutFailed?.hash === a.specHash ? slot.rolloutFailed.reason : null,
      // A live instance of an older spec is what a slot keeps while its new spec cannot start.
      error: a !== undefined && a.specHash !== l.specHash ? (errors?.get(l.service) ?? null) : null,
    });
  }
  for (const [key, a] of desired) {
    if (liveSlots.has(key)) continue;
    const slot = slots.get(key);
    const waiting =
      slot?.nextInstance && lifecycle?.state(slot.nextInstance) !== undefined
        ? lifecycle.state(slot.nextInstance) === 'crashloop'
        : slot?.nextRetryAt != null && slot.nextRetryAt > now;
    const gaveUp = slot?.gaveUpOnHash === a.specHash;
    out.push({
      id: (waiting ? slot?.nextInstance : null) ?? slot?.currentInstance ?? null,
      service: a.service,
      slot: a.slot,
      revision: a.revision,
      specHash: a.specHash,
      node,
      state: waiting ? 'crashloop' : gaveUp ? 'exited' : 'pending',
      ready: false,
      restarts: slot?.restarts ?? 0,
      lastExit: exitView(slot?.lastExit ?? null),
      containerId: null,
      address: null,
      nextRetryAt: waiting && slot?.nextRetryAt ? new Date(slot.nextRetryAt).toISOString() : null,
      startedAt: null,
      current: true,
      rolloutFailed: slot?.rolloutFailed?.hash === a.specHash ? slot.rolloutFailed.reason : null,
      error: errors?.get(a.service) ?? null,
    });
  }
  out.sort((x, y) => x.service.localeCompare(y.service) || x.slot - y.slot || Number(y.current) - Number(x.current));
  return out;
}
