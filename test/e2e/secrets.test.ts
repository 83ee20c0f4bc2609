import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEST_IMAGE } from '../images.js';
import { cleanup, cli, dockerExec, startServer, stopServer, testEnv, waitFor, ORCA, type RunResult, type ServerProcess } from './harness.js';

/**
 * Secrets as a user meets them (issue 12, SPEC §3.9): `orca secret set/ls/rm` against a real
 * server, apply refusing an unknown secret, a new value rolling the service out with the reason in
 * its history, the cluster key on disk, a recognisable value that no output ever shows, and the
 * values inside the container: files /run/secrets/<name> (0400, a tmpfs, read-only), secret_env
 * in its environment, a plain secret nowhere in `docker inspect`.
 */
const VALUE = 'pw-RECOGNISABLE-e2e-5c1d\n';
const NEW_VALUE = 'pw-RECOGNISABLE-e2e-NEW-77aa\n';
/** Only in `secrets`: it must never show in `docker inspect`. Bytes that are not text, too. */
const TOKEN = Buffer.concat([Buffer.from('tok-RECOGNISABLE-e2e-91f0'), Buffer.from([0, 1, 0xfe, 0xff, 10])]);
const MANIFEST = `[[service]]\nname = "web"\nimage = "${TEST_IMAGE}"\nsecrets = ["db-password", "api-token"]\nsecret_env = { DB_PASSWORD = "db-password" }\n`;

/** The running container of web (id and name = instance id). */
function webContainer(cluster: string): { id: string; name: string } | undefined {
  const out = execFileSync('docker', ['ps', '--filter', `label=orca.cluster=${cluster}`, '--filter', 'label=orca.service=web', '--format', '{{.ID}} {{.Names}}']).toString().trim();
  const [line] = out.split('\n').filter(Boolean);
  if (!line) return undefined;
  const [id, name] = line.split(' ');
  return { id: id!, name: name! };
}

/** Whether `dir` is a tmpfs mount point on this host. */
function isTmpfsMount(dir: string): boolean {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === dir && l.split(' ')[2] === 'tmpfs');
}

