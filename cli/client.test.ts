import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveCaCert, tlsFailure } from './client.js';
import { CliError, EXIT } from './exit.js';

const PEM = (tag: string) => `-----BEGIN CERTIFICATE-----\n${tag}\n-----END CERTIFICATE-----\n`;
let dir: string;
const savedEnv = process.env.ORCA_CA_CERT;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'orca-client-ca-'));
  delete process.env.ORCA_CA_CERT;
});
afterEach(async () => {
  if (savedEnv === undefined) delete process.env.ORCA_CA_CERT;
  else process.env.ORCA_CA_CERT = savedEnv;
  await rm(dir, { recursive: true, force: true });
});

describe('resolveCaCert', () => {
  it('takes --ca-cert, else $ORCA_CA_CERT, else <data-dir>/tls/ca.crt, else nothing', async () => {
    const dataDir = join(dir, 'data');
    expect(resolveCaCert({ dataDir })).toBeUndefined();
    await mkdir(join(dataDir, 'tls'), { recursive: true });
    await writeFile(join(dataDir, 'tls/ca.crt'), PEM('datadir'));
    await writeFile(join(dir, 'env.crt'), PEM('env'));
    await writeFile(join(dir, 'flag.crt'), PEM('flag'));
    expect(resolveCaCert({ dataDir })?.pem).toContain('datadir');
    process.env.ORCA_CA_CERT = join(dir, 'env.crt');
    expect(resolveCaCert({ dataDir })?.pem).toContain('env');
    expect(resolveCaCert({ dataDir, caCert: join(dir, 'flag.crt') })).toEqual({ pem: PEM('flag'), path: join(dir, 'flag.crt') });
  });

  it('a named file that is missing or holds no certificate is a usage error (exit 2)', async () => {
    await writeFile(join(dir, 'junk.crt'), 'hello');
    for (const caCert of [join(dir, 'missing.crt'), join(dir, 'junk.crt')]) {
      let err: unknown;
      try {
        resolveCaCert({ dataDir: dir, caCert });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CliError);
      expect((err as CliError).exitCode).toBe(EXIT.invalid);
      expect((err as CliError).message).toMatch(/^--ca-cert: /);
    }
  });
});

describe('tlsFailure', () => {
  const err = (code: string, message = 'x') => Object.assign(new Error(message), { code });
  it('a certificate that cannot be verified is exit 1 with what to do', () => {
    for (const code of ['SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_HAS_EXPIRED', 'DEPTH_ZERO_SELF_SIGNED_CERT']) {
      const e = tlsFailure(err(code), 'https://192.0.2.1:6880', undefined);
      expect(e?.exitCode).toBe(EXIT.failed);
      expect(e?.message).toMatch(/cannot verify the TLS certificate of the Orca server at https:\/\/192\.0\.2\.1:6880.*--ca-cert/);
    }
    expect(tlsFailure(err('SELF_SIGNED_CERT_IN_CHAIN'), 'https://h:1', { path: '/etc/orca/ca.crt' })?.message).toContain('checked against /etc/orca/ca.crt');
  });

  it('a server that speaks no TLS is exit 1 with a hint; a refused connection is not about TLS', () => {
    expect(tlsFailure(err('EPROTO', 'wrong version number'), 'https://h:1', undefined)?.message).toMatch(/use http:\/\//);
    expect(tlsFailure(err('ECONNREFUSED'), 'https://h:1', undefined)).toBeNull();
  });
});
