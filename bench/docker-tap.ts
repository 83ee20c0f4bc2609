/**
 * A relay Unix socket in front of the Docker daemon that counts the API calls going through it:
 * point a process at it with DOCKER_HOST=unix://<path> and read, per call kind (method and path
 * pattern: "POST /containers/create", "GET /containers/{id}/json", "GET /networks/{id}" …), how
 * many calls were made and their total time to the response head (request line seen → first
 * response byte; streams such as /events count once, their open).
 *
 * HTTP/1.1 without pipelining (what Docker clients speak): on one connection a request follows
 * the previous response, so a client chunk that starts with a request line after the previous
 * response began is the next call. Bytes are relayed unchanged.
 */
import type { Socket } from 'node:net';
import { DockerRelay } from '../test/e2e/docker-proxy.js';

export interface CallStats {
  calls: number;
  /** Sum of times to the response head, ms. */
  totalMs: number;
}

const REQUEST_LINE = /^(GET|POST|PUT|DELETE|HEAD) (\S+) HTTP\/1\.[01]\r\n/;
/** Path segments kept as they are; anything else is an id or a name. */
const WORDS = new Set([
  'containers', 'create', 'json', 'start', 'stop', 'restart', 'kill', 'wait', 'logs', 'attach', 'exec', 'resize', 'top', 'changes', 'export', 'stats', 'update', 'rename', 'pause', 'unpause', 'prune', 'archive',
  'networks', 'connect', 'disconnect', 'images', 'build', 'history', 'tag', 'push', 'volumes', 'events', 'version', 'info', '_ping', 'system', 'df',
]);

/** "GET /v1.41/containers/3f…/json?all=1" → "GET /containers/{id}/json". */
export function callKind(method: string, target: string): string {
  const path = target.split('?')[0] ?? '';
  const segs = path.split('/').filter((s) => s !== '');
  if (segs[0] && /^v\d+\.\d+$/.test(segs[0])) segs.shift();
  const out: string[] = [];
  for (const s of segs) {
    const word = WORDS.has(s) ? s : '{id}';
    if (word === '{id}' && out[out.length - 1] === '{id}') continue; // image names have slashes
    out.push(word);
  }
  return `${method} /${out.join('/')}`;
}

/** What a call kind is, in words (the common ones). */
export function callName(kind: string): string {
  const names: Record<string, string> = {
    'POST /containers/create': 'create container',
    'POST /containers/{id}/start': 'start container',
    'GET /containers/{id}/json': 'inspect container',
    'GET /containers/json': 'list containers',
    'GET /networks/{id}': 'inspect network',
    'GET /networks': 'list networks',
    'POST /networks/create': 'create network',
    'GET /images/{id}/json': 'inspect image',
    'DELETE /containers/{id}': 'remove container',
    'POST /containers/{id}/stop': 'stop container',
    'POST /containers/{id}/kill': 'kill container',
    'POST /containers/{id}/wait': 'wait container',
    'GET /events': 'events stream',
    'GET /_ping': 'ping',
    'HEAD /_ping': 'ping',
    'GET /version': 'version',
  };
  return names[kind] ?? kind;
}

/** A DockerRelay (test/e2e/docker-proxy.ts) that counts the calls it relays. */
export class DockerTap extends DockerRelay {
  private stats = new Map<string, CallStats>();

  /** The counts so far, and starts counting afresh. */
  take(): Map<string, CallStats> {
    const s = this.stats;
    this.stats = new Map();
    return s;
  }

  protected override pipe(client: Socket, upstream: Socket): void {
    // The call under way on this connection: its kind and when its request line came.
    let current: { kind: string; at: number } | null = null;
    let answered = true;
    client.on('data', (chunk: Buffer) => {
      if (answered) {
        const m = REQUEST_LINE.exec(chunk.subarray(0, 2048).toString('latin1'));
        if (m) {
          current = { kind: callKind(m[1] as string, m[2] as string), at: performance.now() };
          answered = false;
        }
      }
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on('drain', () => client.resume());
    upstream.on('data', (chunk: Buffer) => {
      if (!answered && current) {
        answered = true;
        const s = this.stats.get(current.kind) ?? { calls: 0, totalMs: 0 };
        s.calls++;
        s.totalMs += performance.now() - current.at;
        this.stats.set(current.kind, s);
      }
      if (!client.write(chunk)) upstream.pause();
    });
    client.on('drain', () => upstream.resume());
  }
}
