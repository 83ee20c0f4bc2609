import type { ObservedContainer } from '../../runtime/types.js';
import { LABEL, parseInstanceLabels } from '../../runtime/labels.js';
import { DEFAULTS } from '../../core/defaults.js';
import { formatMemory } from '../../manifest/units.js';
import type { Action, Plan } from '../actions.js';
import { decideRestart } from './restart.js';
import { freshSlotState, type ExitReason, type SlotAssignment, type SlotState } from './types.js';

export interface ContainerPlanInput {
  service: string;
  /** Slots of this service assigned to this node; empty when the service is gone from here. */
  desired: SlotAssignment[];
  /** Containers of this service on this node (all states), straight from the runtime. */
  observed: ObservedContainer[];
  /** Remembered slot state by slot number. */
  slots: ReadonlyMap<number, SlotState>;
  now: number;
  /**
   * Live instances the lifecycle has given up on (failed liveness, start timeout…), with the
   * reason: they are stopped, and their end counts as a failure with that reason.
   */
  condemned?: ReadonlyMap<string, ExitReason>;
  /** Makes the id of a new instance (injected so the planner stays deterministic). */
  newInstanceId: (service: string, revision: number, slot: number) => string;
}

const LIVE = new Set(['created', 'running', 'paused', 'restarting']);
const isLive = (c: ObservedContainer) => LIVE.has(c.status);
/** The grace a container was created with (label), else the fallback. */
const graceOf = (o: { c: ObservedContainer }, fallback: number) => {
  const g = Number(o.c.labels[LABEL.stopGrace]);
  return Number.isFinite(g) && g >= 0 ? g : fallback;
};
const ms = (iso: string | null) => (iso ? Date.parse(iso) : NaN);

interface Observed {
  c: ObservedContainer;
  instance: string;
  slot: number;
  specHash: string;
}

/** Newest first: running before others, then by start (or creation) time. */
function byPreference(a: Observed, b: Observed): number {
  const ra = a.c.status === 'running' ? 1 : 0;
  const rb = b.c.status === 'running' ? 1 : 0;
  if (ra !== rb) return rb - ra;
  return (ms(b.c.startedAt) || ms(b.c.createdAt)) - (ms(a.c.startedAt) || ms(a.c.createdAt));
}

function byRecency(a: Observed, b: Observed): number {
  return (ms(b.c.finishedAt) || ms(b.c.createdAt)) - (ms(a.c.finishedAt) || ms(a.c.createdAt));
}

/** What to tell an operator whose instance ran out of memory. */
export function oomHint(memoryBytes: number | undefined): string {
  return memoryBytes !== undefined
    ? `OOM-killed at its memory limit (resources.memory = "${formatMemory(memoryBytes)}"): raise resources.memory`
    : 'OOM-killed by the kernel (no memory limit set): the host ran out of memory; set or raise resources.memory';
}

/** How a dead container ended, from what Docker recorded. */
export function exitReasonOf(c: ObservedContainer): ExitReason {
  // Seen half-way through `docker rm -f`: it is being removed, whatever killed it.
  if (c.status === 'removing' || (c.status === 'dead' && c.exitCode === null)) return 'removed';
  if (c.oomKilled) return 'oom-killed';
  if (c.exitCode === 0) return 'completed';
  return 'exited';
}

/**
 * The container reconciler's planner: desired slots vs containers observed in the runtime
 * → actions. Pure and level-triggered: it looks at the whole state of one service every time.
 *
 * Per desired slot: keep exactly one live container with the desired spec hash (start it if
 * only created); replace a stale one start-first; when the slot's instance died or vanished,
 * count the failure once and replace it per the restart policy and crash-loop backoff (new
 * instance, new container, never reusing a name); keep the latest dead container per slot for
 * `orca logs --previous` and remove older ones. Containers of slots no longer desired are
 * stopped and removed.
 */
