/**
 * Debian's pebble (an ACME test CA) and pebble-challtestsrv (its DNS) on loopback, for the tests
 * of HTTPS at the edge. Each start gets its own temporary directory with a throw-away CA and a
 * leaf for pebble's own HTTPS (test/certs.ts), a config pointing HTTP-01 at `httpPort` (the
 * proxy's plain port), and challtestsrv answering every name with 127.0.0.1. pebble can be
 * stopped and started again on the same ports (the same directory URL). scripts/ensure-pebble.sh
 * installs the package when missing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueCert, makeCa } from './certs.js';
import { freePorts } from './ports.js';

export interface Pebble {
  /** The ACME directory URL. */
  directory: string;
  /** The CA file that pebble's HTTPS is signed by (for --acme-ca-file). */
  caFile: string;
  caPem: string;
  /** The issuing root now (new at every pebble start). */
  roots(): Promise<string>;
  /** Stops pebble (SIGKILL); challtestsrv stays. */
  kill(): Promise<void>;
  /** Starts pebble again on the same ports. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export function ensurePebble(): void {
  execFileSync('bash', ['scripts/ensure-pebble.sh'], { stdio: 'inherit' });
}

async function waitPort(port: number, maxMs: number): Promise<void> {
  const until = Date.now() + maxMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listens on 127.0.0.1:${port} after ${maxMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function getText(url: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca, timeout: 5_000 }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: ${res.statusCode}`))));
      })
      .on('error', reject);
  });
}

/** Starts challtestsrv and pebble; `validitySecs` sets the certificates' lifetime (pebble's certificateValidityPeriod). */
export async function startPebble(o: { httpPort: number; validitySecs?: number; log?: (line: string) => void }): Promise<Pebble> {
  const dir = await mkdtemp(join(tmpdir(), 'orca-pebble-'));
  const ca = await makeCa('Orca test CA for pebble HTTPS');
  const leaf = await issueCert(ca, ['localhost', '127.0.0.1']);
  const caFile = join(dir, 'ca.pem');
  await writeFile(caFile, ca.certPem);
  await writeFile(join(dir, 'cert.pem'), leaf.certPem);
  await writeFile(join(dir, 'key.pem'), leaf.keyPem);
  const [acmePort, mgmtPort, dnsPort, challMgmtPort, tlsPort] = (await freePorts(5)) as [number, number, number, number, number];
  await writeFile(
    join(dir, 'pebble.json'),
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${acmePort}`,
        managementListenAddress: `127.0.0.1:${mgmtPort}`,
        certificate: join(dir, 'cert.pem'),
        privateKey: join(dir, 'key.pem'),
        httpPort: o.httpPort,
        tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
        ...(o.validitySecs ? { certificateValidityPeriod: o.validitySecs } : {}),
      },
    }),
  );
  const children = new Set<ChildProcess>();
  const run = (cmd: string, args: string[], env: Record<string, string> = {}): ChildProcess => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    child.once('exit', () => children.delete(child));
    const out = (b: Buffer) => o.log?.(`${cmd}: ${b.toString().trimEnd()}`);
    child.stdout?.on('data', out);
    child.stderr?.on('data', out);
    return child;
  };
  const chall = run('pebble-challtestsrv', ['-dns01', `127.0.0.1:${dnsPort}`, '-http01', '', '-https01', '', '-tlsalpn01', '', '-management', `127.0.0.1:${challMgmtPort}`, '-defaultIPv4', '127.0.0.1', '-defaultIPv6', '']);
  await waitPort(challMgmtPort, 10_000);
  let pebble: ChildProcess | null = null;
  const startPebbleProc = async () => {
    pebble = run('pebble', ['-config', join(dir, 'pebble.json'), '-dnsserver', `127.0.0.1:${dnsPort}`], { PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' });
    await waitPort(acmePort, 15_000);
  };
  const killProc = async (c: ChildProcess | null) => {
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGKILL');
    await gone;
  };
  await startPebbleProc();
  return {
    directory: `https://127.0.0.1:${acmePort}/dir`,
    caFile,
    caPem: ca.certPem,
    roots: async () => (await getText(`https://127.0.0.1:${mgmtPort}/roots/0`, ca.certPem)) + (await getText(`https://127.0.0.1:${mgmtPort}/intermediates/0`, ca.certPem)),
    kill: () => killProc(pebble),
    restart: startPebbleProc,
    stop: async () => {
      await killProc(pebble);
      await killProc(chall);
      for (const c of children) await killProc(c);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
