import type { SlotAssignment } from '../controllers/container/types.js';
import type { ServiceRecord } from '../store/types.js';
import type { ServiceSpec } from '../manifest/types.js';
import { instanceHash } from '../controllers/container/instance-hash.js';
import { formatMemory } from '../manifest/units.js';
import { LIMITS } from '../manifest/limits.js';
import { hostPathAllowed } from '../core/host-paths.js';
import { OLDEST_PROTOCOL_VERSION, PROTOCOL_FEATURES, PROTOCOL_VERSION } from '../protocol/messages.js';
import type { NodeState } from './nodes.js';

/**
 * One node as the scheduler sees it. Two independent switches say what the node may hold:
 *
 * | node                         | schedulable | keepsSlots | effect                                        |
 * |------------------------------|-------------|------------|-----------------------------------------------|
 * | ready                        | true        | true       | keeps its slots, receives new ones            |
 * | ready but cordoned           | false       | true       | keeps its slots, receives none                |
 * | unreachable (not yet down)   | false       | true       | keeps its slots (don't reschedule yet)        |
 * | down                         | false       | false      | its slots move to other nodes                 |
 * | draining (`orca drain`)      | false       | false      | its slots move to other nodes                 |
 *
 * `nodeSchedulingFlags()` computes the pair from a node state.
 */
export interface SchedulableNode {
  name: string;
  labels: Record<string, string>;
  /** Whether the node may receive new (or moved) slots. */
  schedulable: boolean;
  /**
   * Whether the slots already assigned to this node stay there. Defaults to `schedulable`
   * (the scheduler's behaviour before this field existed); a schedulable node always keeps
   * its slots, whatever this says. Set it explicitly: `true` for unreachable-but-not-yet-down
   * (and cordoned) nodes, `false` for down and draining ones.
   */
  keepsSlots?: boolean;
  /**
   * What the node can hold. `memoryBytes` is the node's total memory: the declared
   * `resources.memory` of the slots placed on it never exceeds it (a slot without a declared
   * memory counts 0). Absent means unlimited.
   */
  capacity?: { memoryBytes?: number };
  /** The node is `down` (not merely draining): a slot whose volume it holds waits for it (SPEC §3.8). */
  down?: boolean;
  /** Directories the node allows host mounts under; a service's host paths must all lie under one. */
  allowHostPaths?: readonly string[];
  /**
   * The agent protocol version the node speaks (absent: this build's). A service with volumes,
   * mounts or secrets is placed only where the agent knows them (PROTOCOL_FEATURES): an agent one
   * release behind keeps what it runs and gets nothing it would run wrong.
   */
  protocol?: number;
}

/** A replica slot the scheduler could not place, and why (for logs, events and status). */
export interface UnplacedSlot {
  /** `service/slot`, as in `placement`; `service/*` for a service none of whose slots was considered. */
  key: string;
  /**
   * e.g. `no node matches placement.node = "x"`, `no node has labels zone=a`,
   * `no schedulable node matches labels zone=a`, `not enough memory: needs 64m, largest free 32m`.
   */
  reason: string;
}

/** A slot that had a node before this run and is not on it any more. */
export interface MovedSlot {
  key: string;
  from: string;
  /** The new node, or null when the slot could not be placed anywhere (see `unplaced`). */
  to: string | null;
  /**
   * `spread`: its node was still fine, but the slot left it to spread its service again
   * (`respread`, see `schedule()`): a start-first move from a ready node. Absent otherwise.
   */
  cause?: 'spread';
}

/** Options of a scheduling pass. */
export interface ScheduleOptions {
  /**
   * Services placed by spread again in this pass (a rollout to a new instance hash, or
   * `orca rebalance`): after keeping and placing, their slots move from the nodes with the most
   * of them to eligible ready nodes with at least two fewer, until no such move is left. Slots
   * with volumes never move.
   */
  respread?: ReadonlySet<string>;
}

