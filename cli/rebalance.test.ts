import { afterEach, describe, expect, it, vi } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { rebalance } from './commands/rebalance.js';
import { CliError, EXIT } from './exit.js';

/** `orca rebalance` against a server that answers POST /v1/rebalance with `status` and `body`. */
const servers: Server[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function serve(status: number, body: string, seen: string[] = []): Promise<string> {
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      seen.push(`${req.method} ${req.url} ${text}`);
      res.writeHead(status, { 'content-type': status === 200 ? 'application/x-ndjson' : 'application/json' });
      res.end(body);
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function runIt(api: string, service: string | undefined, output = 'table'): Promise<{ stdout: string; error: CliError | null }> {
  let stdout = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += chunk.toString();
    return true;
  });
  let error: CliError | null = null;
  try {
    await rebalance({ api, token: 't' }, service, { output });
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    error = err;
  } finally {
    vi.restoreAllMocks();
  }
  return { stdout, error };
}

const lines = (...xs: unknown[]) => xs.map((x) => JSON.stringify(x)).join('\n') + '\n';
const move = { service: 'web', slot: 1, from: 'n1', to: 'n2' };

describe('orca rebalance (CLI)', () => {
  it('says each move as it starts and ends, then that all is spread; asks for the service named', async () => {
    const seen: string[] = [];
    const api = await serve(200, lines({ event: 'moving', ...move }, { event: 'moved', ...move, instance: 'web-1-1-abcd', readyMs: 1234, goneMs: 456 }, { event: 'done', moves: 1, stay: [] }), seen);
    const r = await runIt(api, 'web');
    expect(r.error).toBeNull();
    expect(r.stdout).toBe(
      'moving web/1 from n1 to n2 …\nmoved web/1 from n1 to n2: web-1-1-abcd ready in 1.2 s, the old one gone 0.5 s later\nrebalanced: 1 replica moved; service "web" is spread\n',
    );
    expect(seen).toEqual(['POST /v1/rebalance {"service":"web"}']);
  });

  it('nothing to do: says so (exit 0), with the services whose slots stay for their volumes', async () => {
    const api = await serve(200, lines({ event: 'done', moves: 0, stay: ['db'] }));
    const r = await runIt(api, undefined);
    expect(r).toEqual({ stdout: 'nothing to rebalance: every service is spread\nslots with volumes stay where their data is: db\n', error: null });
    const json = await runIt(api, undefined, 'json');
    expect(json.error).toBeNull();
    expect(JSON.parse(json.stdout)).toEqual({ moved: [], failed: null, stay: ['db'] });
  });

  it('a failed move is exit 1 with the reason; -o json still prints the document', async () => {
    const body = lines({ event: 'moving', ...move }, { event: 'failed', ...move, reason: 'its new instance on n2 was not ready within 70 s; put back on n1', movedBack: true });
    const api = await serve(200, body);
    const r = await runIt(api, undefined);
    expect(r.stdout).toBe('moving web/1 from n1 to n2 …\n');
    expect(r.error?.exitCode).toBe(EXIT.failed);
    expect(r.error?.message).toBe('web/1 could not move from n1 to n2: its new instance on n2 was not ready within 70 s; put back on n1');
    const json = await runIt(api, undefined, 'json');
    expect(JSON.parse(json.stdout)).toEqual({ moved: [], failed: { ...move, reason: 'its new instance on n2 was not ready within 70 s; put back on n1', movedBack: true }, stay: [] });
    expect(json.error?.exitCode).toBe(EXIT.failed);
  });

  it('an unknown service (404) is exit 1 with the server’s words; a conflict too', async () => {
    const r = await runIt(await serve(404, JSON.stringify({ error: 'ORCA_NOT_FOUND', message: 'service "nope" not found' })), 'nope');
    expect(r).toMatchObject({ stdout: '', error: { exitCode: EXIT.failed, message: 'service "nope" not found' } });
    const c = await runIt(await serve(409, JSON.stringify({ error: 'ORCA_CONFLICT', message: 'a rebalance is already running' })), undefined);
    expect(c.error?.exitCode).toBe(EXIT.failed);
  });

  it('a stream that ends early, says the server failed, stopped short, or is not JSON Lines: exit 1, never a crash', async () => {
    const cases: Array<[string, RegExp]> = [
      [lines({ event: 'moving', ...move }), /without saying it was done/],
      [lines({ event: 'error', message: 'store unavailable' }), /the rebalance failed on the server: store unavailable/],
      [lines({ event: 'done', moves: 3, stay: [], stopped: 'stopped after 3 moves' }), /the rebalance stopped: stopped after 3 moves/],
      ['not json\n', /not JSON/],
      ['x'.repeat(70 * 1024), /longer than 65536 characters/],
    ];
    for (const [body, message] of cases) {
      const r = await runIt(await serve(200, body), undefined);
      expect(r.error?.exitCode, body.slice(0, 40)).toBe(EXIT.failed);
      expect(r.error?.message).toMatch(message);
    }
  });
});
