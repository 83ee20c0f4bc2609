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
   * Instances that are ready now (their lifecycle says so). When absent, a running container
   * counts as ready.
   */
  ready?: ReadonlySet<string>;
  /**
   * Live instances the lifecycle has given up on (failed liveness, start timeout…), with the
   * reason: they are stopped, and their end counts as a failure with that reason.
   */
  condemned?: ReadonlyMap<string, ExitReason>;
  /** The last readiness answer of an instance (for example "HTTP 404"), named when a rollout halts on it. */
  lastReadiness?: (instance: string) => string | undefined;
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

/** Per-slot facts the rollout phase needs. */
interface SlotView {
  d: SlotAssignment;
  state: SlotState;
  keep: Observed | undefined;
  keepReady: boolean;
  liveStale: Observed[];
  /** ms until a crash-loop backoff lets this slot be replaced, or 0. */
  waitMs: number;
  gaveUp: boolean;
}

/**
 * The container reconciler's planner: desired slots vs containers observed in the runtime
 * → actions. Pure and level-triggered: it looks at the whole state of one service every time.
 *
 * Healing, per slot: keep exactly one live container with the desired spec hash (start it if
 * only created); when the slot's instance died, vanished or was condemned, count the failure
 * once and replace it per the restart policy and crash-loop backoff (a new instance with a new
 * container; a name is never reused); keep the latest dead container per slot for
 * `orca logs --previous` and remove older ones. Containers of slots no longer desired are
 * stopped and removed.
 *
 * Rollouts, per service (SPEC §3.4): slots still running an older spec are moved one at a
 * time. start-first creates the new instance beside the old one and stops the old one only
 * once the new one is ready; stop-first stops the old one first. A slot that is not serving a
 * ready instance of the desired spec holds the next one back (a surge of one). A new instance
 * not ready within ready_timeout_secs halts the rollout: it is stopped, the old instances keep
 * serving, and the halt is recorded until the spec changes.
 */
