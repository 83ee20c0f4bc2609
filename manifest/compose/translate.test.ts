import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import TOML from '@iarna/toml';
import { describe, expect, it } from 'vitest';
import { parseManifestText } from '../parse.js';
import { renderComposeToml } from './render.js';
import { translateCompose, type ComposeTranslation } from './translate.js';
import { dnsLabel, parseDuration, parsePort, parseVolume, splitCommand } from './values.js';

const FIX = join(import.meta.dirname, '../../test/fixtures/compose');
const DIR = 'test/fixtures/compose';
const ABS = '/srv/app';

type Svc = Record<string, any>;

/** Translates a fixture (or text); returns the parsed TOML, the notes and the validated specs. */
function run(nameOrText: string, isText = false) {
  const text = isText ? nameOrText : readFileSync(join(FIX, nameOrText), 'utf8');
  const file = isText ? 'compose.yml' : `${DIR}/${nameOrText}`;
  const r = translateCompose(text, { file, dir: isText ? '.' : DIR, absDir: ABS });
  if (!r.ok) throw new Error(`translation failed: ${r.line}: ${r.message}`);
  const toml = renderComposeToml(r.value.services, file);
  const parsed = parseManifestText(toml, 'out.toml');
  if (!parsed.ok) throw new Error(`not a valid manifest: ${JSON.stringify(parsed.errors)}\n${toml}`);
  const doc = TOML.parse(toml) as { service: Svc[] };
  const svc = (name: string) => {
    const s = doc.service.find((x) => x.name === name);
    if (!s) throw new Error(`no service ${name}`);
    return s;
  };
  return { t: r.value, toml, doc, svc, specs: parsed.value.map((p) => p.spec) };
}

const notesOf = (t: ComposeTranslation) => t.notes.map((n) => `${n.line}: ${n.path}: ${n.message}`);
const noteAt = (t: ComposeTranslation, path: string) => t.notes.find((n) => n.path === path);