export function planContainers(input: ContainerPlanInput): Plan {
  const { service, now } = input;
  const actions: Action[] = [];
  let requeueAfterMs: number | null = null;
  const wake = (delay: number) => {
    requeueAfterMs = requeueAfterMs === null ? delay : Math.min(requeueAfterMs, delay);
  };

  const bySlot = new Map<number, Observed[]>();
  for (const c of input.observed) {
    const l = parseInstanceLabels(c.labels);
    if (!l || l.service !== service) continue;
    const list = bySlot.get(l.slot) ?? [];
    list.push({ c, instance: l.instance, slot: l.slot, specHash: l.specHash });
    bySlot.set(l.slot, list);
  }

  const stopAndRemove = (o: Observed, reason: string, graceSecs: number) => {
    if (isLive(o.c)) {
      actions.push({
        kind: 'container.stop',
        key: `stop:${o.instance}`,
        reason,
        service,
        instance: o.instance,
        containerId: o.c.id,
        graceSecs,
      });
    }
    actions.push({
      kind: 'container.remove',
      key: `remove:${o.instance}`,
      reason,
      service,
      instance: o.instance,
      containerId: o.c.id,
    });
  };

  const desiredSlots = new Set(input.desired.map((d) => d.slot));
  /** Condemned live containers: stopped (not removed: the corpse tells why) before anything else. */
  const stopAndRemoveLater: Array<{ o: Observed; why: ExitReason; grace: number }> = [];

  for (const d of input.desired) {
    const all = bySlot.get(d.slot) ?? [];
    const grace = d.spec.stopGraceSecs;
    const condemned = input.condemned ?? new Map<string, ExitReason>();
    for (const o of all) {
      const why = condemned.get(o.instance);
      if (why && isLive(o.c)) stopAndRemoveLater.push({ o, why, grace: graceOf(o, grace) });
    }
    const live = all.filter((o) => isLive(o.c) && !condemned.has(o.instance));
    const liveCurrent = live.filter((o) => o.specHash === d.specHash).sort(byPreference);
    const liveStale = live.filter((o) => o.specHash !== d.specHash);
    const dead = all.filter((o) => !isLive(o.c)).sort(byRecency);
    let state: SlotState = { ...(input.slots.get(d.slot) ?? freshSlotState(service, d.slot)) };
    let stateChanged: string | null = null;

    const keep = liveCurrent[0];
    if (keep) {
      for (const dup of liveCurrent.slice(1)) stopAndRemove(dup, 'duplicate-instance', grace);
      if (keep.c.status === 'created') {
        actions.push({
          kind: 'container.start',
          key: `start:${keep.instance}`,
          reason: 'created-not-started',
          service,
          instance: keep.instance,
          containerId: keep.c.id,
        });
      }
      if (state.currentInstance !== keep.instance || state.nextRetryAt !== null || state.gaveUpOnHash !== null) {
        stateChanged = state.currentInstance === keep.instance ? 'running-again' : 'adopted';
        state = { ...state, currentInstance: keep.instance, nextRetryAt: null, nextInstance: null, gaveUpOnHash: null };
      }
      const started = ms(keep.c.startedAt);
      const resetMs = d.spec.restart.resetAfterSecs * 1000;
      if (keep.c.status === 'running' && state.consecutiveFailures > 0) {
        if (now - started >= resetMs) {
          state = { ...state, consecutiveFailures: 0 };
          stateChanged ??= 'ran-reset-after-secs-failure-count-reset';
        } else {
          wake(Math.max(0, started + resetMs - now));
        }
      }
      // Start-first replacement: the old revision goes once the new one runs.
      if (keep.c.status === 'running') {
        for (const old of liveStale) stopAndRemove(old, 'replaced-by-new-revision', graceOf(old, grace));
      }
    } else {
      // No live instance of the desired spec. Did the slot's instance fail?
      const cur = state.currentInstance;
      const curLive = cur !== null && live.some((o) => o.instance === cur);
      if (cur !== null && !curLive && state.handledInstance !== cur) {
        const corpse = all.find((o) => o.instance === cur);
        const reason: ExitReason = condemned.get(cur) ?? (corpse ? exitReasonOf(corpse.c) : 'removed');
        const endedAtMs = corpse ? ms(corpse.c.finishedAt) || now : now;
        const decision = decideRestart(
          {
            consecutiveFailures: state.consecutiveFailures,
            startedAtMs: corpse ? ms(corpse.c.startedAt) || null : null,
            endedAtMs,
          },
          { reason, code: corpse ? corpse.c.exitCode : null },
          d.spec.restart,
        );
        state = {
          ...state,
          handledInstance: cur,
          consecutiveFailures: decision.consecutiveFailures,
          lastExit: {
            instance: cur,
            code: corpse ? corpse.c.exitCode : null,
            reason,
            at: new Date(endedAtMs).toISOString(),
          },
          nextRetryAt: decision.kind === 'restart' && decision.delayMs > 0 ? endedAtMs + decision.delayMs : null,
          nextInstance:
            decision.kind === 'restart' && decision.delayMs > 0 ? input.newInstanceId(service, d.revision, d.slot) : null,
          gaveUpOnHash: decision.kind === 'no-restart' ? d.specHash : null,
        };
        actions.push({
          kind: 'slot.update',
          key: `failure:${cur}`,
          reason: `${reason}; ${decision.reason}`,
          service,
          instance: cur,
          slot: state,
          ...(reason === 'oom-killed' ? { message: oomHint(d.spec.resources.memoryBytes) } : {}),
        });
        stateChanged = null;
      }

      const gaveUp = state.gaveUpOnHash === d.specHash && liveStale.length === 0;
      const waitMs = state.nextRetryAt !== null ? state.nextRetryAt - now : 0;
      if (d.spec.deploy.strategy === 'stop-first' && liveStale.length > 0) {
        for (const old of liveStale) stopAndRemove(old, 'stop-first-rollout', grace);
      } else if (gaveUp) {
        // Restart policy said no; stay down until the spec changes.
      } else if (waitMs > 0 && liveStale.length === 0) {
        wake(waitMs);
      } else {
        const instance = state.nextInstance ?? input.newInstanceId(service, d.revision, d.slot);
        const isReplacement = state.handledInstance !== null && state.handledInstance === state.currentInstance;
        const slotAfter: SlotState = {
          ...state,
          currentInstance: instance,
          nextRetryAt: null,
          nextInstance: null,
          gaveUpOnHash: null,
          restarts: state.restarts + (isReplacement && liveStale.length === 0 ? 1 : 0),
        };
        actions.push({
          kind: 'container.create',
          key: `create:${service}/${d.slot}`,
          reason: liveStale.length > 0 ? 'new-revision' : isReplacement ? `replace-after-${state.lastExit?.reason ?? 'failure'}` : 'missing-replica',
          service,
          instance,
          slot: d.slot,
          assignment: d,
          slotAfter,
        });
        stateChanged = null;
      }
    }

    if (stateChanged) {
      actions.push({ kind: 'slot.update', key: `slot:${service}/${d.slot}`, reason: stateChanged, service, instance: state.currentInstance, slot: state });
    }

    // Keep the latest dead container per slot (for logs --previous); remove older ones.
    const keepDead = dead[0];
    for (const o of dead) {
      if (o === keepDead) continue;
      actions.push({
        kind: 'container.remove',
        key: `remove:${o.instance}`,
        reason: 'cleanup-old-exited',
        service,
        instance: o.instance,
        containerId: o.c.id,
      });
    }
  }

  // Condemned instances are stopped first; once their corpse is seen the failure is counted
  // with the lifecycle's reason and a replacement follows the restart policy.
  actions.unshift(
    ...stopAndRemoveLater.map(({ o, why, grace }) => ({
      kind: 'container.stop' as const,
      key: `stop:${o.instance}`,
      reason: why,
      service,
      instance: o.instance,
      containerId: o.c.id,
      graceSecs: grace,
    })),
  );

  // Slots no longer desired here (scale-down, service deleted, moved away).
  for (const [slot, list] of bySlot) {
    if (desiredSlots.has(slot)) continue;
    for (const o of list) {
      stopAndRemove(o, input.desired.length === 0 ? 'service-not-desired' : 'scaled-down', graceOf(o, DEFAULTS.stopGraceSecs));
    }
  }

  return { actions, requeueAfterMs };
}