export interface ScheduleResult {
  /**
   * Per node (every node passed in, sorted by name, an empty list included) its full
   * assignment set, sorted by service name then slot. Send every node its list: an empty list
   * tells a down or drained node's agent to remove what it still runs once it comes back.
   */
  assignments: Map<string, SlotAssignment[]>;
  /** `service/slot` → node, for every placed slot (sorted by service, then slot). Feed it back as `previous`. */
  placement: Map<string, string>;
  /** Slots that fit no node, sorted by service then slot (services refused whole first). They are retried on the next run. */
  unplaced: UnplacedSlot[];
  /** Slots that left the node they had in `previous` (sorted by key order like `placement`). */
  moved: MovedSlot[];
}

/**
 * Maps a node's state (SPEC §4 `orca nodes`) to the scheduler's switches. Pure.
 *
 * - `ready` keeps its slots and receives new ones (none when `cordoned`).
 * - `unreachable` keeps its slots but receives none: the server has stopped hearing it, but its
 *   workloads most likely still run, so nothing is rescheduled until it is declared `down`
 *   (SPEC §3.1, `node_down_grace_secs`).
 * - `down` and `draining` lose their slots: the next `schedule()` moves them to other nodes.
 *
 * Drain (`orca drain NODE`) is exactly `draining` → `{ schedulable: false, keepsSlots: false }`:
 * the scheduler merely reassigns the slots. It does not stop anything. The move is start-first
 * at the agents: the new node starts the replacement, and the drained node's agent keeps the
 * old instance running (and routed) until the replacement is ready elsewhere, then stops it.
 * Sequencing that is the agents' and the control plane's business, not the scheduler's.
 * `orca uncordon` makes the node `ready` again; slots that moved away stay where they are
 * until a rollout or `orca rebalance` spreads them again (`respread`).
 */
export function nodeSchedulingFlags(
  state: NodeState,
  opts: { cordoned?: boolean } = {},
): { schedulable: boolean; keepsSlots: boolean } {
  switch (state) {
    case 'ready':
      return { schedulable: !opts.cordoned, keepsSlots: true };
    case 'unreachable':
      return { schedulable: false, keepsSlots: true };
    case 'down':
    case 'draining':
      return { schedulable: false, keepsSlots: false };
    default: {
      const never: never = state;
      throw new Error(`unknown node state ${String(never)}`);
    }
  }
}

/**
 * Assigns every replica slot of every live service to a node. Pure and deterministic: the
 * same inputs give the same output, whatever the order of `services` and `nodes` (names are
 * compared by UTF-16 code units, never by locale). `previous` is the last run's `placement`.
 *
 * 1. **Keep.** A slot stays on its previous node while that node keeps slots (see
 *    `SchedulableNode`), still matches the service's `placement` and still has room for its
 *    declared memory. Slots are kept in service-name, then slot order, so when a node's room
 *    shrank, the later slots are the ones that move.
 * 2. **Place.** Every other slot (new, scaled up, or moved) goes to an eligible node
 *    (schedulable, matches `placement.node` and every `placement.labels`, enough free memory),
 *    choosing the one with the fewest slots of that service, then the fewest slots overall,
 *    then the smallest name. Slots with the largest declared memory are placed first (then by
 *    service name, then slot), which packs big replicas while room is still available.
 *    Replicas of one service therefore spread by count: 4 on 2 nodes → 2 + 2, 3 on 3 → 1 + 1 + 1.
 * 2b. **Respread**, only for the services in `opts.respread` (a rollout to a new instance hash,
 *    `orca rebalance`): their slots are spread again the way step 2 would place them fresh (see
 *    `respreadService`). A slot that leaves a ready node so is reported moved with cause
 *    `spread`; every later pass keeps it where it went (step 1), so a spread move is never undone.
 * 3. A slot that fits nowhere is reported in `unplaced` with a reason (judged against the
 *    final placement) and retried on the next run.
 *
 * A service whose `replicas` is not an integer from 0 to LIMITS.replicas (a stored spec from an
 * older version, or a damaged one) gets no slot at all and one `service/*` entry in `unplaced`:
 * the scheduler never loops over an unbounded count. (The control plane screens such specs out
 * before; this is the scheduler's own guard.)
 *
 * A slot of a service with volumes stays on the node that holds them (`homes`, else `previous`)
 * whatever that node's state, respread included; while that node is `down` the slot waits,
 * unplaced with the reason `volume on down node <n>`, and is not reported as moved. A service
 * with host mounts is placed only on nodes that allow every one of its host paths.
 *
 * Without `respread` there is no rebalancing: a running slot never moves only because a node was
 * added or came back. Capacity is accounted by the declared limits of the desired slots; the
 * transient surge instance of a start-first rollout or move is not counted.
 */
