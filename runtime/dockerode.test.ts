import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DOCKERODE_SESSION_PATH, Dockerode, MODEM_SSH_PATH } from './dockerode.js';

const require = createRequire(import.meta.url);
const loaded = (pkg: string) => Object.keys(require.cache).some((p) => p.includes(`/node_modules/${pkg}/`));

describe('dockerode without ssh2 and gRPC until they are used', () => {
  it('loads dockerode and docker-modem but not ssh2 (a 16 MiB WebAssembly memory) nor gRPC', () => {
    expect(typeof Dockerode).toBe('function');
    expect(loaded('docker-modem')).toBe(true);
    expect(loaded('ssh2')).toBe(false);
    expect(loaded('@grpc/grpc-js')).toBe(false);
    expect(loaded('protobufjs')).toBe(false);
    expect(require.cache[MODEM_SSH_PATH]?.exports.name).toBe('deferredModemSsh');
    expect(require.cache[DOCKERODE_SESSION_PATH]?.exports.name).toBe('deferredWithSession');
  });

  it('a Docker host over ssh:// still goes through ssh2, loaded on first use', async () => {
    // An SSH "server" that says nothing useful and hangs up: ssh2 must be what connects to it.
    let connections = 0;
    const server = createServer((sock) => {
      connections++;
      sock.end('not ssh\r\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      const docker = new Dockerode({ protocol: 'ssh', host: '127.0.0.1', port, username: 'nobody' } as ConstructorParameters<typeof Dockerode>[0]);
      await expect(docker.ping()).rejects.toThrow();
      expect(connections).toBe(1);
      expect(loaded('ssh2')).toBe(true);
    } finally {
      server.close();
    }
  });

  it('a BuildKit build (version "2") still opens a session through gRPC, loaded on first use', async () => {
    // A "daemon" on a unix socket that answers the session request with an error: the
    // session module (and gRPC) must have been loaded and called to get there.
    const dir = await mkdtemp(join(tmpdir(), 'orca-dockerode-'));
    const socketPath = join(dir, 'docker.sock');
    const paths: string[] = [];
    const server = createServer((sock) => {
      sock.once('data', (d) => {
        paths.push(d.toString('latin1').split(' ')[1] ?? '');
        sock.end('HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{"message":"no"}\n');
      });
    });
    await new Promise<void>((r) => server.listen(socketPath, r));
    try {
      const docker = new Dockerode({ socketPath });
      await expect(docker.buildImage({ context: dir, src: [] }, { t: 'x', version: '2' } as never)).rejects.toThrow();
      expect(paths.some((p) => p.includes('/session'))).toBe(true);
      expect(loaded('@grpc/grpc-js')).toBe(true);
    } finally {
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
