import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { rm } from 'node:fs/promises';

/**
 * A unix-socket relay to the Docker daemon that a test can take down and bring back: to the
 * server behind it, that is the daemon going away (calls fail, the event stream breaks) and
 * coming back, while the shared daemon itself keeps running for everyone else.
 */
export class DockerRelay {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();

  constructor(
    readonly path: string,
    private readonly target = '/var/run/docker.sock',
  ) {}

  async up(): Promise<void> {
    await rm(this.path, { force: true });
    const server = createServer((client) => {
      const upstream = createConnection(this.target);
      this.sockets.add(client).add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      this.pipe(client, upstream);
    });
    await new Promise<void>((resolve) => server.listen(this.path, resolve));
    this.server = server;
  }

  /** Moves the bytes of one connection both ways, with backpressure; a subclass may watch them. */
  protected pipe(client: Socket, upstream: Socket): void {
    client.pipe(upstream).pipe(client);
  }

  get dockerHost(): string {
    return `unix://${this.path}`;
  }

  /** Refuses new connections and cuts every open one (streams included). */
  async down(): Promise<void> {
    const s = this.server;
    this.server = null;
    for (const sock of this.sockets) sock.destroy();
    this.sockets.clear();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    await rm(this.path, { force: true });
  }
}
