import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock, TimerHandle } from '../../core/clock.js';
import type { Logger } from '../../core/log.js';
import type { EventRecord, Store } from '../../store/types.js';
import type { EventLog } from '../event-log.js';
import { HttpError } from '../http-util.js';
import type { Recovery, RecoveryFeed } from '../recoveries.js';
import { StreamWriter } from '../stream-writer.js';
import { UI_HEADERS } from './assets.js';

export interface UiStreamLimits {
  /** Concurrent streams; one more is answered 503. */
  maxStreams: number;
  /** How often the shared view is recomputed and deltas sent: at most one `services` message per connection per tick. */
  tickMs: number;
  /** A comment line this often keeps proxies and the browser from timing the stream out. */
  pingMs: number;
  /** A reader that takes nothing for this long is ended. */
  stallMs: number;
  /** A stream whose unsent bytes (response and socket buffers) pass this is ended. */
  maxBufferedBytes: number;
  /** More reconciliation events than this in one tick go as one `events` batch. */
  eventsPerMessage: number;
  /** Events (and recoveries) held for one connection between ticks; past it the oldest are dropped. */
  maxPending: number;
}

export const UI_STREAM_LIMITS: UiStreamLimits = {
  maxStreams: 32,
  tickMs: 250,
  pingMs: 15_000,
  stallMs: 30_000,
  maxBufferedBytes: 1024 * 1024,
  eventsPerMessage: 50,
  maxPending: 1_000,
};

export interface UiStreamDeps {
  clock: Clock;
  log: Logger;
  /** Every service's status row (an element of GET /v1/status's `services`). */
  services: () => Promise<Array<{ name: string }>>;
  /** GET /v1/nodes's `nodes`. */
  nodes: () => unknown[];
  /** GET /v1/servers's `servers`. */
  servers: () => Promise<unknown[]>;
  events: EventLog;
  store: Store;
  recoveries?: RecoveryFeed;
  limits?: Partial<UiStreamLimits>;
}

/** One computation of what every stream shows: service rows by name (as JSON text), and the node and server lists. */
interface View {
  at: number;
  services: Map<string, string>;
  nodes: string;
  servers: string;
}

interface Conn {
  res: ServerResponse;
  writer: StreamWriter;
  /** What this connection was last sent. */
  sent: View;
  busy: boolean;
  events: EventRecord[];
  recoveries: Recovery[];
  dropped: number;
  unsubscribe: () => void;
}

/** One Server-Sent Events message (the data is one line of JSON). */
export function sse(event: string, json: string): string {
  return `event: ${event}\ndata: ${json}\n\n`;
}

/**
 * The dashboard's live stream, GET /ui/stream (SPEC §6): a `snapshot`, then deltas. The view is
 * computed once per tick for all streams; each stream is sent what changed since what it was last
 * sent (services whose row changed, removed ones; the node and server lists when they changed),
 * the reconciliation events and recoveries of the tick, and a ping comment now and then. A stream
 * still writing its last message skips a tick and gets the sum of the changes on the next: a slow
 * reader costs one view, never a queue. Bounded: maxStreams streams, a reader that takes nothing
 * for stallMs or lets maxBufferedBytes pile up is ended; close() ends every stream.
 */
export class UiStreams {
  private readonly conns = new Set<Conn>();
  private readonly limits: UiStreamLimits;
  private reserved = 0;
  private tickTimer: TimerHandle | null = null;
  private pingTimer: TimerHandle | null = null;
  private latest: View | null = null;
  private computing: Promise<View> | null = null;
  private closed = false;

  constructor(private readonly deps: UiStreamDeps) {
    this.limits = { ...UI_STREAM_LIMITS, ...deps.limits };
  }

  /** Streams open now. */
  get size(): number {
    return this.conns.size;
  }