/** `orca ARGS` with `input` on stdin. */
function orcaWithInput(args: string[], input: string | Buffer): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [ORCA, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    // The CLI may stop reading once past the limit: a broken pipe here is expected then.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe('orca secret (real server)', () => {
  let env: { cluster: string; dataDir: string };
  let server: ServerProcess | undefined;
  let run: ReturnType<typeof cli>;
  let dir: string;
  const seen: string[] = [];
  const record = (r: RunResult) => {
    seen.push(r.stdout, r.stderr);
    return r;
  };
  const secret = (args: string[], input: string | Buffer) => orcaWithInput(['--api', server!.api, '--data-dir', env.dataDir, 'secret', ...args], input).then(record);

  beforeAll(async () => {
    env = await testEnv('secrets');
    server = await startServer(env);
    run = (args, timeoutMs) => cli(server!, env.dataDir)(args, timeoutMs).then(record);
    dir = await mkdtemp(join(tmpdir(), 'orca-secrets-'));
    await writeFile(join(dir, 'web.toml'), MANIFEST);
  });

  /** Where the embedded agent (node n1) keeps its tmpfs of secret files. */
  const secretsRoot = () => `/run/orca-secrets/${env.cluster}-n1`;

  afterAll(async () => {
    await stopServer(server);
    await cleanup(env.cluster, env.dataDir);
    if (dir) await rm(dir, { recursive: true, force: true });
    // The agent leaves its tmpfs mounted (containers bind from it): the test made it, the test ends it.
    if (env && isTmpfsMount(secretsRoot())) execFileSync('umount', [secretsRoot()]);
    if (env) await rm(secretsRoot(), { recursive: true, force: true });
  });

  it('made the cluster key on first start: 32 bytes, mode 0600', async () => {
    const key = join(env.dataDir, 'cluster.key');
    expect((await stat(key)).mode & 0o777).toBe(0o600);
    expect((await readFile(key)).length).toBe(32);
  });

  it('refuses a manifest naming an unknown secret: exit 2, service and secret named, nothing stored', async () => {
    const r = await run(['apply', '-f', join(dir, 'web.toml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('service "web": secrets: unknown secret "db-password"');
    expect(r.stderr).toContain('service "web": secret_env.DB_PASSWORD: unknown secret "db-password"');
    expect(JSON.parse((await run(['status', '-o', 'json'])).stdout)).toEqual({ services: [] });
  });

  it('refuses a value over 64 KiB and a bad name with exit 2, storing nothing', async () => {
    const big = await secret(['set', 'db-password'], Buffer.alloc(64 * 1024 + 1, 97));
    expect(big.code).toBe(2);
    expect(big.stderr).toContain('larger than 64 KiB');
    const bad = await secret(['set', 'Bad_Name'], VALUE);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('must be a DNS label');
    expect(JSON.parse((await secret(['ls', '-o', 'json'], '')).stdout)).toEqual({ secrets: [] });
  });

  it('sets a secret from stdin, then a service that uses it applies', async () => {
    const set = await secret(['set', 'db-password'], VALUE);
    expect(set).toMatchObject({ code: 0, stdout: 'secret/db-password created (version 1)\n' });
    expect((await secret(['set', 'api-token'], TOKEN)).code).toBe(0);
    const apply = await run(['apply', '-f', join(dir, 'web.toml')]);
    expect(apply.code).toBe(0);
    expect(apply.stdout).toContain('service/web created');
    const ls = JSON.parse((await secret(['ls', '-o', 'json'], '')).stdout) as { secrets: Array<Record<string, unknown>> };
    expect(ls.secrets).toEqual([
      { name: 'api-token', version: 1, updated: expect.any(String), usedBy: ['web'] },
      { name: 'db-password', version: 1, updated: expect.any(String), usedBy: ['web'] },
    ]);
    await waitFor(async () => JSON.parse((await run(['status', 'web', '-o', 'json'])).stdout).services[0]?.replicas.running === 1, 30_000, 'web running');
  });

  it('delivers the values into the container: files 0400 on a read-only tmpfs, secret_env in the environment', async () => {
    const c = webContainer(env.cluster)!;
    expect(dockerExec(c.id, 'cat', '/run/secrets/db-password')).toEqual(Buffer.from(VALUE));
    expect(dockerExec(c.id, 'cat', '/run/secrets/api-token')).toEqual(TOKEN);
    // The test image links no stat applet; its shell runs busybox's own.
    expect(dockerExec(c.id, 'sh', '-c', 'stat -c %a /run/secrets/db-password /run/secrets/api-token').toString().trim().split('\n')).toEqual(['400', '400']);
    const mount = dockerExec(c.id, 'cat', '/proc/mounts').toString().split('\n').find((l) => l.split(' ')[1] === '/run/secrets');
    expect(mount?.split(' ')[2]).toBe('tmpfs');
    expect(mount?.split(' ')[3]?.split(',')).toContain('ro');
    expect(dockerExec(c.id, 'env').toString()).toContain(`DB_PASSWORD=${VALUE}`);
    // On the host: the instance's directory on the agent's tmpfs, never its disk.
    expect(isTmpfsMount(secretsRoot())).toBe(true);
    expect(execFileSync('stat', ['-f', '-c', '%T', join(secretsRoot(), c.name)]).toString().trim()).toBe('tmpfs');
    expect(existsSync(join(env.dataDir, 'agent.key'))).toBe(true);
    expect((await stat(join(env.dataDir, 'agent.key'))).mode & 0o777).toBe(0o600);
  });

  it('docker inspect shows no plain secret (Env, Labels, Cmd): only the secret_env variable the manifest opted into', () => {
    const c = webContainer(env.cluster)!;
    const inspect = execFileSync('docker', ['inspect', c.id]).toString();
    expect(inspect).not.toContain('tok-RECOGNISABLE');
    expect(inspect).not.toContain(TOKEN.toString('base64').slice(0, 16));
    const [info] = JSON.parse(inspect) as Array<{ Config: { Env: string[] } }>;
    expect(info!.Config.Env).toContain(`DB_PASSWORD=${VALUE}`);
    expect(inspect.split(VALUE.trim()).length).toBe(2);
  });

  it('a new value from a file makes a new revision of web, with the reason in its history', async () => {
    const file = join(dir, 'new-value');
    await writeFile(file, NEW_VALUE);
    const set = await secret(['set', 'db-password', '-f', file], '');
    expect(set.code).toBe(0);
    expect(set.stdout).toBe('secret/db-password updated (version 2)\nservice/web configured (revision 2: secret db-password changed)\n');
    const history = JSON.parse((await run(['history', 'web', '-o', 'json'])).stdout) as { current: number; revisions: Array<Record<string, unknown>> };
    expect(history.current).toBe(2);
    expect(history.revisions[1]).toMatchObject({ revision: 2, source: 'secret', reason: 'secret db-password changed (version 2)', secretVersions: { 'db-password': 2 } });
    expect((await run(['history', 'web'])).stdout).toContain('secret db-password changed (version 2)');
    // The rollout replaces the instance: the one running is of revision 2.
    await waitFor(
      async () => {
        const s = JSON.parse((await run(['status', 'web', '-o', 'json'])).stdout).services[0];
        return s?.revision === 2 && s.instances.length === 1 && s.instances[0].id.startsWith('web-2-');
      },
      30_000,
      'web rolled out to revision 2',
    );
    // The same value again changes nothing.
    expect((await secret(['set', 'db-password', '-f', file], '')).stdout).toBe('secret/db-password unchanged (version 2)\n');
  });

  it('the new instance reads the new value; the removed instance\'s secret directory is gone from the host', async () => {
    await waitFor(() => webContainer(env.cluster)?.name.startsWith('web-2-') === true, 30_000, 'the revision 2 container running');
    const c = webContainer(env.cluster)!;
    expect(dockerExec(c.id, 'cat', '/run/secrets/db-password')).toEqual(Buffer.from(NEW_VALUE));
    expect(dockerExec(c.id, 'env').toString()).toContain(`DB_PASSWORD=${NEW_VALUE}`);
    await waitFor(async () => (await readdir(secretsRoot())).every((n) => n === c.name), 30_000, 'only the new instance has secret files');
    expect(await readdir(secretsRoot())).toEqual([c.name]);
  });

  it('refuses to remove a secret in use (exit 1, naming the service), removes it once unused', async () => {
    const refused = await secret(['rm', 'db-password'], '');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('secret "db-password" is used by service "web"');
    expect((await run(['delete', 'web'])).code).toBe(0);
    const rmd = await secret(['rm', 'db-password'], '');
    expect(rmd).toMatchObject({ code: 0, stdout: 'secret/db-password removed\n' });
    expect((await secret(['rm', 'db-password'], '')).code).toBe(1);
  });

  it('never shows a value: not in logs, events, history, diff, status, listings or errors', async () => {
    await run(['diff', '-f', join(dir, 'web.toml')]);
    await run(['events', '-o', 'json']);
    await run(['history', 'web', '-o', 'json']);
    await run(['status', '-o', 'json']);
    const all = seen.join('\n') + server!.logs();
    expect(all).toContain('db-password');
    expect(all).not.toContain('tok-RECOGNISABLE');
    for (const v of [VALUE, NEW_VALUE]) {
      expect(all).not.toContain(v.trim());
      expect(all).not.toContain(Buffer.from(v).toString('base64').slice(0, 16));
    }
  });

  it('a server refuses to start over a cluster key readable by others, or of the wrong size', async () => {
    const other = await testEnv('secrets-key');
    try {
      const key = join(other.dataDir, 'cluster.key');
      await writeFile(key, Buffer.alloc(32, 1));
      await chmod(key, 0o644);
      await expect(startServer(other)).rejects.toThrow(`the cluster key ${key} has mode 0644`);
      await writeFile(key, Buffer.alloc(16, 1));
      await chmod(key, 0o600);
      await expect(startServer(other)).rejects.toThrow('holds 16 bytes, but a cluster key is exactly 32 random bytes');
      await expect(startServer({ ...other, extra: ['--cluster-key-file', join(other.dataDir, 'missing.key')] })).rejects.toThrow('(--cluster-key-file) does not exist');
    } finally {
      await cleanup(other.cluster, other.dataDir);
    }
  });
});
