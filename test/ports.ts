/**
 * Free TCP ports on 127.0.0.1 for tests and benches that start other programs (etcd, pebble,
 * a second proxy) on ports of their own.
 */
import { createServer, type AddressInfo, type Server } from 'node:net';

/**
 * `count` distinct free ports: all are bound at once before any is released, because the kernel
 * may hand the port it just freed to the next bind(0) — two ports taken one after the other can
 * be the same one (an etcd cluster was once planned with two members on one peer port).
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const s = createServer();
      servers.push(s);
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve());
      });
    }
    return servers.map((s) => (s.address() as AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((r) => (s.listening ? s.close(() => r()) : r()))));
  }
}

/** One free port on 127.0.0.1 (bound, read, released). */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port!;
}
