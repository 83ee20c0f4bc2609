/**
 * An API on a loopback port (port 0) with stand-ins for the control plane and the node registry
 * that record every call: the dashboard's unit tests (server/ui/*.test.ts) check what the API
 * answered and that a refused request reached nothing.
 */
import { request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Writable } from 'node:stream';
import { ManualClock } from '../core/clock.js';
import { ok } from '../core/errors.js';
import { createLogger } from '../core/log.js';
import { memoryStore } from '../store/index.js';
import { createApi } from '../server/api.js';
import type { ControlPlane } from '../server/control-plane.js';
import { EventLog } from '../server/event-log.js';
import type { NodeRegistry } from '../server/node-registry.js';
import type { NodeLink } from '../server/nodes.js';
import { RecoveryFeed } from '../server/recoveries.js';
import type { UiStreamLimits } from '../server/ui/stream.js';
import { makeCa, issueCert } from './certs.js';

export const ADMIN = 'admin-t0k3n-0123456789';

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: () => Record<string, unknown>;
}

/** A service row as GET /v1/status gives it. */
export function aRow(name: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, revision: 1, state: 'healthy', replicas: { desired: 1, running: 1, ready: 1 }, instances: [{ id: `${name}-1-0-aaaa`, node: 'n1', state: 'running', ready: true, restarts: 0, lastExit: null }], ...over };
}

export function aNode(name: string, state = 'ready'): NodeLink {
  return { name, state: () => state, address: () => '127.0.0.1', lastHeartbeat: () => '2026-01-01T00:00:00.000Z', protocol: () => 2, lastReports: () => [] } as unknown as NodeLink;
}

export async function uiApi(o: { tls?: boolean; limits?: Partial<UiStreamLimits> } = {}) {
  const store = memoryStore();
  await store.open();
  let logText = '';
  const log = createLogger({ destination: new Writable({ write: (c, _e, cb) => ((logText += c), cb()) }), pretty: false });
  const clock = new ManualClock(Date.parse('2026-03-01T00:00:00Z'));
  const events = new EventLog(store, log);
  const recoveries = new RecoveryFeed();
  /** What reached the control plane or the registry. */
  const calls: string[] = [];
  const state = { rows: [aRow('web'), aRow('api')] as Array<Record<string, unknown>>, nodes: [aNode('n1')] };
  let unauthorized = 0;
  const control = {
    statusFromReports: async () => state.rows,
    nodeLinks: () => state.nodes,
    lastReports: () => [],
    apply: async () => {
      calls.push('apply');
      return ok([{ service: 'web', result: 'configured' }]);
    },
    rollback: async (name: string, to?: number) => {
      calls.push(`rollback ${name}${to ? ` ${to}` : ''}`);
      return ok({ service: name, revision: 2 });
    },
    delete: async (names: string[]) => {
      calls.push(`delete ${names.join(',')}`);
      return ok(names);
    },
  } as unknown as ControlPlane;
  const nodes = {
    setDrained: async (name: string, drained: boolean) => {
      calls.push(`${drained ? 'drain' : 'uncordon'} ${name}`);
      return { name, state: () => (drained ? 'draining' : 'ready') };
    },
  } as unknown as NodeRegistry;
  let tls: { keyPem: string; chainPem: string; caPem: string } | undefined;
  if (o.tls) {
    const ca = await makeCa();
    const cert = await issueCert(ca, ['127.0.0.1']);
    tls = { keyPem: cert.keyPem, chainPem: cert.certPem + ca.certPem, caPem: ca.certPem };
  }
  const server: Server = createApi({
    token: ADMIN,
    log,
    control,
    store,
    events,
    nodes,
    isReady: () => true,
    clock,
    recoveries,
    onUnauthorized: () => unauthorized++,
    servers: async () => [{ name: 'n1', address: 'http://127.0.0.1:6880', role: 'leader' as const, since: '2026-01-01T00:00:00.000Z' }],
    ...(tls ? { tls: { keyPem: tls.keyPem, chainPem: tls.chainPem } } : {}),
    ...(o.limits ? { uiLimits: o.limits } : {}),
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const origin = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;

  /** One request with exactly these headers (no defaults but Host) and body. */
  const call = (method: string, path: string, headers: Record<string, string> = {}, body?: string | Buffer) =>
    new Promise<Answer>((resolve, reject) => {
      const opts = { host: '127.0.0.1', port, method, path, agent: false as const, headers: { ...headers, ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}) }, ...(tls ? { ca: tls.caPem } : {}) };
      const req = (tls ? httpsRequest : httpRequest)(opts, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) as Record<string, unknown> }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  /** Signs in with the admin token; returns the Cookie header to send. */
  const login = async (): Promise<string> => {
    const r = await call('POST', '/ui/login', { 'content-type': 'application/json', origin }, JSON.stringify({ token: ADMIN }));
    if (r.status !== 200) throw new Error(`sign-in failed: ${r.status} ${r.text}`);
    const set = r.headers['set-cookie']?.[0] ?? '';
    return set.split(';')[0] ?? '';
  };
  const close = () => {
    server.closeAllConnections();
    server.close();
  };
  return { server, port, origin, clock, store, events, recoveries, calls, state, call, login, close, logs: () => logText, unauthorized: () => unauthorized, tlsCa: tls?.caPem };
}
