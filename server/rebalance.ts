import { sleep, type Clock } from '../core/clock.js';
import { DEFAULTS } from '../core/defaults.js';
import type { Logger } from '../core/log.js';
import type { EventRecord, ServiceRecord } from '../store/types.js';
import type { InstanceReport } from '../protocol/reports.js';
import type { NodeAction, NodeState } from '../controllers/node/actions.js';
import { planReschedules } from '../controllers/node/planner.js';
import { instanceHash } from '../controllers/container/instance-hash.js';
import { spreadMoves, type SchedulableNode } from './scheduler.js';

/**
 * Back to spread after a node returns (SPEC §3.1 "a down node comes back", §4 `orca rebalance`).
 *
 * While a node is down its replicas move to the others, and the scheduler keeps them there when
 * it comes back (it never moves a running slot on its own). Two things spread them again:
 *
 * - **A rollout.** A service whose instance hash changed (a new revision that replaces its
 *   instances) is scheduled with `respread` (`rolloutRespread`): its new instances start where
 *   spread wants them; a slot that moves leaves its old revision running on the node it leaves
 *   until the new instance is ready (start-first, the control plane's lingering).
 * - **`orca rebalance [SERVICE]`** (`runRebalance`): one spread move at a time, each made by a
 *   scheduling pass (`applyAsks`), start-first, the next only once the moved slot's new instance
 *   is ready where it went and the old one is gone. Slots with volumes stay where their data is.
 *
 * Either way the moved slot is kept where it went by every later pass: the scheduler's `previous`
 * says so, and its step 1 keeps a slot on a ready node.
 */

/** Bounds of a rebalance move (beside core/defaults.ts: they are this module's alone). */
export const REBALANCE = {
  /** How often a move's progress is looked at. */
  pollMs: 200,
  /** Beyond deploy.ready_timeout_secs, for the new container to be created and started. */
  readySlackMs: 10_000,
  /** Beyond stop_grace_secs and the proxy's drain bound, for the old instance to be removed. */
  goneSlackMs: 30_000,
} as const;

/** A move `orca rebalance` asks the next scheduling pass to make. */
export type MoveAsk =
  /** The first spread move of these services (null: every live service), if any is left. */
  | { kind: 'spread'; services: ReadonlySet<string> | null }
  /** Put `key` back on `from`, if it is still placed on `to` (its new instance never got ready). */
  | { kind: 'back'; key: string; from: string; to: string; why: string };

/** A slot moved by an ask. */
export interface AskedMove {
  key: string;
  from: string;
  to: string;
}

/**
 * Applies asks to the placement a scheduling pass starts from. Pure. Returns that placement, the
 * slot.reschedule actions to apply and record (reason `rebalance`; a spread move lingers on the
 * node it leaves, a move back does not: its not-ready instance is the one to go), and per ask
 * the move made or null.
 */
export function applyAsks(
  asks: readonly MoveAsk[],
  input: {
    services: readonly ServiceRecord[];
    nodes: readonly SchedulableNode[];
    placement: ReadonlyMap<string, string>;
    homes: ReadonlyMap<string, string>;
    stateOf: (node: string) => NodeState | undefined;
  },
): { previous: Map<string, string>; actions: NodeAction[]; made: Array<AskedMove | null> } {
  const previous = new Map(input.placement);
  const actions: NodeAction[] = [];
  const made: Array<AskedMove | null> = [];
  for (const ask of asks) {
    if (ask.kind === 'spread') {
      const m = spreadMoves(input.services, input.nodes, previous, input.homes, ask.services)[0];
      if (!m || m.to === null) {
        made.push(null);
        continue;
      }
      previous.set(m.key, m.to);
      actions.push(...planReschedules([{ key: m.key, from: m.from, to: m.to, reason: 'rebalance' }], input.stateOf));
      made.push({ key: m.key, from: m.from, to: m.to });
      continue;
    }
    if (previous.get(ask.key) !== ask.to || !input.nodes.some((n) => n.name === ask.from && n.schedulable)) {
      made.push(null);
      continue;
    }
    previous.set(ask.key, ask.from);
    actions.push({
      kind: 'slot.reschedule',
      key: ask.key,
      reason: 'rebalance',
      message: `${ask.key} back from ${ask.to} to ${ask.from}: ${ask.why}`,
      service: serviceOf(ask.key),
      from: ask.to,
      to: ask.from,
      linger: false,
    });
    made.push({ key: ask.key, from: ask.to, to: ask.from });
  }
  return { previous, actions, made };
}

