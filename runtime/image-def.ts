/**
 * Declarative images that Orca's tests and examples build locally, without a registry:
 * `FROM scratch`, one `COPY rootfs/ /`, and metadata lines. Pure (no Docker): this file
 * computes the content hash and the build-context tar; DockerRuntime.ensureImage builds it.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { pack } from 'tar-stream';

export interface ImageFile {
  /** Absolute path inside the image, like /www/index.html. */
  path: string;
  /** Literal content; exactly one of content and hostPath. */
  content?: string | Buffer;
  /** A file on this machine whose bytes are copied in (and hashed). */
  hostPath?: string;
  /** Unix mode; default 0o644 (0o755 is usual for executables). */
  mode?: number;
}

export interface ImageHealthcheck {
  /** Docker form: ["CMD", arg...], ["CMD-SHELL", "script"] or ["NONE"]. */
  test: string[];
  /** Fractions allowed (0.2); Docker's minimum is 1 ms. */
  intervalSecs: number;
  timeoutSecs?: number;
  retries: number;
  startPeriodSecs?: number;
}

export interface ImageDef {
  /** repo:tag, like orca-example/web:1. */
  tag: string;
  files: ImageFile[];
  symlinks?: Array<{ path: string; target: string }>;
  /** Extra (possibly empty) directories; /tmp gets mode 1777, others 0755. */
  dirs?: string[];
  cmd?: string[];
  entrypoint?: string[];
  env?: Record<string, string>;
  exposedPorts?: number[];
  healthcheck?: ImageHealthcheck;
  labels?: Record<string, string>;
}

/** The label that carries imageDefHash(def) on every built image. */
export const IMAGE_HASH_LABEL = 'orca.image-hash';

/** Bumped whenever the context layout or Dockerfile generation changes, to invalidate caches. */
const FORMAT_VERSION = 1;

/** A fixed mtime so that identical defs give byte-identical contexts. */
const EPOCH = new Date(0);

/** Busybox applets linked in /bin by busyboxFiles(). */
export const BUSYBOX_APPLETS = [
  'sh', 'httpd', 'echo', 'cat', 'sleep', 'nc', 'wget', 'env', 'ls', 'mkdir', 'rm', 'kill', 'ps', 'true',
  'false', 'head', 'tail', 'dd', 'yes', 'touch', 'grep', 'sed', 'date', 'hostname', 'printf', 'id',
  'tr', 'wc', 'cut', 'seq', 'cp', 'mv', 'ln', 'chmod', 'pwd', 'uname', 'test', 'expr', 'awk', 'xargs',
] as const;

/**
 * The common base of Orca's test and example images: a static busybox from the host
 * (/bin/busybox, installed by scripts/ensure-docker.sh), its applet links in /bin, /tmp, and
 * an /etc/passwd and /etc/group with root and nobody.
 */
export function busyboxBase(busyboxPath = '/bin/busybox'): Pick<ImageDef, 'files' | 'symlinks' | 'dirs'> {
  return {
    files: [
      { path: '/bin/busybox', hostPath: busyboxPath, mode: 0o755 },
      { path: '/etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' },
      { path: '/etc/group', content: 'root:x:0:\nnogroup:x:65534:\n' },
    ],
    symlinks: BUSYBOX_APPLETS.map((a) => ({ path: `/bin/${a}`, target: '/bin/busybox' })),
    dirs: ['/tmp', '/root'],
  };
}

/**
 * sha256 (hex) over everything in the def, the bytes of hostPath files included, so an image
 * is rebuilt exactly when something that would change it changes. Throws when a hostPath
 * cannot be read.
 */
export async function imageDefHash(def: ImageDef): Promise<string> {
  validate(def);
  const h = createHash('sha256');
  const files = [];
  for (const f of [...def.files].sort(byPath)) {
    const bytes = await fileBytes(f);
    files.push({ path: f.path, mode: f.mode ?? 0o644, sha256: createHash('sha256').update(bytes).digest('hex') });
  }
  h.update(
    JSON.stringify({
      format: FORMAT_VERSION,
      tag: def.tag,
      files,
      symlinks: [...(def.symlinks ?? [])].sort(byPath),
      dirs: [...(def.dirs ?? [])].sort(),
      cmd: def.cmd ?? null,
      entrypoint: def.entrypoint ?? null,
      env: sortedEntries(def.env),
      exposedPorts: [...(def.exposedPorts ?? [])].sort((a, b) => a - b),
      healthcheck: def.healthcheck ?? null,
      labels: sortedEntries(def.labels),
    }),
  );
  return h.digest('hex');
}

/** The Dockerfile for def, given its hash. Exported for tests. */
export function dockerfile(def: ImageDef, hash: string): string {
  const lines = ['FROM scratch', 'COPY rootfs/ /'];
  for (const [k, v] of sortedEntries(def.env)) lines.push(`ENV ${k}=${quote(v)}`);
  for (const p of [...(def.exposedPorts ?? [])].sort((a, b) => a - b)) lines.push(`EXPOSE ${p}/tcp`);
  if (def.healthcheck) lines.push(healthcheckLine(def.healthcheck));
  for (const [k, v] of sortedEntries(def.labels)) lines.push(`LABEL ${quote(k)}=${quote(v)}`);
  lines.push(`LABEL ${quote(IMAGE_HASH_LABEL)}=${quote(hash)}`);
  if (def.entrypoint) lines.push(`ENTRYPOINT ${JSON.stringify(def.entrypoint)}`);
  if (def.cmd) lines.push(`CMD ${JSON.stringify(def.cmd)}`);
  return lines.join('\n') + '\n';
}