export function planContainers(input: ContainerPlanInput): Plan {
  const { service, now } = input;
  const actions: Action[] = [];
  let requeueAfterMs: number | null = null;
  const wake = (delay: number) => {
    requeueAfterMs = requeueAfterMs === null ? Math.max(0, delay) : Math.min(requeueAfterMs, Math.max(0, delay));
  };
  const isReady = (o: Observed) => (input.ready ? input.ready.has(o.instance) : o.c.status === 'running');
  const condemned = input.condemned ?? new Map<string, ExitReason>();

  const bySlot = new Map<number, Observed[]>();
  for (const c of input.observed) {
    const l = parseInstanceLabels(c.labels);
    if (!l || l.service !== service) continue;
    const list = bySlot.get(l.slot) ?? [];
    list.push({ c, instance: l.instance, slot: l.slot, specHash: l.specHash });
    bySlot.set(l.slot, list);
  }

  const stop = (o: Observed, reason: string, graceSecs: number) =>
    actions.push({ kind: 'container.stop', key: `stop:${o.instance}`, reason, service, instance: o.instance, containerId: o.c.id, graceSecs });
  const remove = (o: Observed, reason: string) =>
    actions.push({ kind: 'container.remove', key: `remove:${o.instance}`, reason, service, instance: o.instance, containerId: o.c.id });
  const stopAndRemove = (o: Observed, reason: string, graceSecs: number) => {
    if (isLive(o.c)) stop(o, reason, graceSecs);
    remove(o, reason);
  };
  const create = (view: SlotView, reason: string, extra: Partial<SlotState> = {}) => {
    const { d, state } = view;
    const instance = state.nextInstance ?? input.newInstanceId(service, d.revision, d.slot);
    const isReplacement = state.handledInstance !== null && state.handledInstance === state.currentInstance;
    actions.push({
      kind: 'container.create',
      key: `create:${service}/${d.slot}`,
      reason,
      service,
      instance,
      slot: d.slot,
      assignment: d,
      slotAfter: {
        ...state,
        currentInstance: instance,
        nextRetryAt: null,
        nextInstance: null,
        gaveUpOnHash: null,
        restarts: state.restarts + (isReplacement ? 1 : 0),
        ...extra,
      },
    });
  };

  const views: SlotView[] = [];
  for (const d of input.desired) {
    const all = bySlot.get(d.slot) ?? [];
    const grace = d.spec.stopGraceSecs;
    // Condemned instances are stopped first; the corpse then tells the story.
    for (const o of all) {
      const why = condemned.get(o.instance);
      if (why && isLive(o.c)) stop(o, why, graceOf(o, grace));
    }
    const live = all.filter((o) => isLive(o.c) && !condemned.has(o.instance));
    const liveCurrent = live.filter((o) => o.specHash === d.specHash).sort(byPreference);
    const liveStale = live.filter((o) => o.specHash !== d.specHash);
    const dead = all.filter((o) => !isLive(o.c)).sort(byRecency);
    let state: SlotState = { ...freshSlotState(service, d.slot), ...(input.slots.get(d.slot) ?? {}) };
    let bookkeeping: string | null = null;
    if (state.rolloutFailed && state.rolloutFailed.hash !== d.specHash) {
      state = { ...state, rolloutFailed: null };
      bookkeeping = 'new-spec-clears-halted-rollout';
    }

    const keep = liveCurrent[0];
    if (keep) {
      for (const dup of liveCurrent.slice(1)) stopAndRemove(dup, 'duplicate-instance', grace);
      if (keep.c.status === 'created') {
        actions.push({ kind: 'container.start', key: `start:${keep.instance}`, reason: 'created-not-started', service, instance: keep.instance, containerId: keep.c.id });
      }
      if (state.currentInstance !== keep.instance || state.nextRetryAt !== null || state.gaveUpOnHash !== null) {
        bookkeeping = state.currentInstance === keep.instance ? 'running-again' : 'adopted';
        state = { ...state, currentInstance: keep.instance, nextRetryAt: null, nextInstance: null, gaveUpOnHash: null };
      }
      const resetMs = d.spec.restart.resetAfterSecs * 1000;
      if (keep.c.status === 'running' && state.consecutiveFailures > 0) {
        const started = ms(keep.c.startedAt);
        if (now - started >= resetMs) {
          state = { ...state, consecutiveFailures: 0 };
          bookkeeping ??= 'ran-reset-after-secs-failure-count-reset';
        } else wake(started + resetMs - now);
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
          { consecutiveFailures: state.consecutiveFailures, startedAtMs: corpse ? ms(corpse.c.startedAt) || null : null, endedAtMs },
          { reason, code: corpse ? corpse.c.exitCode : null },
          d.spec.restart,
        );
        const delayed = decision.kind === 'restart' && decision.delayMs > 0;
        state = {
          ...state,
          handledInstance: cur,
          consecutiveFailures: decision.consecutiveFailures,
          lastExit: { instance: cur, code: corpse ? corpse.c.exitCode : null, reason, at: new Date(endedAtMs).toISOString() },
          nextRetryAt: delayed ? endedAtMs + decision.delayMs : null,
          nextInstance: delayed ? input.newInstanceId(service, d.revision, d.slot) : null,
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
        bookkeeping = null;
      }
    }

    // The last exit was recorded as a plain exit, and its container now shows an OOM kill:
    // Docker may report the OOM after the exit (see DeathWatch). Correct the record, so status
    // and the alerts name the cause; the restart decision stands (an OOM kill exits non-zero).
    const le = state.lastExit;
    if (le && le.reason === 'exited' && !condemned.has(le.instance)) {
      const body = all.find((o) => o.instance === le.instance);
      if (body && !isLive(body.c) && body.c.oomKilled) {
        state = { ...state, lastExit: { ...le, reason: 'oom-killed' } };
        actions.push({
          kind: 'slot.update',
          key: `oom:${le.instance}`,
          reason: 'oom-killed; reported after the exit',
          service,
          instance: le.instance,
          slot: state,
          message: oomHint(d.spec.resources.memoryBytes),
        });
        bookkeeping = null;
      }
    }

    // Keep the latest dead container per slot (for logs --previous); remove older ones.
    for (const o of dead.slice(1)) remove(o, 'cleanup-old-exited');

    const waitMs = state.nextRetryAt !== null ? Math.max(0, state.nextRetryAt - now) : 0;
    const gaveUp = state.gaveUpOnHash === d.specHash;
    const view: SlotView = { d, state, keep, keepReady: keep ? isReady(keep) : false, liveStale, waitMs, gaveUp };
    views.push(view);

    if (keep) {
      if (view.keepReady) {
        // The new instance serves: the old revision of this slot goes, and the slot's rollout is done.
        for (const old of liveStale) stopAndRemove(old, 'replaced-by-new-revision', graceOf(old, grace));
        if (state.rollout) {
          view.state = state = { ...state, rollout: null };
          bookkeeping ??= 'rollout-slot-done';
        }
      }
    } else if (liveStale.length === 0) {
      // Nothing serves this slot: heal it now (or when its backoff ends), whatever any rollout says.
      if (gaveUp) {
        // The restart policy said no; stay down until the spec changes.
      } else if (waitMs > 0) wake(waitMs);
      else {
        const replacing = state.handledInstance !== null && state.handledInstance === state.currentInstance;
        const reason = replacing
          ? `replace-after-${state.lastExit?.reason ?? 'failure'}`
          : state.rollout?.hash === d.specHash
            ? 'new-revision'
            : 'missing-replica';
        create(view, reason);
        continue; // the create carries the slot state
      }
    }
    if (bookkeeping) {
      actions.push({ kind: 'slot.update', key: `slot:${service}/${d.slot}`, reason: bookkeeping, service, instance: state.currentInstance, slot: state });
    }
  }

  planRollout(input, views, actions, { stop, stopAndRemove, create, wake });

  // Slots no longer desired here (scale-down, service deleted, moved away).
  const desiredSlots = new Set(input.desired.map((d) => d.slot));
  for (const [slot, list] of bySlot) {
    if (desiredSlots.has(slot)) continue;
    for (const o of list) stopAndRemove(o, input.desired.length === 0 ? 'service-not-desired' : 'scaled-down', graceOf(o, DEFAULTS.stopGraceSecs));
  }

  return { actions, requeueAfterMs };
}