describe('orca import compose: translation', () => {
  it('web + postgres + redis: images, commands, env, replicas, ports, volumes, healthchecks, restart, limits', () => {
    const { t, svc, toml } = run('web-postgres-redis.yml');
    const web = svc('web');
    expect(web.image).toBe('ghcr.io/acme/shop-web:2.3.1');
    expect(web.command).toEqual(['gunicorn', '--bind', '0.0.0.0:8000', 'shop.wsgi']);
    expect(web.env).toEqual({ DATABASE_URL: 'postgres://shop:shop@db:5432/shop', REDIS_URL: 'redis://cache:6379/0', WORKERS: '4', DEBUG: 'false' });
    expect(web.replicas).toBe(3);
    expect(web.port).toBe(8000);
    expect(web.route).toEqual({ host: 'web.localhost' });
    expect(web.resources).toEqual({ memory: '512M', cpus: 0.5 });
    const probe = { exec: ['curl', '-fsS', 'http://localhost:8000/healthz'], interval_secs: 10, timeout_secs: 3, failure_threshold: 5 };
    expect(web.readiness).toEqual({ ...probe, initial_delay_secs: 0 });
    expect(web.liveness).toEqual({ ...probe, initial_delay_secs: 20 });
    expect(web.restart).toEqual({ policy: 'always' });
    // The route is explained where it is written.
    expect(toml).toMatch(/# From ports "8000:8000": Orca publishes no fixed host port[\s\S]*curl -H 'Host: web.localhost' http:\/\/127\.0\.0\.1:8080\//);

    const db = svc('db');
    expect(db.env).toEqual({ POSTGRES_USER: 'shop', POSTGRES_PASSWORD: 'shop', POSTGRES_DB: 'shop' });
    expect(db.volumes).toEqual({ 'db-data': '/var/lib/postgresql/data' });
    expect(db.port).toBe(5432);
    expect(db.route).toBeUndefined(); // Postgres is not HTTP: no route
    expect(db.readiness.exec).toEqual(['/bin/sh', '-c', 'pg_isready -U shop -d shop']);
    expect(db.restart).toEqual({ policy: 'always' });

    const cache = svc('cache');
    expect(cache.command).toEqual(['redis-server', '--appendonly', 'yes', '--save', '60 1']);
    expect(cache.volumes).toEqual({ 'cache-data': '/data' });
    expect(cache.port).toBeUndefined();
    // A string test is CMD-SHELL; unset timeout and retries take Docker's defaults; 1m30s is 90 s.
    expect(cache.readiness).toEqual({ exec: ['/bin/sh', '-c', 'redis-cli ping'], interval_secs: 90, timeout_secs: 30, failure_threshold: 3, initial_delay_secs: 0 });
    expect(cache.restart).toEqual({ policy: 'on-failure' });

    expect(notesOf(t)).toEqual([
      expect.stringMatching(/^13: services\.web\.depends_on: not translated \(Orca has no start order/),
      expect.stringMatching(/^24: services\.web\.restart: "unless-stopped" → "always"/),
      expect.stringMatching(/^41: services\.db\.ports\[0\]: not translated \(host port 5432: .*routes HTTP only; other services reach db:5432/),
      expect.stringMatching(/^57: services\.cache\.restart: the retry limit is dropped/),
      expect.stringMatching(/^62: volumes\.cache_data\.driver: not translated/),
    ]);
  });

  it('secrets: references, renamed names followed in env, the commands to store them', () => {
    const { t, svc } = run('secrets.yml');
    const api = svc('api');
    expect(api.secrets).toEqual(['db-password', 'api-key', 'signing-key']);
    // POSTGRES_PASSWORD_FILE-style variables follow the rename, so the app still finds the file.
    expect(api.env).toEqual({ DB_PASSWORD_FILE: '/run/secrets/db-password' });
    expect(api.port).toBe(3000);
    expect(api.route).toBeUndefined(); // expose publishes nothing
    expect(t.secretCommands).toEqual([
      'orca secret set db-password -f test/fixtures/compose/secrets/db_password.txt',
      `printf '%s' "$API_KEY" | orca secret set api-key`,
      'orca secret set signing-key -f FILE    # signing-key: external in Compose',
    ]);
    expect(noteAt(t, 'services.api.secrets[0]')?.message).toMatch(/renamed to "db-password".*\/run\/secrets\/db-password, not \/run\/secrets\/db_password/);
    expect(noteAt(t, 'services.api.secrets[1].target')).toMatchObject({ line: 9, message: expect.stringMatching(/^not translated \(Orca delivers every secret at \/run\/secrets\/<name>/) });
    expect(noteAt(t, 'services.api.secrets[1].mode')?.line).toBe(10);
  });

  it('wordpress + mysql: a string command, list environment, unquoted ports, two exposed ports', () => {
    const { t, svc, specs } = run('wordpress.yml');
    expect(svc('db')).toMatchObject({ image: 'mysql:8.0', command: ['--default-authentication-plugin=mysql_native_password'], port: 3306, volumes: { 'db-data': '/var/lib/mysql' }, restart: { policy: 'always' } });
    expect(svc('db').env.MYSQL_DATABASE).toBe('wordpress');
    expect(svc('wordpress')).toMatchObject({ port: 80, route: { host: 'wordpress.localhost' }, volumes: { 'wp-data': '/var/www/html' } });
    expect(notesOf(t)).toEqual([expect.stringMatching(/^16: services\.db\.expose\[1\]: not translated \(Orca takes traffic on one port per service \(port = 3306\)/)]);
    // A service with volumes rolls out stop-first (SPEC §2), as the validator fills in.
    expect(specs.find((s) => s.name === 'db')?.deploy.strategy).toBe('stop-first');
  });

  it('kitchen sink: every untranslatable key named with its line; what can be translated is', () => {
    const { t, svc } = run('kitchen-sink.yml');
    const app = svc('app');
    expect(app.image).toBe('sink-app'); // build only: the name docker compose build gives it (project "sink")
    expect(app.command).toEqual(['nginx', '-g', 'daemon off;']);
    expect(app.entrypoint).toEqual(['/docker-entrypoint.sh']);
    expect(app.env).toEqual({ MODE: 'production', GREETING: 'hello world', PRICE: '$5', HOME_DIR: '${HOME}' });
    expect(app.labels).toEqual({ 'com.example.team': 'payments' });
    expect(app.port).toBe(80);
    expect(app.route).toEqual({ host: 'app.localhost' });
    expect(app.stop_grace_secs).toBe(60);
    expect(app.init).toBe(true);
    expect(app.mounts).toEqual([
      { host: '/srv/app/html', path: '/usr/share/nginx/html', read_only: true },
      { host: '/var/log/app', path: '/var/log/app', read_only: false },
    ]);
    const worker = svc('worker');
    expect(worker).toMatchObject({ image: 'example/worker:latest', replicas: 2, labels: { 'com.example.role': 'worker' }, restart: { policy: 'never' }, deploy: { strategy: 'start-first' } });

    const lines = Object.fromEntries(t.notes.map((n) => [n.path, n.line]));
    expect(lines).toMatchObject({
      'services.app.build': 11,
      'services.app.networks': 14,
      'services.app.depends_on': 17,
      'services.app.profiles': 19,
      'services.app.labels.orca.service': 22,
      'services.app.logging': 23,
      'services.app.environment[2]': 27,
      'services.app.environment[4]': 29,
      'services.app.ports[1]': 32,
      'services.app.ports[2]': 36,
      'services.app.ports[3]': 37,
      'services.app.volumes[0]': 39,
      'services.app.volumes[2]': 41,
      'services.app.volumes[3]': 42,
      'services.app.env_file': 44,
      'services.app.container_name': 45,
      'services.app.user': 48,
      'services.worker.extends': 53,
      'services.worker.image': 56,
      'services.worker.deploy.mode': 62,
      'services.worker.deploy.update_config.parallelism': 65,
      'services.worker.deploy.restart_policy.condition': 67,
      'services.worker.deploy.restart_policy.max_attempts': 68,
      'services.worker.deploy.placement': 69,
      networks: 72,
      configs: 76,
    });
    expect(noteAt(t, 'services.app.build')?.message).toBe('not translated (Orca runs prebuilt images; build it and set image: `docker compose build` tags it sink-app, used as image)');
    expect(noteAt(t, 'services.app.ports[2]')?.message).toMatch(/range of ports/);
    expect(noteAt(t, 'services.app.ports[3]')?.message).toMatch(/^not translated \(UDP/);
    expect(noteAt(t, 'services.app.environment[2]')?.message).toMatch(/comes from the shell/);
    expect(noteAt(t, 'services.app.environment[4]')?.message).toMatch(/\$\{HOME\} is not interpolated/);
    expect(noteAt(t, 'services.worker.image')?.message).toMatch(/\$\{TAG:-latest\} written as "latest"/);
    // x- extension keys and the obsolete version are not noise.
    expect(t.notes.some((n) => n.path.startsWith('x-') || n.path === 'version')).toBe(false);
    expect(t.notes).toEqual([...t.notes].sort((a, b) => a.line - b.line));
  });

  it('ports: short and long syntax, host addresses, ranges, protocols, IPv6', () => {
    expect(parsePort('80')).toEqual({ target: { from: 80, to: 80 }, protocol: 'tcp' });
    expect(parsePort(8080)).toEqual({ target: { from: 8080, to: 8080 }, protocol: 'tcp' });
    expect(parsePort('127.0.0.1:8080:80/tcp')).toEqual({ target: { from: 80, to: 80 }, published: '8080', hostIp: '127.0.0.1', protocol: 'tcp' });
    expect(parsePort('127.0.0.1::80')).toEqual({ target: { from: 80, to: 80 }, hostIp: '127.0.0.1', protocol: 'tcp' });
    expect(parsePort('[::1]:8080:80')).toEqual({ target: { from: 80, to: 80 }, published: '8080', hostIp: '::1', protocol: 'tcp' });
    expect(parsePort('9000-9001:9000-9001')).toEqual({ target: { from: 9000, to: 9001 }, published: '9000-9001', protocol: 'tcp' });
    expect(parsePort('53:53/UDP')?.protocol).toBe('udp');
    expect(parsePort({ target: 80, published: 8080, host_ip: '127.0.0.1', app_protocol: 'http' })).toMatchObject({ target: { from: 80, to: 80 }, published: '8080', appProtocol: 'http' });
    for (const bad of ['', 'x', '70000', '1:2:3:4', '80-70', { published: 80 }, null, []]) expect(parsePort(bad), JSON.stringify(bad)).toBeNull();

    const { svc, t } = run('services:\n  web:\n    image: w\n    ports:\n      - target: 5432\n        published: 15432\n        app_protocol: http\n  api:\n    image: a\n    ports: ["3000", "127.0.0.1:3000:3000", "0.0.0.0:3001:3001"]\n', true);
    expect(svc('web')).toMatchObject({ port: 5432, route: { host: 'web.localhost' } }); // app_protocol says HTTP
    expect(svc('api')).toMatchObject({ port: 3000, route: { host: 'api.localhost' } }); // the published mapping of :3000 wins
    expect(noteAt(t, 'services.api.ports[2]')?.message).toMatch(/one port per service \(port = 3000\)/);
  });

  it('volumes: named, bind (relative, absolute, read-only), anonymous, tmpfs, long syntax', () => {
    expect(parseVolume('data:/var/lib/data')).toEqual({ kind: 'volume', source: 'data', target: '/var/lib/data', readOnly: false });
    expect(parseVolume('./conf:/etc/app:ro')).toEqual({ kind: 'bind', source: './conf', target: '/etc/app', readOnly: true });
    expect(parseVolume('/data')).toEqual({ kind: 'anonymous', target: '/data' });
    expect(parseVolume({ type: 'bind', source: '/srv', target: '/srv', read_only: true })).toEqual({ kind: 'bind', source: '/srv', target: '/srv', readOnly: true });
    expect(parseVolume({ type: 'volume', target: '/x' })).toEqual({ kind: 'anonymous', target: '/x' });
    expect(parseVolume({ type: 'npipe', source: 'x', target: '/x' })).toEqual({ kind: 'other', type: 'npipe', target: '/x' });

    const { svc, t } = run(
      'services:\n  db:\n    image: d\n    volumes:\n      - type: volume\n        source: pg_data\n        target: /data/\n        read_only: true\n      - ~/x:/x\n      - secrets:/run/secrets/db\n',
      true,
    );
    expect(svc('db').volumes).toEqual({ 'pg-data': '/data' });
    expect(noteAt(t, 'services.db.volumes[0]')?.message).toMatch(/read-write/);
    expect(noteAt(t, 'services.db.volumes[1]')?.message).toMatch(/write it as an absolute path/);
    // A path Orca refuses becomes a note, never an invalid manifest.
    expect(noteAt(t, 'services.db.volumes[2]')?.message).toMatch(/^not translated \(volumes\.secrets must not be at or under \/run\/secrets/);
  });

  it('healthchecks: CMD, CMD-SHELL, string, disabled, too fast, bad durations', () => {
    const hc = (h: string) => run(`services:\n  s:\n    image: i\n    healthcheck:\n${h}`, true);
    expect(hc('      test: ["CMD-SHELL", "curl -f http://localhost || exit 1"]\n      interval: 500ms\n      timeout: 10ms\n').svc('s').readiness).toEqual({
      exec: ['/bin/sh', '-c', 'curl -f http://localhost || exit 1'],
      interval_secs: 0.5,
      timeout_secs: 0.05,
      failure_threshold: 3,
      initial_delay_secs: 0,
    });
    const off = hc('      disable: true\n');
    expect(off.svc('s').readiness).toBeUndefined();
    expect(noteAt(off.t, 'services.s.healthcheck')?.message).toMatch(/disabled/);
    const none = hc('      test: ["NONE"]\n');
    expect(none.svc('s').liveness).toBeUndefined();
    const bad = hc('      test: ["CMD", "true"]\n      interval: soon\n      retries: 0\n');
    expect(bad.svc('s').readiness).toMatchObject({ exec: ['true'], interval_secs: 30, failure_threshold: 3 });
    expect(notesOf(bad.t)).toEqual([expect.stringMatching(/^6: services\.s\.healthcheck\.interval: not translated/), expect.stringMatching(/^7: services\.s\.healthcheck\.retries: not translated/)]);
  });

  it('restart policies and deploy', () => {
    const policy = (y: string) => run(`services:\n  s:\n    image: i\n${y}`, true).svc('s').restart?.policy;
    expect(policy('    restart: "no"\n')).toBe('never');
    expect(policy('    restart: always\n')).toBe('always');
    expect(policy('    restart: on-failure\n')).toBe('on-failure');
    expect(policy('    restart: unless-stopped\n')).toBe('always');
    expect(policy('    deploy:\n      restart_policy:\n        condition: none\n')).toBe('never');
    expect(policy('    deploy:\n      restart_policy:\n        condition: any\n')).toBe('always');
    expect(policy('')).toBeUndefined();
    const d = run('services:\n  s:\n    image: i\n    mem_limit: 1g\n    cpus: 2\n    deploy:\n      replicas: 0\n      update_config:\n        order: stop-first\n', true).svc('s');
    expect(d).toMatchObject({ replicas: 0, resources: { memory: '1g', cpus: 2 }, deploy: { strategy: 'stop-first' } });
    // A value Orca refuses (memory below Docker's minimum, 5000 replicas) is a note.
    const r = run('services:\n  s:\n    image: i\n    mem_limit: 1m\n    scale: 5000\n', true);
    expect(r.svc('s').resources).toBeUndefined();
    expect(r.svc('s').replicas).toBeUndefined();
    expect(notesOf(r.t)).toEqual([expect.stringMatching(/^4: services\.s\.mem_limit: not translated \(resources\.memory must be at least 6m/), expect.stringMatching(/^5: services\.s\.scale: not translated \(replicas must be at most 1000/)]);
  });

  it('anchors and merge keys are followed, and notes point at the service that uses them', () => {
    const { svc, t } = run('x-base: &base\n  image: base:1\n  restart: always\n  logging: {driver: none}\nservices:\n  a:\n    <<: *base\n    command: ["a"]\n  b:\n    <<: *base\n', true);
    expect(svc('a')).toMatchObject({ image: 'base:1', command: ['a'], restart: { policy: 'always' } });
    expect(svc('b')).toMatchObject({ image: 'base:1' });
    expect(noteAt(t, 'services.a.logging')?.line).toBe(4); // the anchored key's own line
  });

  it('service names: made DNS labels when they are not; a clash or nothing left is an error with the line', () => {
    const { svc, t } = run('names.yml');
    expect(svc('web-app').image).toBe('example/web:1');
    expect(svc('api-v2').image).toBe('example/api:2');
    expect(notesOf(t)).toEqual([expect.stringMatching(/^2: services\.Web_App: renamed to "web-app"/), expect.stringMatching(/^4: services\.api\.v2: renamed to "api-v2"/)]);
    const clash = translateCompose(readFileSync(join(FIX, 'name-clash.yml'), 'utf8'), { file: 'c.yml', dir: '.', absDir: ABS });
    expect(clash).toEqual({ ok: false, line: 4, message: 'services "web_app" and "web-app" both become "web-app" (an Orca service name is a DNS label); rename one' });
    const none = translateCompose('services:\n  "___":\n    image: x\n', { file: 'c.yml', dir: '.', absDir: ABS });
    expect(none).toMatchObject({ ok: false, line: 2, message: expect.stringMatching(/no DNS label can be made/) });
    expect(dnsLabel('My.Service_1')).toBe('my-service-1');
    expect(dnsLabel('a'.repeat(80))).toHaveLength(63);
  });

  it('hostile or wrong input: not YAML, not a mapping, no services, alias bombs, deep nesting, 5 MB', () => {
    const tr = (text: string) => translateCompose(text, { file: 'c.yml', dir: '.', absDir: ABS });
    expect(tr(readFileSync(join(FIX, 'not-yaml.yml'), 'utf8'))).toMatchObject({ ok: false, line: 5, message: expect.stringMatching(/^not valid YAML: Missing closing "quote/) });
    expect(tr(readFileSync(join(FIX, 'list.yml'), 'utf8'))).toEqual({ ok: false, line: 1, message: 'not a Compose file: the document is a list, not a mapping with services' });
    expect(tr('')).toMatchObject({ ok: false, message: expect.stringMatching(/document is empty/) });
    expect(tr('just a string')).toMatchObject({ ok: false, message: expect.stringMatching(/document is a string/) });
    expect(tr('version: "3"\nvolumes: {}\n')).toMatchObject({ ok: false, message: 'not a Compose file: no services (a mapping of service names)' });
    expect(tr('services:\n  web: [1]\n')).toMatchObject({ ok: false, line: 2, message: 'service "web" is not a mapping' });
    expect(tr('services:\n  web:\n    image: a\n    image: b\n')).toMatchObject({ ok: false, line: 4, message: expect.stringMatching(/unique/) });
    expect(tr(readFileSync(join(FIX, 'alias-bomb.yml'), 'utf8'))).toMatchObject({ ok: false, message: expect.stringMatching(/aliases expand too much/) });
    expect(tr('['.repeat(100_000))).toMatchObject({ ok: false });
    const big = `services:\n  web:\n    image: x\n    environment:\n${'      - A=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n'.repeat(100_000)}`;
    expect(big.length).toBeGreaterThan(5_000_000);
    expect(tr(big)).toEqual({ ok: false, message: 'larger than 1024 KiB, the most orca import compose reads' });
  });

  it('splits command strings as Compose does, and reads Go durations', () => {
    expect(splitCommand(`sh -c 'echo "hi there"' a\\ b "x\\"y"`)).toEqual(['sh', '-c', 'echo "hi there"', 'a b', 'x"y']);
    expect(splitCommand('')).toEqual([]);
    expect(splitCommand("unterminated 'quote")).toBeNull();
    expect(parseDuration('1m30s')).toBe(90);
    expect(parseDuration('1h')).toBe(3600);
    expect(parseDuration('250ms')).toBe(0.25);
    expect(parseDuration('1.5s')).toBe(1.5);
    expect(parseDuration(10)).toBe(10);
    expect(parseDuration('10')).toBe(10);
    for (const bad of ['', 'soon', '10x', '-1s', null, {}]) expect(parseDuration(bad), String(bad)).toBeNull();
  });
});
