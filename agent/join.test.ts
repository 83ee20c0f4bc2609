import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { agentAuth, CREDENTIAL_FILE, readBounded, readCredential, writeCredential } from './join.js';
import { formatCredential, formatJoinToken, newSecret, newTokenParts } from '../server/join-tokens.js';
import { ensureClusterTls, serverNames } from '../server/cluster-tls.js';
import { caFingerprint } from '../protocol/tls-trust.js';
import { silentLogger } from '../core/log.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
const tmp = async () => {
  const d = await mkdtemp(join(tmpdir(), 'orca-cred-'));
  dirs.push(d);
  return d;
};

describe('node.credential', () => {
  it('is written 0600 and read back; none is null', async () => {
    const dir = await tmp();
    expect(await readCredential(dir)).toBeNull();
    const cred = { node: 'n2', credential: formatCredential({ node: 'n2', secret: newSecret() }), caHash: 'ab'.repeat(32) };
    await writeCredential(dir, cred);
    expect((await stat(join(dir, CREDENTIAL_FILE))).mode & 0o777).toBe(0o600);
    expect(await readCredential(dir)).toEqual(cred);
  });

  it('refuses a file that is not a credential, without quoting it', async () => {
    const dir = await tmp();
    const secret = newSecret();
    const good = { node: 'n2', credential: formatCredential({ node: 'n2', secret }), caHash: 'ab'.repeat(32) };
    for (const text of ['', 'garbage', JSON.stringify({ ...good, node: 'n3' }), JSON.stringify({ ...good, caHash: 'zz' }), JSON.stringify({ ...good, credential: `x${good.credential}` }), 'x'.repeat(10_000), JSON.stringify([good])]) {
      await writeFile(join(dir, CREDENTIAL_FILE), text);
      const r = readCredential(dir);
      await expect(r, text.slice(0, 30)).rejects.toMatchObject({ code: 'ORCA_USAGE' });
      await r.catch((e: Error) => expect(e.message).not.toContain(secret));
    }
  });

  it('reads token files with a bound (an endless file is not read whole)', async () => {
    await expect(readBounded('/dev/zero')).rejects.toMatchObject({ code: 'ORCA_USAGE' });
    expect(await readBounded(join(await tmp(), 'missing'))).toBeNull();
  });
});

describe('agentAuth over https: the pin is checked once', () => {
  it('exchanges the token after one pin check and dials the session with that CA: no handshake but the ones it needs, none on a redial', async () => {
    const dir = await tmp();
    const names = serverNames({ advertise: '127.0.0.1', apiHost: '127.0.0.1', sans: [] });
    const tls = await ensureClusterTls(dir, { names, clusterId: 'c', commonName: 'n1', nowMs: Date.now() });
    let handshakes = 0; // TLS connections opened (the pin check ends its handshake early)
    const credential = formatCredential({ node: 'n2', secret: newSecret() });
    const server = createServer({ cert: tls.chainPem, key: tls.keyPem }, (req, res) => {
      req.resume();
      req.on('end', () => res.end(JSON.stringify({ credential })));
    });
    server.on('connection', () => handshakes++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const join = new URL(`wss://127.0.0.1:${(server.address() as AddressInfo).port}`);
      const { id, secret } = newTokenParts();
      const auth = agentAuth({ join, dataDir: dir, node: 'n2', joinToken: formatJoinToken({ caHash: caFingerprint(tls.caPem), id, secret }), log: silentLogger() });
      const first = await auth.next();
      expect(first.bearer).toBe(credential);
      expect(first.ca && caFingerprint(first.ca)).toBe(caFingerprint(tls.caPem));
      // The pin check and the POST /v1/join; the session's own handshake is the dialler's.
      expect(handshakes).toBe(2);
      expect((await auth.next()).ca).toBe(first.ca);
      expect(handshakes).toBe(2);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
