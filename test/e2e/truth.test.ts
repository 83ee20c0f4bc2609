import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { OOM_COMMAND, TEST_IMAGE } from '../images.js';
import { cleanup, cli, holdsFor, startServer, stopServer, testEnv, waitFor, type ServerProcess } from './harness.js';
import { httpClient } from './http-client.js';

interface Instance {
  id: string | null;
  state: string;
  ready: boolean;
  containerId: string | null;
  error?: string | null;
}
interface Service {
  name: string;
  state: string;
  reason?: string;
  replicas: { desired: number; running: number; ready: number };
  instances: Instance[];
}

/** What the CLI says is true, on real Docker: readiness, reasons, errors. */
describe('a CLI that tells the truth', () => {
  let env: { cluster: string; dataDir: string };
  let server: ServerProcess | undefined;
  let run: ReturnType<typeof cli>;

  const status = async (name: string): Promise<Service> => {
    const r = await run(['status', name, '-o', 'json']);
    if (r.code !== 0) throw new Error(r.stderr);
    return (JSON.parse(r.stdout) as { services: Service[] }).services[0]!;
  };
  const apply = async (name: string, text: string, extra: string[] = []) => {
    const file = join(env.dataDir, `${name}-${Math.random().toString(36).slice(2)}.toml`);
    await writeFile(file, text);
    return run(['apply', '-f', file, ...extra]);
  };

  beforeAll(async () => {
    env = await testEnv('truth');
    server = await startServer({ ...env, extra: ['--watchdog-interval', '60'] });
    run = cli(server, env.dataDir);
  });
  afterAll(async () => {
    await stopServer(server);
    await cleanup(env.cluster, env.dataDir);
  });

  it('a service whose port nothing listens on is never ready and never routed (Docker’s forwarder accepts anyway)', async () => {
    // The app listens on 80; the manifest says 8081; no readiness probe: the implicit TCP check.
    const r = await apply(
      'wrongport',
      `[[service]]
name = "wrongport"
image = "${TEST_IMAGE}"
command = ["httpd", "-f", "-p", "80", "-h", "/"]
port = 8081
stop_grace_secs = 0.5

[service.route]
host = "wrongport.localhost"
`,
    );
    expect(r.code, r.stderr).toBe(0);
    await waitFor(async () => (await status('wrongport')).instances.some((i) => i.state === 'running'), 20_000, 'instance running');
    const http = httpClient(server!.proxy!);
    try {
      // Several probe intervals (1 s each): it must stay unready the whole time.
      await holdsFor(
        async () => {
          const s = await status('wrongport');
          expect(s.replicas.ready).toBe(0);
          expect(s.state).not.toBe('healthy');
          expect((await http.get('wrongport.localhost')).status).toBe(503);
          return true;
        },
        3_000,
        'unready and unrouted',
        250,
      );
    } finally {
      http.close();
    }
    const events = (await run(['events', '--service', 'wrongport', '-o', 'json'])).stdout;
    expect(events).not.toMatch(/readiness-passed/);
    // Where people look: status SERVICE says why, and what happened lately.
    const s = await status('wrongport');
    expect(s.instances[0]).toMatchObject({ probe: 'nothing listens on port 8081 inside the container (it listens on 80)' });
    const table = await run(['status', 'wrongport']);
    expect(table.stdout).toMatch(/WHY\n.*last readiness check: nothing listens on port 8081 inside the container \(it listens on 80\)/);
    expect(table.stdout).toMatch(/EVENTS\n.*container\.create/);
  });

  it('a missing image shows "image … not found on node n1" in status, without waiting for events', async () => {
    const r = await apply('noimage', `[[service]]\nname = "noimage"\nimage = "orca-test/does-not-exist:7"\n`);
    expect(r.code, r.stderr).toBe(0);
    await waitFor(async () => /not found on node n1/.test((await status('noimage')).reason ?? ''), 10_000, 'the reason in status');
    const s = await status('noimage');
    expect(s.state).not.toBe('healthy');
    expect(s.instances[0]?.error).toMatch(/^image orca-test\/does-not-exist:7 not found on node n1/);
    const table = await run(['status', 'noimage']);
    expect(table.stdout).toMatch(/not found on node n1/);
  });

  it('two services claiming the same route host and path: apply refuses with exit 2 naming both, and stores nothing', async () => {
    const svc = (name: string) => `[[service]]\nname = "${name}"\nimage = "${TEST_IMAGE}"\nport = 80\n\n[service.route]\nhost = "clash.localhost"\n`;
    expect((await apply('clash-a', svc('clash-a'))).code).toBe(0);
    const r = await apply('clash-b', svc('clash-b'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/service "clash-b": route\.host "clash\.localhost" .* claimed by service "clash-a"/);
    expect((await run(['status', 'clash-b'])).code).toBe(1);
  });

  describe('apply --wait succeeds only on a stable service, and fails fast with the reason', () => {
    const timed = async (name: string, body: string, image = TEST_IMAGE) => {
      const t0 = Date.now();
      const r = await apply(name, `[[service]]\nname = "${name}"\nimage = "${image}"\nstop_grace_secs = 0.5\n${body}\n`, ['--wait', '--timeout', '60s']);
      return { ...r, ms: Date.now() - t0 };
    };

    it('a service that exits at once: exit 1, crash-looping, within seconds', async () => {
      const r = await timed('exits', 'command = ["sh", "-c", "exit 3"]');
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stderr).toMatch(/service\/exits is crash-looping: last exit .*code 3/);
      expect(r.ms).toBeLessThan(15_000);
      expect(r.stdout).not.toMatch(/stable for/);
    });

    it('an OOM-killed service: exit 1 with the OOM and the hint', async () => {
      const r = await timed('oomer', `${OOM_COMMAND}\n[service.resources]\nmemory = "8m"`);
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stderr).toMatch(/oomer is crash-looping: .*OOMKilled/);
      expect(r.stderr).toMatch(/raise resources\.memory/);
      expect(r.ms).toBeLessThan(20_000);
    });

    it('a missing image: exit 1 with "image … not found on node n1" within seconds', async () => {
      const r = await timed('missing', '', 'orca-test/not-built:9');
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stderr).toMatch(/service\/missing cannot start: image orca-test\/not-built:9 not found on node n1/);
      expect(r.ms).toBeLessThan(10_000);
    });

    it('a healthy service succeeds after the settle window', async () => {
      const r = await timed('steady', 'replicas = 2\ncommand = ["sleep", "3600"]');
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/service\/steady stable for 2\.0 s/);
    });
  });

  it('orca logs: an unknown service is named as such; a crash-looping one falls back to its last exited instance, saying so on stderr', async () => {
    const unknown = await run(['logs', 'nosuchservice']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/service "nosuchservice" not found/);
    const r = await apply('looper', `[[service]]\nname = "looper"\nimage = "${TEST_IMAGE}"\ncommand = ["sh", "-c", "echo dying words; exit 4"]\n[service.restart]\nbackoff_initial_secs = 30\n`);
    expect(r.code, r.stderr).toBe(0);
    await waitFor(async () => (await status('looper')).state === 'crashloop', 20_000, 'crashloop');
    const logs = await run(['logs', 'looper']);
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout).toContain('dying words');
    expect(logs.stderr).toMatch(/no instance of service "looper" is running; showing the last exited one: looper-/);
  });
});
