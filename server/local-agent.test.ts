import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock, flushMicrotasks } from '../core/clock.js';
import { isOrcaError } from '../core/errors.js';
import { silentLogger } from '../core/log.js';
import { FakeRuntime } from '../runtime/fake-runtime.js';
import { instanceLabels } from '../runtime/labels.js';
import { memoryStore } from '../store/index.js';
import { loadServerConfig } from './config.js';
import { startServer, type EmbedContext, type LocalAgent, type RunningServer } from './server.js';

/**
 * The seam through which a host embeds this node's agent (deps.localAgent): the server starts it,
 * serves nothing through the proxy until it has adopted, and stops it when it stops. The real
 * agent behind it is tested in hosts/.
 */

const running: RunningServer[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of running.splice(0)) await s.stop();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function boot(localAgent?: LocalAgent): Promise<RunningServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'orca-local-agent-'));
  dirs.push(dataDir);
  const cfg = await loadServerConfig({ dataDir, nodeName: 'n1', apiListen: '127.0.0.1:0', proxyListen: '127.0.0.1:0', clusterId: 'unit' });
  if (!cfg.ok) throw new Error(cfg.errors.join());
  const server = await startServer(cfg.value, {
    log: silentLogger(),
    clock: new ManualClock(),
    openStore: async () => {
      const s = memoryStore();
      await s.open();
      return s;
    },
    ...(localAgent ? { localAgent } : {}),
  });
  running.push(server);
  return server;
}

/** A stand-in agent: ready when the test says so; remembers what the server did with it. */
function stubAgent(runtime = new FakeRuntime(new ManualClock())) {
  let adopt!: () => void;
  const seen = { started: false, ctx: null as EmbedContext | null, abortedAtStop: null as boolean | null, closed: false };
  const localAgent: LocalAgent = {
    runtime,
    // One server on its embedded store always leads: its agent never dials another.
    dialRemote: () => Promise.reject(new Error('a lone server never dials a leader')),
    start: async (_hub, ctx) => {
      seen.started = true;
      seen.ctx = ctx;
      return {
        ready: new Promise<void>((resolve) => (adopt = resolve)),
        stop: async () => {
          seen.abortedAtStop = ctx.signal.aborted;
        },
        close: async () => {
          seen.closed = true;
        },
      };
    },
  };
  return { localAgent, seen, adopt: () => adopt() };
}

const healthz = async (s: RunningServer) => (await fetch(`${s.apiUrl}/healthz`)).status;

describe('startServer and its embedded agent', () => {
  it('without a local agent, serves as soon as its routes are restored', async () => {
    const server = await boot();
    await server.ready();
    expect(server.proxy()).not.toBeNull();
    expect(await healthz(server)).toBe(200);
  });

  it('the proxy does not listen, and /healthz answers 503, until the embedded agent has adopted', async () => {
    const stub = stubAgent();
    const server = await boot(stub.localAgent);
    expect(stub.seen.started).toBe(true);
    await flushMicrotasks(50);
    expect(server.proxy()).toBeNull();
    expect(await healthz(server)).toBe(503);
    stub.adopt();
    await server.ready();
    expect(server.proxy()).not.toBeNull();
    expect(await healthz(server)).toBe(200);
  });

  it('stopping the server aborts the agent, waits for it, and closes it', async () => {
    const stub = stubAgent();
    const server = await boot(stub.localAgent);
    stub.adopt();
    await server.ready();
    expect(stub.seen.ctx?.signal.aborted).toBe(false);
    await running.splice(0)[0]!.stop();
    expect(stub.seen).toMatchObject({ abortedAtStop: true, closed: true });
  });

  it("a fresh data directory over another server's containers refuses before the agent starts", async () => {
    const rt = new FakeRuntime(new ManualClock());
    rt.addImage('img:1', { cmd: ['sleep', '3600'] });
    await rt.create({
      name: 'web-1-0-abcd',
      image: 'img:1',
      env: {},
      hostIp: '127.0.0.1',
      init: true,
      stopGraceSecs: 1,
      labels: instanceLabels({ cluster: 'unit', service: 'web', instance: 'web-1-0-abcd', slot: 0, revision: 1, specHash: 'h', node: 'n1' }),
    });
    const stub = stubAgent(rt);
    const err = await boot(stub.localAgent).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isOrcaError(err) && err.code).toBe('ORCA_CONFLICT');
    expect(stub.seen.started).toBe(false);
  });
});