interface Emit {
  stop: (o: Observed, reason: string, graceSecs: number) => void;
  stopAndRemove: (o: Observed, reason: string, graceSecs: number) => void;
  create: (view: SlotView, reason: string, extra?: Partial<SlotState>) => void;
  wake: (ms: number) => void;
}

/** Moves slots of an older spec to the desired one, one at a time (see planContainers). */
function planRollout(input: ContainerPlanInput, views: SlotView[], actions: Action[], emit: Emit): void {
  const { service, now } = input;
  const first = views[0];
  if (!first) return;
  const { specHash, spec } = first.d;
  const timeoutMs = spec.deploy.readyTimeoutSecs * 1000;
  const halted = views.some((v) => v.state.rolloutFailed?.hash === specHash);

  // Slots moving now: a new instance that is not ready yet, or a rollout waiting on a backoff.
  const moving = views.filter((v) => (v.keep && !v.keepReady) || (!v.keep && v.liveStale.length > 0 && v.state.rollout?.hash === specHash));
  for (const v of moving) {
    const since = v.state.rollout?.hash === specHash ? v.state.rollout.startedAt : null;
    if (since === null || v.liveStale.length === 0) continue;
    if (now - since >= timeoutMs) {
      const who = v.keep ? `instance ${v.keep.instance}` : `slot ${v.d.slot}`;
      const answer = v.keep ? input.lastReadiness?.(v.keep.instance) : undefined;
      const exit = !v.keep && v.state.lastExit ? `its last instance exited (${v.state.lastExit.reason}, code ${v.state.lastExit.code ?? 'none'})` : undefined;
      const why = answer ? `; last readiness check: ${answer}` : exit ? `; ${exit}` : '';
      const reason = `${who} of revision ${v.d.revision} was not ready within ready_timeout_secs = ${spec.deploy.readyTimeoutSecs}${why}`;
      if (v.keep) emit.stopAndRemove(v.keep, 'rollout-timeout', spec.stopGraceSecs);
      const state: SlotState = { ...v.state, rollout: null, rolloutFailed: { hash: specHash, reason, at: now } };
      actions.push({ kind: 'rollout.halt', key: `rollout:${service}/${v.d.slot}`, reason: 'rollout-timeout', message: `rollout halted: ${reason}; the previous instances keep serving`, service, instance: v.keep?.instance ?? null, slot: state });
      return;
    }
    emit.wake(since + timeoutMs - now);
    if (!v.keep && !halted) {
      // The slot's new instance failed mid-rollout: replace it when its backoff allows.
      if (v.waitMs > 0) emit.wake(v.waitMs);
      else if (!v.gaveUp) emit.create(v, `replace-after-${v.state.lastExit?.reason ?? 'failure'}`);
    }
  }
  if (halted) return;

  // A slot that is not serving a ready instance of any kind holds the next move back.
  const busy = views.some((v) => (v.keep && !v.keepReady) || (!v.keep && (v.liveStale.length === 0 || v.state.rollout?.hash === specHash)));
  if (busy) return;
  const next = views.find((v) => !v.keep && v.liveStale.length > 0);
  if (!next) return;
  if (next.waitMs > 0) {
    emit.wake(next.waitMs);
    return;
  }
  const rollout = { hash: specHash, startedAt: now };
  if (spec.deploy.strategy === 'stop-first') {
    for (const old of next.liveStale) emit.stopAndRemove(old, 'stop-first-rollout', spec.stopGraceSecs);
    // The old instance is retired on purpose: its end is not a failure of the slot.
    actions.push({ kind: 'slot.update', key: `slot:${service}/${next.d.slot}`, reason: 'rollout-slot-started', service, instance: next.state.currentInstance, slot: { ...next.state, currentInstance: null, rollout } });
    return;
  }
  emit.create(next, 'new-revision', { rollout });
}
