/**
 * The images of the stateful example (examples/counter.toml), built locally (Orca never pulls):
 *
 * - `orca-example/redis:7` — Debian's own `redis-server` binary with the shared libraries `ldd`
 *   lists, on the busybox base. Append-only file with `appendfsync always` under /data, so every
 *   acknowledged write survives a kill -9. When /run/secrets/db-password exists its content is
 *   the password (written to a config file in /tmp at start, never on the command line).
 * - `orca-example/counter:1` — busybox httpd on port 80 with two CGI scripts that talk to the
 *   database by its service name (`redis:6379` on the cluster network) with busybox nc:
 *   `/cgi-bin/hit` increments and prints `hits N`, `/cgi-bin/count` prints `hits N` without
 *   counting; both answer 503 `database unavailable` when the database does not answer.
 *
 * The redis image's content hash covers the binary and every library, so it is rebuilt when
 * Debian updates the package. `redis-server` comes from scripts/ensure-docker.sh.
 */
import { execFile } from 'node:child_process';
import { realpath } from 'node:fs/promises';
import { promisify } from 'node:util';
import { busyboxBase, type ImageDef, type ImageFile } from '../runtime/image-def.js';

export const EXAMPLE_REDIS = 'orca-example/redis:7';
export const EXAMPLE_COUNTER = 'orca-example/counter:1';

/** Where Debian installs the server. */
export const REDIS_SERVER_PATH = '/usr/bin/redis-server';

const REDIS_CONF = [
  'bind * -::*',
  'port 6379',
  'protected-mode no',
  'daemonize no',
  'dir /data',
  'appendonly yes',
  'appendfsync always',
  'save ""',
  'logfile ""',
  'include /tmp/orca-auth.conf',
  '',
].join('\n');

const REDIS_START = `#!/bin/sh
# The password, when there is one, goes into a config file in /tmp: never on the command line.
umask 077
: > /tmp/orca-auth.conf
if [ -r /run/secrets/db-password ]; then
  # Inside double quotes redis reads backslash escapes: escape \\ and " (a trailing newline is dropped).
  printf 'requirepass "%s"\\n' "$(sed 's/[\\\\"]/\\\\&/g' /run/secrets/db-password)" > /tmp/orca-auth.conf
fi
exec /usr/bin/redis-server /etc/redis/redis.conf
`;

/**
 * The shared libraries a dynamically linked binary needs, as `ldd` lists them: each path as
 * the binary asks for it (a symlink on the host is copied as the file it points to).
 */
export async function sharedLibraries(binary: string): Promise<ImageFile[]> {
  const { stdout } = await promisify(execFile)('ldd', [binary]);
  const paths = new Set<string>();
  for (const line of stdout.split('\n')) {
    // "libm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (m?.[1]) paths.add(m[1]);
  }
  if (paths.size === 0) throw new Error(`ldd ${binary} listed no libraries (is it static?)`);
  const files: ImageFile[] = [];
  for (const p of [...paths].sort()) files.push({ path: p, hostPath: await realpath(p), mode: 0o755 });
  return files;
}

/** The def of orca-example/redis:7 from this machine's redis-server. */
export async function redisImageDef(serverPath = REDIS_SERVER_PATH): Promise<ImageDef> {
  const base = busyboxBase();
  return {
    tag: EXAMPLE_REDIS,
    files: [
      ...base.files,
      { path: '/usr/bin/redis-server', hostPath: await realpath(serverPath), mode: 0o755 },
      ...(await sharedLibraries(serverPath)),
      { path: '/etc/redis/redis.conf', content: REDIS_CONF },
      { path: '/bin/redis-start', content: REDIS_START, mode: 0o755 },
    ],
    symlinks: base.symlinks ?? [],
    dirs: [...(base.dirs ?? []), '/data'],
    cmd: ['/bin/redis-start'],
    exposedPorts: [6379],
    labels: { 'org.opencontainers.image.title': 'orca-example-redis' },
  };
}

/** One CGI script: sends `command` to the database and prints its integer reply. */
function cgi(command: string): string {
  return `#!/bin/sh
# Talks RESP to \${REDIS_HOST:-redis}:\${REDIS_PORT:-6379}; QUIT makes the server close, so nc ends.
pw=""
[ -r /run/secrets/db-password ] && pw=$(cat /run/secrets/db-password)
# AUTH as a RESP array: binary-safe, whatever the password holds.
reply=$( { [ -n "$pw" ] && printf '*2\\r\\n$4\\r\\nAUTH\\r\\n$%s\\r\\n%s\\r\\n' "$(printf %s "$pw" | wc -c)" "$pw"; printf '${command}\\r\\nQUIT\\r\\n'; } \\
  | nc -w 2 "\${REDIS_HOST:-redis}" "\${REDIS_PORT:-6379}" 2>/dev/null | tr -d '\\r')
n=$(printf '%s\\n' "$reply" | sed -n 's/^:\\([0-9][0-9]*\\)$/\\1/p' | head -n 1)
if [ -n "$n" ]; then
  printf 'Content-Type: text/plain\\r\\n\\r\\nhits %s\\n' "$n"
else
  printf 'Status: 503 Service Unavailable\\r\\nContent-Type: text/plain\\r\\n\\r\\ndatabase unavailable\\n'
fi
`;
}

/** The def of orca-example/counter:1. */
export function counterImageDef(): ImageDef {
  const base = busyboxBase();
  return {
    tag: EXAMPLE_COUNTER,
    files: [
      ...base.files,
      { path: '/www/index.html', content: 'orca-example counter: GET /cgi-bin/hit counts, /cgi-bin/count reads\n' },
      { path: '/www/ready', content: 'ok' },
      { path: '/www/cgi-bin/hit', content: cgi('INCR hits'), mode: 0o755 },
      { path: '/www/cgi-bin/count', content: cgi('INCRBY hits 0'), mode: 0o755 },
    ],
    symlinks: base.symlinks ?? [],
    dirs: [...(base.dirs ?? []), '/www'],
    cmd: ['/bin/sh', '-c', 'echo "orca-example counter starting"; exec /bin/httpd -f -v -p 80 -h /www'],
    exposedPorts: [80],
    labels: { 'org.opencontainers.image.title': 'orca-example-counter' },
  };
}