/**
 * The build context as an uncompressed tar: `Dockerfile` and `rootfs/...` (parents first,
 * entries sorted, uid/gid 0, mtime 0). Deterministic for a given def.
 */
export async function imageContextTar(def: ImageDef): Promise<Buffer> {
  const hash = await imageDefHash(def);
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => {
    chunks.push(c as Buffer);
  });
  const done = new Promise<void>((resolve, reject) => {
    p.on('end', () => resolve());
    p.on('error', reject);
  });
  const add = (header: Parameters<typeof p.entry>[0], body?: string | Buffer) =>
    new Promise<void>((resolve, reject) => {
      const h = { uid: 0, gid: 0, mtime: EPOCH, ...header };
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (body === undefined) p.entry(h, cb);
      else p.entry(h, body, cb);
    });

  await add({ name: 'Dockerfile', mode: 0o644 }, dockerfile(def, hash));
  await add({ name: 'rootfs/', type: 'directory', mode: 0o755 });

  const dirs = new Set<string>();
  const wanted = [...def.files.map((f) => f.path), ...(def.symlinks ?? []).map((s) => s.path)];
  for (const path of wanted) for (const d of parents(path)) dirs.add(d);
  for (const d of def.dirs ?? []) {
    for (const parent of parents(d)) dirs.add(parent);
    dirs.add(posix.normalize(d));
  }
  for (const d of [...dirs].sort()) {
    await add({ name: `rootfs${d}/`, type: 'directory', mode: d === '/tmp' ? 0o1777 : 0o755 });
  }
  for (const f of [...def.files].sort(byPath)) {
    await add({ name: `rootfs${f.path}`, mode: f.mode ?? 0o644 }, await fileBytes(f));
  }
  for (const s of [...(def.symlinks ?? [])].sort(byPath)) {
    await add({ name: `rootfs${s.path}`, type: 'symlink', linkname: s.target, mode: 0o777 });
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

function validate(def: ImageDef): void {
  const bad = (msg: string) => {
    throw new Error(`image ${def.tag}: ${msg}`);
  };
  const paths = [...def.files.map((f) => f.path), ...(def.symlinks ?? []).map((s) => s.path), ...(def.dirs ?? [])];
  if (new Set(paths).size !== paths.length) bad('a path appears twice');
  for (const p of paths) {
    if (!p.startsWith('/') || p === '/' || posix.normalize(p) !== p || p.split('/').includes('..')) {
      bad(`path ${JSON.stringify(p)} must be absolute and normalized`);
    }
  }
  for (const f of def.files) {
    if ((f.content === undefined) === (f.hostPath === undefined)) bad(`${f.path}: give exactly one of content and hostPath`);
  }
  for (const k of Object.keys(def.env ?? {})) if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) bad(`env name ${JSON.stringify(k)}`);
  const texts = [
    ...Object.entries(def.env ?? {}).flat(),
    ...Object.entries(def.labels ?? {}).flat(),
    ...(def.healthcheck?.test ?? []),
  ];
  for (const t of texts) if (/[\r\n]/.test(t)) bad(`newlines are not supported in env, labels or healthcheck: ${JSON.stringify(t)}`);
  for (const p of def.exposedPorts ?? []) if (!Number.isInteger(p) || p < 1 || p > 65535) bad(`port ${p}`);
}

function healthcheckLine(hc: ImageHealthcheck): string {
  const [kind, ...rest] = hc.test;
  if (kind === 'NONE') return 'HEALTHCHECK NONE';
  const opts = [`--interval=${durationMs(hc.intervalSecs)}`, `--retries=${hc.retries}`];
  if (hc.timeoutSecs !== undefined) opts.push(`--timeout=${durationMs(hc.timeoutSecs)}`);
  if (hc.startPeriodSecs !== undefined) opts.push(`--start-period=${durationMs(hc.startPeriodSecs)}`);
  if (kind === 'CMD') return `HEALTHCHECK ${opts.join(' ')} CMD ${JSON.stringify(rest)}`;
  if (kind === 'CMD-SHELL' && rest.length === 1) return `HEALTHCHECK ${opts.join(' ')} CMD ${rest[0]}`;
  throw new Error(`healthcheck test must start with CMD, CMD-SHELL or NONE: ${JSON.stringify(hc.test)}`);
}

/** A Go duration string in whole milliseconds (at least 1 ms, Docker's minimum). */
function durationMs(secs: number): string {
  return `${Math.max(1, Math.round(secs * 1000))}ms`;
}

/** Double-quoted Dockerfile word: backslash, quote and $ escaped (no variable expansion). */
function quote(s: string): string {
  return `"${s.replace(/[\\"$]/g, (c) => `\\${c}`)}"`;
}

function parents(path: string): string[] {
  const out: string[] = [];
  let d = posix.dirname(path);
  while (d !== '/') {
    out.unshift(d);
    d = posix.dirname(d);
  }
  return out;
}

async function fileBytes(f: ImageFile): Promise<Buffer> {
  if (f.content !== undefined) return Buffer.isBuffer(f.content) ? f.content : Buffer.from(f.content, 'utf8');
  return readFile(f.hostPath as string);
}

function sortedEntries(r: Record<string, string> | undefined): Array<[string, string]> {
  return Object.entries(r ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function byPath(a: { path: string }, b: { path: string }): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}