/**
 * The services a scheduling pass spreads again because their instances are being replaced: live
 * services whose instance hash differs from the one they were last placed with (`placed`). A
 * service placed for the first time, or whose new revision replaces no instance (a scale), is not
 * among them. Pure.
 */
export function rolloutRespread(services: readonly ServiceRecord[], placed: ReadonlyMap<string, string>): Set<string> {
  const out = new Set<string>();
  for (const s of services) {
    if (s.deletedAt) continue;
    const before = placed.get(s.name);
    if (before !== undefined && before !== instanceHash(s.spec, s.secretVersions)) out.add(s.name);
  }
  return out;
}

/** The instance hash each live service is placed with now (what `rolloutRespread` compares with next time). Pure. */
export function placedHashes(services: readonly ServiceRecord[]): Map<string, string> {
  return new Map(services.filter((s) => !s.deletedAt).map((s) => [s.name, instanceHash(s.spec, s.secretVersions)]));
}

/** One line of `orca rebalance`'s progress (POST /v1/rebalance streams them as JSON Lines). */
export type RebalanceProgress =
  | { event: 'moving'; service: string; slot: number; from: string; to: string }
  | { event: 'moved'; service: string; slot: number; from: string; to: string; instance: string | null; readyMs: number; goneMs: number }
  | { event: 'failed'; service: string; slot: number; from: string; to: string; reason: string; movedBack: boolean }
  | { event: 'done'; moves: number; stay: string[]; stopped?: string };

export interface RebalanceDeps {
  clock: Clock;
  log: Logger;
  /** Has the next scheduling pass make this ask (applyAsks); resolves with the move made, or null. */
  ask: (a: MoveAsk) => Promise<AskedMove | null>;
  /** The node a slot is placed on now. */
  placedOn: (key: string) => string | undefined;
  /** What every node last reported. */
  reports: () => InstanceReport[];
  /** The live service (its spec bounds the waits); undefined once deleted. */
  service: (name: string) => Promise<ServiceRecord | undefined>;
  record: (e: EventRecord) => void;
  /** How often a move's progress is looked at (ms). */
  pollMs?: number;
}

export interface RebalanceScope {
  /** The services to spread (null: every live service). */
  only: ReadonlySet<string> | null;
  /** Services in scope that have volumes: their slots stay. */
  stay: string[];
  /** Moves at most (every slot of the scope once): a bound against a cluster that keeps changing. */
  maxMoves: number;
}

/**
 * `orca rebalance`: spread moves one at a time until none is left (`done`), a move fails
 * (`failed`: its new instance was not ready in time — the slot is put back where it was, still
 * serving there — or the old one did not go), or `signal` aborts (the move under way completes on
 * its own, no other starts). Each move is `moving` then `moved` in `progress`, a slot.reschedule
 * event (reason `rebalance`, by the scheduling pass) and a rebalance.move event with its outcome
 * and duration. Never throws for a failed move; resolves with the last progress line.
 */
export async function runRebalance(deps: RebalanceDeps, scope: RebalanceScope, signal: AbortSignal, progress: (p: RebalanceProgress) => Promise<void>): Promise<RebalanceProgress> {
  let moves = 0;
  const done = async (stopped?: string): Promise<RebalanceProgress> => {
    const last: RebalanceProgress = { event: 'done', moves, stay: scope.stay, ...(stopped ? { stopped } : {}) };
    await progress(last);
    return last;
  };
  for (;;) {
    if (signal.aborted) return done('the client went away: no further move was started');
    if (moves >= scope.maxMoves) return done(`stopped after ${moves} moves (the most the services in scope can need): the cluster kept changing; run orca rebalance again`);
    const m = await deps.ask({ kind: 'spread', services: scope.only });
    if (!m) return done();
    const slot = Number(m.key.slice(m.key.lastIndexOf('/') + 1));
    const where = { service: serviceOf(m.key), slot, from: m.from, to: m.to };
    deps.log.info({ slot: m.key, from: m.from, to: m.to }, 'rebalance: moving a slot');
    await progress({ event: 'moving', ...where });
    const r = await follow(deps, m, signal);
    deps.record({
      time: new Date(deps.clock.now()).toISOString(),
      reconciler: 'control-plane',
      service: where.service,
      instance: r.instance,
      node: m.to,
      action: 'rebalance.move',
      reason: 'rebalance',
      outcome: r.ok ? 'ok' : r.movedBack ? 'moved-back' : r.stopped ? 'stopped-following' : 'failed',
      durationMs: r.readyMs + r.goneMs,
      message: `${m.key} from ${m.from} to ${m.to}${r.ok ? '' : `: ${r.reason}`}`,
    });
    if (r.stopped) return done('the client went away: the move under way completes on its own');
    if (!r.ok) {
      deps.log.warn({ slot: m.key, from: m.from, to: m.to, reason: r.reason, movedBack: r.movedBack }, 'rebalance: a move failed');
      const failed: RebalanceProgress = { event: 'failed', ...where, reason: r.reason, movedBack: r.movedBack };
      await progress(failed);
      return failed;
    }
    moves += 1;
    deps.log.info({ slot: m.key, from: m.from, to: m.to, readyMs: r.readyMs, goneMs: r.goneMs }, 'rebalance: slot moved');
    await progress({ event: 'moved', ...where, instance: r.instance, readyMs: r.readyMs, goneMs: r.goneMs });
  }
}

