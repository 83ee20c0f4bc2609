import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CREDENTIAL_FILE, readBounded, readCredential, writeCredential } from './join.js';
import { formatCredential, newSecret } from '../server/join-tokens.js';

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
