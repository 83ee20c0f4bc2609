import type { Clock, TimerHandle } from '../core/clock.js';

/**
 * A message channel between an agent and the server: a WebSocket for a remote agent, an
 * in-memory pair for the embedded one. Both carry the same JSON text, so the embedded agent
 * runs exactly the protocol a remote one does.
 */
export interface Channel {
  /** Sends one message; silently dropped once the channel is closed. */
  send(text: string): void;
  /** Closes both ends; onClose fires once on each. Idempotent. */
  close(code?: number, reason?: string): void;
  onMessage(fn: (text: string) => void): void;
  onClose(fn: (code: number, reason: string) => void): void;
}

class MemoryEnd implements Channel {
  peer!: MemoryEnd;
  private closed = false;
  private readonly messageFns: Array<(t: string) => void> = [];
  private readonly closeFns: Array<(c: number, r: string) => void> = [];

  send(text: string): void {
    if (this.closed) return;
    const peer = this.peer;
    // Asynchronous, like a socket: the sender never re-enters the receiver. A message sent before
    // a close arrives before it (as on a WebSocket: an error message then the close code).
    setImmediate(() => {
      for (const fn of peer.messageFns) fn(text);
    });
  }
  close(code = 1000, reason = ''): void {
    if (this.closed) return;
    this.closed = true;
    setImmediate(() => {
      for (const fn of this.closeFns) fn(code, reason);
    });
    this.peer.close(code, reason);
  }
  onMessage(fn: (text: string) => void): void {
    this.messageFns.push(fn);
  }
  onClose(fn: (code: number, reason: string) => void): void {
    this.closeFns.push(fn);
  }
}

/** Two connected in-memory ends. */
export function memoryChannelPair(): [Channel, Channel] {
  const a = new MemoryEnd();
  const b = new MemoryEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/**
 * WebSocket-level liveness on top of the protocol's heartbeats: a ping every intervalMs, and
 * a socket that did not answer the previous ping is terminated (a half-open TCP session can
 * look alive for minutes otherwise).
 */
export function keepAlive(ws: import('ws').WebSocket, clock: Clock, intervalMs: number): void {
  let alive = true;
  let timer: TimerHandle | null = null;
  ws.on('pong', () => (alive = true));
  const tick = () => {
    if (ws.readyState !== ws.OPEN) return;
    if (!alive) {
      ws.terminate();
      return;
    }
    alive = false;
    ws.ping();
    timer = clock.setTimeout(tick, intervalMs);
  };
  timer = clock.setTimeout(tick, intervalMs);
  ws.on('close', () => {
    if (timer) clock.clearTimeout(timer);
  });
}

/**
 * A Channel over a `ws` WebSocket (either side). A socket error (a frame over maxPayload, a
 * reset) ends the channel through its close event, never the process.
 */
export function wsChannel(ws: import('ws').WebSocket): Channel {
  ws.on('error', () => undefined);
  return {
    send: (text) => {
      if (ws.readyState === ws.OPEN) ws.send(text);
    },
    close: (code = 1000, reason = '') => {
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(code, reason);
      else ws.terminate();
    },
    onMessage: (fn) => ws.on('message', (data) => fn(data.toString())),
    onClose: (fn) => ws.on('close', (code, reason) => fn(code, reason.toString())),
  };
}
