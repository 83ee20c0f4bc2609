import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseListen } from './config.js';
import { parseEdgeConfig, type EdgeFlags } from './edge-config.js';
import { LETS_ENCRYPT_DIRECTORY } from './acme.js';

const NAMES = { proxyListenTls: '--proxy-listen-tls', acmeDirectory: '--acme-directory', acmeEmail: '--acme-email', acmeCaFile: '--acme-ca-file', acmeRetrySecs: '--acme-retry-secs' };
let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'orca-edge-config-'));
  await writeFile(join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
  await writeFile(join(dir, 'not.pem'), 'hello');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function parse(flags: EdgeFlags) {
  const errors: string[] = [];
  const config = await parseEdgeConfig(flags, NAMES, parseListen, errors);
  return { config, errors };
}

describe('parseEdgeConfig (--proxy-listen-tls, --acme-*)', () => {
  it('defaults: no TLS listener, Let’s Encrypt production, hours of backoff', async () => {
    const { config, errors } = await parse({});
    expect(errors).toEqual([]);
    expect(config).toEqual({ acme: { directory: LETS_ENCRYPT_DIRECTORY } });
  });

  it('takes every setting', async () => {
    const { config, errors } = await parse({ proxyListenTls: '0.0.0.0:443', acmeDirectory: 'https://127.0.0.1:14000/dir', acmeEmail: 'ops@example.com', acmeCaFile: join(dir, 'ca.pem'), acmeRetrySecs: '2' });
    expect(errors).toEqual([]);
    expect(config.proxyListenTls).toEqual({ host: '0.0.0.0', port: 443 });
    expect(config.acme).toMatchObject({ directory: 'https://127.0.0.1:14000/dir', email: 'ops@example.com', retry: { initialMs: 2000, maxMs: 8000, factor: 2 } });
    expect(config.acme.caPem).toContain('BEGIN CERTIFICATE');
  });

  it('refuses what is wrong, naming the flag', async () => {
    const { errors } = await parse({ proxyListenTls: 'nowhere', acmeDirectory: 'ftp://x', acmeEmail: 'not an email', acmeCaFile: join(dir, 'not.pem'), acmeRetrySecs: '0' });
    expect(errors).toHaveLength(5);
    expect(errors[0]).toMatch(/^--proxy-listen-tls/);
    expect(errors[1]).toBe('--acme-directory: "ftp://x" must be the https:// URL of an ACME directory');
    expect(errors[2]).toBe('--acme-email: "not an email" must be an e-mail address');
    expect(errors[3]).toMatch(/^--acme-ca-file: .*not\.pem holds no PEM certificate$/);
    expect(errors[4]).toBe('--acme-retry-secs: "0" must be seconds from 0.05 to 86400');
    const missing = await parse({ acmeCaFile: join(dir, 'missing.pem') });
    expect(missing.errors[0]).toMatch(/^--acme-ca-file: cannot read .*missing\.pem: ENOENT$/);
  });
});