export function schedule(
  services: readonly ServiceRecord[],
  nodes: readonly SchedulableNode[],
  previous: ReadonlyMap<string, string> = new Map(),
  homes: ReadonlyMap<string, string> = new Map(),
  opts: ScheduleOptions = {},
): ScheduleResult {
  const sortedNodes = [...nodes].sort((a, b) => cmp(a.name, b.name));
  const byName = new Map<string, NodeUsage>();
  for (const node of sortedNodes) {
    if (byName.has(node.name)) continue; // names must be unique; a duplicate is ignored
    byName.set(node.name, { node, total: 0, memory: 0, perService: new Map() });
  }
  const usages = [...byName.values()];

  const live = services.filter((s) => !s.deletedAt).sort((a, b) => cmp(a.name, b.name));
  const slots: Slot[] = [];
  const refused: UnplacedSlot[] = [];
  for (const svc of live) {
    const replicas: unknown = svc.spec.replicas;
    if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0 || replicas > LIMITS.replicas) {
      refused.push({ key: `${svc.name}/*`, reason: `replicas = ${String(replicas).slice(0, 20)} is not an integer from 0 to ${LIMITS.replicas}` });
      continue;
    }
    const hash = instanceHash(svc.spec, svc.secretVersions);
    const memory = svc.spec.resources.memoryBytes ?? 0;
    for (let slot = 0; slot < svc.spec.replicas; slot++) {
      slots.push({ svc, slot, key: `${svc.name}/${slot}`, hash, memory });
    }
  }

  const chosen = new Map<Slot, NodeUsage>();
  const pending: Slot[] = [];

  const waiting = new Map<Slot, string>();
  // 0. Stateful slots stay with their volume (SPEC §3.8): on its node whatever that node's state
  // (draining, cordoned, unreachable, short of room), and nowhere while it is down. A node no
  // longer known at all (orca nodes rm) frees the slot to be placed anew, with a new volume.
  const rest: Slot[] = [];
  for (const s of slots) {
    const home = hasVolumes(s.svc.spec) ? (homes.get(s.key) ?? previous.get(s.key)) : undefined;
    const u = home === undefined ? undefined : byName.get(home);
    if (!u) {
      rest.push(s);
      continue;
    }
    if (u.node.down) {
      waiting.set(s, `volume on down node ${u.node.name}`);
      continue;
    }
    if (!speaks(s.svc.spec, u.node)) {
      // Its agent went back a release: it would run the slot without its volume.
      waiting.set(s, `volume on node ${u.node.name}, whose agent speaks protocol ${u.node.protocol}: upgrade orca agent there`);
      continue;
    }
    take(u, s);
    chosen.set(s, u);
  }

  // 1. Keep.
  const kept = new Set<Slot>();
  for (const s of rest) {
    const prev = previous.get(s.key);
    const u = prev === undefined ? undefined : byName.get(prev);
    if (u && keepsSlots(u.node) && matches(s.svc.spec, u.node) && allowsMounts(s.svc.spec, u.node) && hasRoom(u, s.memory)) {
      take(u, s);
      chosen.set(s, u);
      kept.add(s);
    } else {
      pending.push(s);
    }
  }

  // 2. Place.
  pending.sort((a, b) => b.memory - a.memory || cmp(a.svc.name, b.svc.name) || a.slot - b.slot);
  const failed: Slot[] = [];
  for (const s of pending) {
    let best: NodeUsage | undefined;
    for (const u of usages) {
      if (!u.node.schedulable || !matches(s.svc.spec, u.node) || !allowsMounts(s.svc.spec, u.node) || !hasRoom(u, s.memory)) continue;
      if (!best || better(u, best, s.svc.name)) best = u;
    }
    if (best) {
      take(best, s);
      chosen.set(s, best);
    } else {
      failed.push(s);
    }
  }
  // 2b. Respread (a rollout, orca rebalance): a slot that was kept and now leaves is a spread move.
  const spread = new Set<Slot>();
  if (opts.respread && opts.respread.size > 0) {
    for (const svc of live) {
      if (!opts.respread.has(svc.name) || hasVolumes(svc.spec)) continue;
      const mine = slots.filter((s) => s.svc === svc && chosen.has(s));
      for (const s of respreadService(mine, chosen, usages)) {
        if (kept.has(s) && previous.get(s.key) !== chosen.get(s)?.node.name) spread.add(s);
      }
    }
  }

  // Reasons describe the final state (e.g. the memory still free after everything else was
  // placed), so rescheduling with this run's placement gives the very same reasons.
  const reasons = new Map(failed.map((s) => [s, whyUnplaced(s, usages)]));

  // 3. Report, in canonical order.
  const assignments = new Map<string, SlotAssignment[]>(usages.map((u) => [u.node.name, []]));
  const placement = new Map<string, string>();
  const unplaced: UnplacedSlot[] = [...refused];
  const moved: MovedSlot[] = [];
  for (const s of slots) {
    const u = chosen.get(s);
    const prev = previous.get(s.key);
    if (u) {
      placement.set(s.key, u.node.name);
      assignments.get(u.node.name)?.push({
        service: s.svc.name,
        slot: s.slot,
        revision: s.svc.revision,
        specHash: s.hash,
        spec: s.svc.spec,
        // Which versions of its secrets the slot's instances get (values go to its node only).
        ...(s.svc.secretVersions && Object.keys(s.svc.secretVersions).length > 0 ? { secretVersions: { ...s.svc.secretVersions } } : {}),
      });
    } else {
      unplaced.push({ key: s.key, reason: waiting.get(s) ?? reasons.get(s) ?? 'unplaceable' });
    }
    const to = u?.node.name ?? null;
    // A slot waiting for its volume's node has not moved: it is still that node's.
    if (prev !== undefined && prev !== to && !waiting.has(s)) moved.push({ key: s.key, from: prev, to, ...(spread.has(s) ? { cause: 'spread' as const } : {}) });
  }
  return { assignments, placement, unplaced, moved };
}