  /** Serves one stream: answers 503 beyond the cap; resolves once the snapshot is written (the stream goes on). */
  async open(_req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.closed) throw HttpError.of('ORCA_NOT_LEADER', 'the server is stopping');
    if (this.conns.size + this.reserved >= this.limits.maxStreams) {
      throw new HttpError(503, 'ORCA_USAGE', `too many dashboard streams open (${this.limits.maxStreams}): close a dashboard tab and retry`);
    }
    this.reserved++;
    const pendingEvents: EventRecord[] = [];
    const pendingRecoveries: Recovery[] = [];
    let conn: Conn | null = null;
    const onEvent = (e: EventRecord) => (conn ? this.hold(conn, conn.events, e) : pendingEvents.push(e));
    const onRecovery = (r: Recovery) => (conn ? this.hold(conn, conn.recoveries, r) : pendingRecoveries.push(r));
    const unfollow = this.deps.events.follow(onEvent);
    const unrecover = this.deps.recoveries?.subscribe(onRecovery) ?? (() => undefined);
    const unsubscribe = () => {
      unfollow();
      unrecover();
    };
    let view: View;
    let past: EventRecord[];
    try {
      view = await this.view();
      await this.deps.events.drain();
      past = await this.deps.store.listEvents({ limit: 200 });
    } catch (err) {
      unsubscribe();
      throw err;
    } finally {
      this.reserved--;
    }
    if (res.destroyed || this.closed) {
      unsubscribe();
      if (!res.destroyed) res.destroy();
      return;
    }
    res.writeHead(200, { ...UI_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', 'x-accel-buffering': 'no' });
    res.flushHeaders();
    const seen = new Set(past.map((e) => JSON.stringify(e)));
    const c: Conn = {
      res,
      writer: new StreamWriter(res, this.deps.clock, this.limits.stallMs),
      sent: view,
      busy: true,
      events: pendingEvents.filter((e) => !seen.delete(JSON.stringify(e))),
      recoveries: [],
      dropped: 0,
      unsubscribe,
    };
    conn = c;
    this.conns.add(c);
    res.once('close', () => this.drop(c));
    const recoveries = this.deps.recoveries?.list() ?? [];
    const snapshot = `{"now":${this.deps.clock.now()},"services":[${[...view.services.values()].join(',')}],"nodes":${view.nodes},"servers":${view.servers},"events":${JSON.stringify(past)},"recoveries":${JSON.stringify(recoveries)}}`;
    // A recovery that came while the snapshot was read is in the list already.
    c.recoveries = pendingRecoveries.filter((r) => !recoveries.includes(r));
    this.schedule();
    const ok = await c.writer.write(sse('snapshot', snapshot));
    c.busy = false;
    if (!ok) this.end(c);
  }

  /** Ends every stream and stops the timers; later opens are refused. */
  close(): void {
    this.closed = true;
    for (const c of [...this.conns]) this.end(c);
    this.stopTimers();
  }

  private hold<T>(c: Conn, list: T[], item: T): void {
    list.push(item);
    if (list.length > this.limits.maxPending) {
      list.shift();
      c.dropped++;
    }
  }

  /** The shared view: the latest if computed within this tick, else one computation for every caller. */
  private view(): Promise<View> {
    const latest = this.latest;
    if (latest && this.deps.clock.now() - latest.at < this.limits.tickMs) return Promise.resolve(latest);
    this.computing ??= this.compute().finally(() => (this.computing = null));
    return this.computing;
  }

  private async compute(): Promise<View> {
    const at = this.deps.clock.now();
    const [rows, servers] = await Promise.all([
      this.deps.services(),
      this.deps.servers().catch((err: unknown) => {
        // The member list lives in the store (etcd): keep showing the last one while it cannot be read.
        this.deps.log.debug({ err }, 'dashboard: could not list the servers');
        return null;
      }),
    ]);
    const services = new Map<string, string>();
    for (const s of rows) services.set(s.name, JSON.stringify(s));
    const view: View = { at, services, nodes: JSON.stringify(this.deps.nodes()), servers: servers ? JSON.stringify(servers) : (this.latest?.servers ?? '[]') };
    this.latest = view;
    return view;
  }

  private schedule(): void {
    if (this.closed || this.conns.size === 0) return;
    this.tickTimer ??= this.deps.clock.setTimeout(() => void this.tick(), this.limits.tickMs);
    this.pingTimer ??= this.deps.clock.setTimeout(() => this.ping(), this.limits.pingMs);
  }

  private stopTimers(): void {
    if (this.tickTimer) this.deps.clock.clearTimeout(this.tickTimer);
    if (this.pingTimer) this.deps.clock.clearTimeout(this.pingTimer);
    this.tickTimer = null;
    this.pingTimer = null;
  }

  private async tick(): Promise<void> {
    try {
      const view = await this.view();
      for (const c of this.conns) void this.send(c, view);
    } catch (err) {
      this.deps.log.warn({ err }, 'dashboard: could not compute the status');
    } finally {
      this.tickTimer = null;
      this.schedule();
    }
  }

  private ping(): void {
    this.pingTimer = null;
    for (const c of this.conns) if (!c.busy) void this.write(c, ': ping\n\n');
    this.schedule();
  }

  /** What changed for this connection since its last send, as one write. */
  private async send(c: Conn, view: View): Promise<void> {
    if (c.busy) return;
    const out: string[] = [];
    const changed: string[] = [];
    for (const [name, json] of view.services) if (c.sent.services.get(name) !== json) changed.push(json);
    const removed = [...c.sent.services.keys()].filter((name) => !view.services.has(name));
    if (changed.length > 0 || removed.length > 0) out.push(sse('services', `{"changed":[${changed.join(',')}],"removed":${JSON.stringify(removed)}}`));
    if (view.nodes !== c.sent.nodes) out.push(sse('nodes', `{"nodes":${view.nodes}}`));
    if (view.servers !== c.sent.servers) out.push(sse('servers', `{"servers":${view.servers}}`));
    c.sent = view;
    const events = c.events.splice(0);
    if (events.length > this.limits.eventsPerMessage || c.dropped > 0) {
      out.push(sse('events', JSON.stringify({ events, ...(c.dropped > 0 ? { dropped: c.dropped } : {}) })));
      c.dropped = 0;
    } else for (const e of events) out.push(sse('event', JSON.stringify(e)));
    for (const r of c.recoveries.splice(0)) out.push(sse('recovery', JSON.stringify(r)));
    if (out.length > 0) await this.write(c, out.join(''));
  }

  private async write(c: Conn, text: string): Promise<void> {
    const socket = c.res.socket;
    if (c.res.writableLength + (socket?.writableLength ?? 0) > this.limits.maxBufferedBytes) {
      this.deps.log.info({ remote: socket?.remoteAddress }, 'dashboard stream ended: its reader fell too far behind');
      this.end(c);
      return;
    }
    c.busy = true;
    const ok = await c.writer.write(text);
    c.busy = false;
    if (!ok) {
      if (c.writer.stalled) this.deps.log.info({ remote: socket?.remoteAddress, stallSecs: this.limits.stallMs / 1000 }, 'dashboard stream ended: its reader took nothing');
      this.end(c);
    }
  }

  /** Ends a stream now: a reader that fell behind or stalled may never take a polite end. */
  private end(c: Conn): void {
    this.drop(c);
    c.writer.finish();
    c.res.destroy();
  }

  private drop(c: Conn): void {
    if (!this.conns.delete(c)) return;
    c.unsubscribe();
    if (this.conns.size === 0) this.stopTimers();
  }
}
