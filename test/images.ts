/**
 * Images the Docker tests use, built locally from the host's static busybox (never pulled).
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { DockerRuntime } from '../runtime/docker-runtime.js';
import { busyboxBase, type ImageDef } from '../runtime/image-def.js';

/** busybox with applet links in /bin; default command `sleep 3600`. */
export const TEST_IMAGE = 'orca-test/busybox:1';
/**
 * A manifest `command` line (for TEST_IMAGE, with `memory = "8m"`) whose main process is
 * OOM-killed 0.3 s after it starts: awk allocates 64 MB at once. Its shell predecessor,
 * `a=$(yes | head -c 64000000)`, filled its buffer only as fast as the pipe ran; on a loaded
 * machine that took long enough for the service to look stable first.
 */
export const OOM_COMMAND = 'command = ["awk", "BEGIN { system(\\"sleep 0.3\\"); s = sprintf(\\"%64000000s\\", \\"\\"); system(\\"sleep 3600\\") }"]';
/** Like TEST_IMAGE, plus a HEALTHCHECK that passes while /tmp/healthy exists (checked every 200 ms). */
export const HEALTHCHECK_IMAGE = 'orca-test/healthcheck:1';
/**
 * The busybox base plus /bin/ws-echo (test/fixtures/ws-echo.c) on port 80: a WebSocket echo
 * server (text, binary, fragments, ping → pong, close echoed) that answers any plain HTTP
 * request with 200 `ws-echo <hostname>\n`. Logs `ws-echo listening on :80` on start.
 */
export const WS_ECHO_IMAGE = 'orca-test/ws-echo:1';

export const testImageDef: ImageDef = {
  tag: TEST_IMAGE,
  ...busyboxBase(),
  cmd: ['sleep', '3600'],
};

export const healthcheckImageDef: ImageDef = {
  tag: HEALTHCHECK_IMAGE,
  ...busyboxBase(),
  cmd: ['sleep', '3600'],
  healthcheck: { test: ['CMD', '/bin/cat', '/tmp/healthy'], intervalSecs: 0.2, timeoutSecs: 1, retries: 1 },
};

/** The def of WS_ECHO_IMAGE, given the static binary built by buildWsEcho(). */
export function wsEchoImageDef(binaryPath: string): ImageDef {
  const base = busyboxBase();
  return {
    tag: WS_ECHO_IMAGE,
    files: [...base.files, { path: '/bin/ws-echo', hostPath: binaryPath, mode: 0o755 }],
    symlinks: base.symlinks ?? [],
    dirs: base.dirs ?? [],
    cmd: ['/bin/ws-echo', '80'],
    exposedPorts: [80],
  };
}

/** The compiler command (the output path is appended); part of the cache key. */
const WS_ECHO_GCC = ['gcc', '-static', '-O2'];

/** test/fixtures/ws-echo.c, found from test/ and from dist/test/ alike. */
function wsEchoSource(): string {
  let dir = import.meta.dirname;
  for (;;) {
    const candidate = join(dir, 'test/fixtures/ws-echo.c');
    if (existsSync(candidate)) return candidate;
    const up = dirname(dir);
    if (up === dir) throw new Error(`test/fixtures/ws-echo.c not found above ${import.meta.dirname}`);
    dir = up;
  }
}

/**
 * Compiles test/fixtures/ws-echo.c with `gcc -static -O2` into
 * `<tmpdir>/orca-ws-echo-<sha256 of source and flags>/ws-echo` unless already there, and
 * returns that path. The binary appears atomically (compiled beside it, then renamed), so
 * concurrent callers never see half a file.
 */
export async function buildWsEcho(): Promise<string> {
  const source = wsEchoSource();
  const hash = createHash('sha256').update(WS_ECHO_GCC.join(' ')).update('\0').update(await readFile(source)).digest('hex');
  const dir = join(tmpdir(), `orca-ws-echo-${hash}`);
  const out = join(dir, 'ws-echo');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // A shared tmpdir: only trust a cache directory this user owns.
  const owner = (await stat(dir)).uid;
  if (process.getuid && owner !== process.getuid()) throw new Error(`${dir} belongs to uid ${owner}, not to this user`);
  if (existsSync(out)) return out;
  const partial = `${out}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
  try {
    const [gcc, ...flags] = WS_ECHO_GCC as [string, ...string[]];
    await promisify(execFile)(gcc, [...flags, '-o', partial, source]);
    await rename(partial, out);
  } catch (e) {
    await rm(partial, { force: true });
    const err = e as { stderr?: string; message?: string };
    throw new Error(`compiling ${source} failed: ${err.stderr?.trim() || err.message}`, { cause: e });
  }
  return out;
}

/** Builds the test images (ws-echo compiled first) unless already present with the same content. */
export async function ensureTestImages(rt: DockerRuntime): Promise<void> {
  const wsEcho = wsEchoImageDef(await buildWsEcho());
  for (const def of [testImageDef, healthcheckImageDef, wsEcho]) await rt.ensureImage(def);
}