interface Slot {
  svc: ServiceRecord;
  slot: number;
  key: string;
  hash: string;
  /** Declared memory in bytes; 0 when the service declares none. */
  memory: number;
}

interface NodeUsage {
  node: SchedulableNode;
  /** Slots on the node, all services. */
  total: number;
  /** Declared memory of the slots on the node. */
  memory: number;
  perService: Map<string, number>;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function keepsSlots(node: SchedulableNode): boolean {
  return node.schedulable || (node.keepsSlots ?? node.schedulable);
}

/** The node's memory limit, or undefined when it has none (a non-number or NaN counts as none). */
function memoryLimit(node: SchedulableNode): number | undefined {
  const m = node.capacity?.memoryBytes;
  return typeof m === 'number' && !Number.isNaN(m) ? m : undefined;
}

function hasRoom(u: NodeUsage, memory: number): boolean {
  const limit = memoryLimit(u.node);
  return limit === undefined || u.memory + memory <= limit;
}

function take(u: NodeUsage, s: Slot): void {
  u.total += 1;
  u.memory += s.memory;
  u.perService.set(s.svc.name, (u.perService.get(s.svc.name) ?? 0) + 1);
}

function untake(u: NodeUsage, s: Slot): void {
  u.total -= 1;
  u.memory -= s.memory;
  u.perService.set(s.svc.name, (u.perService.get(s.svc.name) ?? 0) - 1);
}

/**
 * Spreads one service's placed slots again, as step 2 would place them fresh: while a ready
 * (schedulable) node holds at least two more of the service's slots than an eligible ready node
 * (placement, host paths, protocol, room for the slot's memory), its highest-numbered slot goes
 * there — from the node with the most of the service's slots (then the most slots overall, then
 * the smallest name), to the node step 2 would pick (`better`). Slots on nodes that are not
 * schedulable (unreachable, cordoned) neither move nor receive. Each move lowers the sum of the
 * squares of the per-node counts by at least 2, so this ends; at the end no eligible ready node
 * has two fewer than another: counts differ by at most one, as a fresh placement's do (unless
 * memory or placement forbids). Mutates `chosen` and the usages; returns the slots it moved.
 */
function respreadService(mine: Slot[], chosen: Map<Slot, NodeUsage>, usages: readonly NodeUsage[]): Slot[] {
  const first = mine[0];
  if (!first) return [];
  const name = first.svc.name;
  const spec = first.svc.spec;
  const count = (u: NodeUsage) => u.perService.get(name) ?? 0;
  const movedSlots: Slot[] = [];
  // A bound beside the proof: never more moves than slots × nodes.
  for (let guard = mine.length * Math.max(1, usages.length); guard > 0; guard--) {
    const sources = usages
      .filter((u) => u.node.schedulable && count(u) > 0)
      .sort((a, b) => count(b) - count(a) || b.total - a.total || cmp(a.node.name, b.node.name));
    let move: { s: Slot; from: NodeUsage; to: NodeUsage } | undefined;
    for (const from of sources) {
      const s = mine.filter((x) => chosen.get(x) === from).sort((a, b) => b.slot - a.slot)[0];
      if (!s) continue;
      let best: NodeUsage | undefined;
      for (const u of usages) {
        if (u === from || !u.node.schedulable || count(u) > count(from) - 2) continue;
        if (!matches(spec, u.node) || !allowsMounts(spec, u.node) || !hasRoom(u, s.memory)) continue;
        if (!best || better(u, best, name)) best = u;
      }
      if (best) {
        move = { s, from, to: best };
        break;
      }
    }
    if (!move) break;
    untake(move.from, move.s);
    take(move.to, move.s);
    chosen.set(move.s, move.to);
    movedSlots.push(move.s);
  }
  return movedSlots;
}

/**
 * The spread moves `orca rebalance` would make now: each service of `only` (every live service
 * when null) placed by spread again from `placement` (see `respreadService`), as MovedSlots with
 * cause `spread`, in key order. Empty when every one is spread. Pure.
 */
export function spreadMoves(
  services: readonly ServiceRecord[],
  nodes: readonly SchedulableNode[],
  placement: ReadonlyMap<string, string>,
  homes: ReadonlyMap<string, string>,
  only: ReadonlySet<string> | null,
): MovedSlot[] {
  const respread = only ?? new Set(services.map((s) => s.name));
  return schedule(services, nodes, placement, homes, { respread }).moved.filter((m) => m.cause === 'spread');
}

/** Spread order: fewest slots of this service, then fewest slots overall, then name. */
function better(a: NodeUsage, b: NodeUsage, service: string): boolean {
  const d = (a.perService.get(service) ?? 0) - (b.perService.get(service) ?? 0) || a.total - b.total;
  return d !== 0 ? d < 0 : cmp(a.node.name, b.node.name) < 0;
}

function matchesNode(spec: ServiceSpec, node: SchedulableNode): boolean {
  const want = spec.placement?.node;
  return want === undefined || want === node.name;
}

function matchesLabels(spec: ServiceSpec, node: SchedulableNode): boolean {
  for (const [k, v] of Object.entries(spec.placement?.labels ?? {})) {
    if (!Object.hasOwn(node.labels, k) || node.labels[k] !== v) return false;
  }
  return true;
}

function matches(spec: ServiceSpec, node: SchedulableNode): boolean {
  return matchesNode(spec, node) && matchesLabels(spec, node);
}

function hasVolumes(spec: ServiceSpec): boolean {
  return Object.keys(spec.volumes ?? {}).length > 0;
}

/** Every host path of the service lies under a directory the node allows (lexically: the agent also resolves symlinks). */
function allowsMounts(spec: ServiceSpec, node: SchedulableNode): boolean {
  return speaks(spec, node) && (spec.mounts ?? []).every((m) => hostPathAllowed(m.host, node.allowHostPaths ?? []));
}

/** The protocol version an agent needs to run this service as written (its volumes, mounts, secrets). */
export function protocolNeeded(spec: ServiceSpec): number {
  let v = OLDEST_PROTOCOL_VERSION as number;
  if (hasVolumes(spec)) v = Math.max(v, PROTOCOL_FEATURES.volumes);
  if ((spec.mounts ?? []).length > 0) v = Math.max(v, PROTOCOL_FEATURES.mounts);
  if ((spec.secrets ?? []).length > 0 || Object.keys(spec.secretEnv ?? {}).length > 0) v = Math.max(v, PROTOCOL_FEATURES.secrets);
  return v;
}

function speaks(spec: ServiceSpec, node: SchedulableNode): boolean {
  return (node.protocol ?? PROTOCOL_VERSION) >= protocolNeeded(spec);
}

function labelText(labels: Record<string, string>): string {
  return Object.keys(labels)
    .sort(cmp)
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}

/** Why no node took the slot, checking the constraints in the order an operator would. */
function whyUnplaced(s: Slot, usages: readonly NodeUsage[]): string {
  const spec = s.svc.spec;
  const wantNode = spec.placement?.node;
  const labels = spec.placement?.labels ?? {};
  const hasLabels = Object.keys(labels).length > 0;
  const nodeText = wantNode === undefined ? '' : `placement.node = "${wantNode}"`;
  const placementText = [nodeText, hasLabels ? `labels ${labelText(labels)}` : ''].filter(Boolean).join(' and ');

  const byNode = usages.filter((u) => matchesNode(spec, u.node));
  if (byNode.length === 0) return wantNode === undefined ? 'no nodes' : `no node matches ${nodeText}`;
  const byPlacement = byNode.filter((u) => matchesLabels(spec, u.node));
  if (byPlacement.length === 0) {
    return wantNode === undefined ? `no node has labels ${labelText(labels)}` : `no node matches ${placementText}`;
  }
  const schedulable = byPlacement.filter((u) => u.node.schedulable);
  if (schedulable.length === 0) {
    return placementText ? `no schedulable node matches ${placementText}` : 'no schedulable node';
  }
  const speaking = schedulable.filter((u) => speaks(spec, u.node));
  if (speaking.length === 0) {
    const old = schedulable.map((u) => u.node.name).sort(cmp).join(', ');
    return `no schedulable node's agent speaks protocol ${protocolNeeded(spec)} (volumes, mounts, secrets): upgrade orca agent on ${old}`;
  }
  const mounting = speaking.filter((u) => allowsMounts(spec, u.node));
  if (mounting.length === 0) {
    const paths = (spec.mounts ?? []).map((m) => m.host).join(', ');
    return `no schedulable node allows host path ${paths} (orca agent --allow-host-path)`;
  }
  let largest = 0;
  for (const u of mounting) {
    const limit = memoryLimit(u.node);
    if (limit !== undefined) largest = Math.max(largest, limit - u.memory);
  }
  return `not enough memory: needs ${memText(s.memory)}, largest free ${memText(largest)}`;
}

function memText(bytes: number): string {
  if (bytes <= 0) return '0b';
  return Number.isSafeInteger(bytes) ? formatMemory(bytes) : `${bytes}b`;
}