interface Followed {
  ok: boolean;
  reason: string;
  movedBack: boolean;
  stopped: boolean;
  instance: string | null;
  readyMs: number;
  goneMs: number;
}

/**
 * Waits until the moved slot's new instance is ready (and of its current spec) where it went,
 * then until no live instance of it is left on the node it left. Bounded: ready within the
 * service's ready_timeout_secs (plus a little for the image and the container to start), else the
 * slot is put back; gone within its stop grace plus the proxy's drain bound.
 */
async function follow(deps: RebalanceDeps, m: AskedMove, signal: AbortSignal): Promise<Followed> {
  const pollMs = deps.pollMs ?? REBALANCE.pollMs;
  const started = deps.clock.now();
  const [service, slotText] = [serviceOf(m.key), m.key.slice(m.key.lastIndexOf('/') + 1)];
  const of = (r: InstanceReport) => r.service === service && String(r.slot) === slotText;
  const result = (f: Partial<Followed>): Followed => ({ ok: false, reason: '', movedBack: false, stopped: false, instance: null, readyMs: deps.clock.now() - started, goneMs: 0, ...f });
  const svc = await deps.service(service);
  if (!svc) return result({ reason: `service "${service}" was deleted` });
  const readyWithinMs = svc.spec.deploy.readyTimeoutSecs * 1000 + REBALANCE.readySlackMs;
  let instance: string | null = null;
  for (;;) {
    const at = deps.placedOn(m.key);
    if (at !== m.to) return result({ reason: `it was placed ${at === undefined ? 'nowhere' : `on ${at}`} meanwhile (a node changed state, or the service changed)` });
    const ready = deps.reports().find((r) => r.node === m.to && of(r) && r.ready && r.current && r.containerId !== null);
    if (ready) {
      instance = ready.id;
      break;
    }
    if (signal.aborted) return result({ stopped: true, reason: 'stopped' });
    if (deps.clock.now() - started >= readyWithinMs) {
      const why = `its new instance on ${m.to} was not ready within ${Math.round(readyWithinMs / 1000)} s (deploy.ready_timeout_secs = ${svc.spec.deploy.readyTimeoutSecs}, plus ${REBALANCE.readySlackMs / 1000} s to start)`;
      const back = await deps.ask({ kind: 'back', key: m.key, from: m.from, to: m.to, why });
      return result({ reason: back ? `${why}; put back on ${m.from}, which kept serving it` : why, movedBack: back !== null });
    }
    await sleep(deps.clock, pollMs);
  }
  const readyAt = deps.clock.now();
  const goneWithinMs = svc.spec.stopGraceSecs * 1000 + DEFAULTS.drainMaxMs + REBALANCE.goneSlackMs;
  for (;;) {
    const gone = !deps.reports().some((r) => r.node === m.from && of(r) && r.containerId !== null);
    if (gone) return result({ ok: true, instance, readyMs: readyAt - started, goneMs: deps.clock.now() - readyAt });
    if (signal.aborted) return result({ stopped: true, reason: 'stopped', instance, readyMs: readyAt - started });
    if (deps.clock.now() - readyAt >= goneWithinMs) {
      return result({ instance, readyMs: readyAt - started, goneMs: deps.clock.now() - readyAt, reason: `the new instance is ready on ${m.to}, but the old one on ${m.from} was still there ${Math.round(goneWithinMs / 1000)} s later` });
    }
    await sleep(deps.clock, pollMs);
  }
}

function serviceOf(key: string): string {
  return key.slice(0, key.lastIndexOf('/'));
}
