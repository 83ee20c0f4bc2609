import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { TEST_IMAGE } from '../images.js';
import { cleanup, cli, startServer, stopServer, testEnv, type ServerProcess } from './harness.js';
import { httpClient } from './http-client.js';

const MANIFEST = `[[service]]
name = "six"
image = "${TEST_IMAGE}"
command = ["sh", "-c", "mkdir -p /tmp/www && echo six > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www"]
replicas = 1
port = 80
stop_grace_secs = 0.5

[service.route]
host = "six.localhost"

[service.readiness]
path = "/"
interval_secs = 0.2
timeout_secs = 0.5
failure_threshold = 1
initial_delay_secs = 0
`;

describe('IPv6: a server advertising ::1', () => {
  let env: { cluster: string; dataDir: string };
  let server: ServerProcess | undefined;
  let run: ReturnType<typeof cli>;

  beforeAll(async () => {
    env = await testEnv('ipv6');
    server = await startServer({ ...env, extra: ['--advertise', '::1', '--watchdog-interval', '60'] });
    run = cli(server, env.dataDir);
  });

  afterAll(async () => {
    await stopServer(server);
    await cleanup(env.cluster, env.dataDir);
  });

  it('publishes on [::1], probes it, routes to it, and shows the bracketed address', async () => {
    const file = join(env.dataDir, 'six.toml');
    await writeFile(file, MANIFEST);
    const applied = await run(['apply', '-f', file, '--wait', '--timeout', '60']);
    expect(applied.code, applied.stderr + server!.logs().slice(-3000)).toBe(0);
    const st = JSON.parse((await run(['status', 'six', '-o', 'json'])).stdout) as { services: Array<{ instances: Array<{ address: string | null; ready: boolean }> }> };
    const inst = st.services[0]!.instances[0]!;
    expect(inst.ready).toBe(true);
    expect(inst.address).toMatch(/^\[::1\]:\d{1,5}$/);
    const http = httpClient(server!.proxy!);
    try {
      const r = await http.get('six.localhost');
      expect(r).toEqual({ status: 200, body: 'six\n' });
    } finally {
      http.close();
    }
    const text = (await run(['status', 'six'])).stdout;
    expect(text).toContain('six');
  });
});
