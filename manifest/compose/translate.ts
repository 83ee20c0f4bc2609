/**
 * A Compose file → Orca services (`orca import compose`), pure: no file is read, nothing runs.
 * Everything that has an Orca meaning is translated; every key that has none is named in a
 * note with its line and why. Values are checked one field at a time against the manifest's
 * own schema, so a value Orca would refuse becomes a note rather than a broken manifest.
 *
 * Mapping (SPEC §2 fields): image, command/entrypoint (strings split as Compose does),
 * environment (list or map) → env, the first TCP container port of ports/expose → port, a
 * published HTTP port → a route `<service>.localhost` (Orca publishes no fixed host port; its
 * proxy routes by Host header), named volumes → volumes (one per replica slot), bind mounts →
 * mounts, healthcheck → readiness and liveness exec probes, restart → restart.policy,
 * deploy.replicas/scale → replicas, memory and cpu limits → resources, update order →
 * deploy.strategy, stop_grace_period, init, labels, secrets (with the commands to set them).
 */
import { posix } from 'node:path';
import { serviceSchema } from '../schema.js';
import { LIMITS } from '../limits.js';
import { readComposeText, type Path } from './source.js';
import { DEPLOY_REASONS, SERVICE_REASONS, TOP_REASONS } from './reasons.js';
import { dnsLabel, parseDuration, parsePort, parseVolume, splitCommand, type PortMapping } from './values.js';

export interface Note {
  line: number;
  /** The Compose key, dotted: `services.web.build`. */
  path: string;
  message: string;
}

export interface ServiceOut {
  name: string;
  /** Manifest fields (snake_case, as in a TOML file). */
  fields: Record<string, unknown>;
  /** Comment lines to print above a field or section. */
  comments: Record<string, string[]>;
}

export interface ComposeTranslation {
  services: ServiceOut[];
  notes: Note[];
  /** Shell commands that store the secrets the services name. */
  secretCommands: string[];
}

export interface TranslateOptions {
  /** The file as the user named it (for nothing but messages). */
  file: string;
  /** The Compose file's directory as given (relative paths of secret files are shown from it). */
  dir: string;
  /** The same directory, absolute (bind mounts become absolute host paths). */
  absDir: string;
}

export type TranslateResult = { ok: true; value: ComposeTranslation } | { ok: false; line?: number; message: string };

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Container ports of protocols that are not HTTP: published, they get no route. */
const NON_HTTP_PORTS = new Set([21, 22, 23, 25, 53, 110, 143, 389, 465, 514, 587, 636, 993, 995, 1433, 1521, 1883, 2181, 2379, 3306, 4222, 4369, 5432, 5672, 6379, 6380, 8883, 9042, 9092, 11211, 25672, 26257, 27017]);

/** Compose's healthcheck defaults (Docker's): applied explicitly, since Orca's differ. */
const HC_DEFAULTS = { intervalSecs: 30, timeoutSecs: 30, retries: 3 };
const MIN_SECS = 0.05;

export function translateCompose(text: string, opts: TranslateOptions): TranslateResult {
  const src = readComposeText(text);
  if (!src.ok) return src;
  const { value, lineOf } = src.source;
  if (!isObj(value)) {
    const what = Array.isArray(value) ? 'a list' : value === null || value === undefined ? 'empty' : `a ${typeof value}`;
    return { ok: false, line: 1, message: `not a Compose file: the document is ${what}, not a mapping with services` };
  }
  const servicesRaw = value.services;
  if (!isObj(servicesRaw) || Object.keys(servicesRaw).length === 0) {
    return { ok: false, line: lineOf(['services']), message: 'not a Compose file: no services (a mapping of service names)' };
  }
  if (Object.keys(servicesRaw).length > LIMITS.servicesPerFile) {
    return { ok: false, line: lineOf(['services']), message: `more than ${LIMITS.servicesPerFile} services, the most one manifest holds` };
  }
  const t = new Translator(value, lineOf, opts);
  // Service names first: a name Orca cannot take is renamed, a clash after renaming is an error.
  const names = new Map<string, string>();
  const owner = new Map<string, string>();
  for (const composeName of Object.keys(servicesRaw)) {
    const name = dnsLabel(composeName);
    if (!name) return { ok: false, line: lineOf(['services', composeName]), message: `service "${composeName}": no DNS label can be made of its name; rename it` };
    const prev = owner.get(name);
    if (prev !== undefined) {
      return { ok: false, line: lineOf(['services', composeName]), message: `services "${prev}" and "${composeName}" both become "${name}" (an Orca service name is a DNS label); rename one` };
    }
    owner.set(name, composeName);
    names.set(composeName, name);
    if (name !== composeName) t.note(['services', composeName], `renamed to "${name}" (an Orca service name is a DNS label: lower case, digits and "-")`);
  }
  for (const [key, v] of Object.entries(value)) t.topKey(key, v);
  const services: ServiceOut[] = [];
  for (const [composeName, raw] of Object.entries(servicesRaw)) {
    if (!isObj(raw)) return { ok: false, line: lineOf(['services', composeName]), message: `service "${composeName}" is not a mapping` };
    services.push(t.service(composeName, names.get(composeName)!, raw));
  }
  return { ok: true, value: { services, notes: t.notes.sort((a, b) => a.line - b.line), secretCommands: [...t.secretCommands.values()] } };
}

class Translator {
  readonly notes: Note[] = [];
  readonly secretCommands = new Map<string, string>();
  private readonly project: string;

  constructor(
    private readonly doc: Obj,
    private readonly lineOf: (p: Path) => number,
    private readonly opts: TranslateOptions,
  ) {
    const fromDir = posix.basename(opts.absDir.replace(/\\/g, '/'));
    this.project = (typeof doc.name === 'string' ? dnsLabel(doc.name) : null) ?? dnsLabel(fromDir) ?? 'compose';
  }

  note(path: Path, message: string): void {
    const dotted = path.map((s) => (typeof s === 'number' ? `[${s}]` : `.${s}`)).join('').replace(/^\./, '');
    this.notes.push({ line: this.lineOf(path), path: dotted, message });
  }

  untranslated(path: Path, reason: string): void {
    this.note(path, `not translated (${reason})`);
  }

  /** A string as Orca will take it: `$$` is Compose's literal `$`; `${VAR}` is not interpolated here. */
  lit(s: string, path: Path): string {
    // `${VAR:-default}` and `${VAR-default}`: what Compose gives with VAR unset.
    const parts = s.split('$$').map((part) =>
      part.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*):?-([^}$]*)\}/g, (whole: string, _v: string, dflt: string) => {
        this.note(path, `${whole} written as "${dflt}", its default (Orca does not interpolate; check the value)`);
        return dflt;
      }),
    );
    const vars = parts.join('').match(/\$(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)/g);
    if (vars) this.note(path, `kept as written: ${vars.slice(0, 3).join(', ')} is not interpolated (Orca takes values literally; write the value)`);
    return parts.join('$');
  }

  topKey(key: string, v: unknown): void {
    if (key.startsWith('x-') || key === 'services' || key === 'version' || key === 'name' || key === 'secrets') return;
    if (key === 'volumes') {
      if (!isObj(v)) return;
      for (const [name, def] of Object.entries(v)) {
        if (!isObj(def)) continue;
        for (const opt of Object.keys(def)) {
          this.untranslated(['volumes', name, opt], opt === 'external' ? 'Orca makes its own volumes, one per replica slot; copy the data of the existing one in' : 'Orca makes local Docker volumes, one per replica slot');
        }
      }
      return;
    }
    this.untranslated([key], TOP_REASONS[key] ?? 'unknown to orca import compose');
  }

  /** True when the manifest's schema takes `value` for `key`; otherwise a note says why not. */
  private fits(key: string, value: unknown, path: Path): boolean {
    const shape = serviceSchema.shape as Record<string, { safeParse(v: unknown): { success: boolean; error?: { issues: Array<{ message: string; path: PropertyKey[] }> } } }>;
    const r = shape[key]!.safeParse(value);
    if (r.success) return true;
    const issue = r.error?.issues[0];
    const where = issue && issue.path.length > 0 ? `${key}.${issue.path.map(String).join('.')}` : key;
    this.untranslated(path, `${where} ${issue?.message ?? 'is not valid'}`);
    return false;
  }

  service(composeName: string, name: string, s: Obj): ServiceOut {
    const at = (...rest: Array<string | number>): Path => ['services', composeName, ...rest];
    const f: Obj = { name };
    const comments: Record<string, string[]> = {};
    // image
    if (typeof s.image === 'string' && s.image !== '') {
      const image = this.lit(s.image, at('image'));
      if (this.fits('image', image, at('image'))) f.image = image;
    }
    if (f.image === undefined) {
      f.image = `${this.project}-${name}`;
      comments.image = [`No image in Compose: "${f.image}" is the name \`docker compose build\` gives it; build or load it on every node.`];
      if (s.build === undefined) this.note(at(), `has no image: set to "${f.image}"; change it to the image to run`);
    }
    if (s.build !== undefined) this.untranslated(at('build'), `${SERVICE_REASONS.build}${s.image === undefined ? `: \`docker compose build\` tags it ${f.image}, used as image` : ''}`);
    // command and entrypoint
    for (const key of ['command', 'entrypoint'] as const) {
      const v = s[key];
      if (v === undefined || v === null) continue;
      let words: string[] | null = null;
      if (typeof v === 'string') words = splitCommand(v);
      else if (Array.isArray(v) && v.every((w) => typeof w === 'string' || typeof w === 'number')) words = v.map(String);
      if (!words) this.untranslated(at(key), 'not a list of words, nor a string Compose could split');
      else if (words.length === 0) this.untranslated(at(key), `an empty ${key} (the image's own one runs)`);
      else {
        const out = words.map((w, i) => this.lit(w, at(key, ...(Array.isArray(v) ? [i] : []))));
        if (this.fits(key, out, at(key))) f[key] = out;
      }
    }
    this.environment(s, f, at);
    this.replicas(s, f, at);
    this.ports(s, f, comments, at, name);
    if (s.stop_grace_period !== undefined) {
      const secs = parseDuration(s.stop_grace_period);
      if (secs === null) this.untranslated(at('stop_grace_period'), 'not a duration like "10s"');
      else if (this.fits('stop_grace_secs', secs, at('stop_grace_period'))) f.stop_grace_secs = secs;
    }
    if (s.init !== undefined) {
      if (typeof s.init === 'boolean') f.init = s.init;
      else this.untranslated(at('init'), 'not true or false');
    }
    this.labels(s, f, at);
    this.volumes(s, f, comments, at, name);
    this.secrets(s, f, at);
    this.resources(s, f, at);
    this.healthcheck(s, f, comments, at);
    this.restart(s, f, at);
    this.deploy(s, f, at);
    for (const key of Object.keys(s)) {
      if (HANDLED.has(key) || key.startsWith('x-')) continue;
      this.untranslated(at(key), SERVICE_REASONS[key] ?? 'unknown to orca import compose');
    }
    return { name, fields: f, comments };
  }

  private environment(s: Obj, f: Obj, at: (...r: Array<string | number>) => Path): void {
    const env: Record<string, string> = {};
    const take = (key: string, v: unknown, path: Path) => {
      if (v === null || v === undefined) {
        this.untranslated(path, 'its value comes from the shell that runs docker compose; write it in env');
        return;
      }
      if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
        this.untranslated(path, 'not a string, number or boolean');
        return;
      }
      const value = this.lit(String(v), path);
      if (this.fits('env', { [key]: value }, path)) env[key] = value;
    };
    const e = s.environment;
    if (Array.isArray(e)) {
      e.forEach((item, i) => {
        if (typeof item !== 'string') return this.untranslated(at('environment', i), 'not a string "NAME=value"');
        const eq = item.indexOf('=');
        if (eq < 0) take(item, null, at('environment', i));
        else take(item.slice(0, eq), item.slice(eq + 1), at('environment', i));
      });
    } else if (isObj(e)) {
      for (const [k, v] of Object.entries(e)) take(k, v, at('environment', k));
    } else if (e !== undefined && e !== null) this.untranslated(at('environment'), 'not a list or a mapping');
    if (Object.keys(env).length > 0) f.env = env;
  }

  private replicas(s: Obj, f: Obj, at: (...r: Array<string | number>) => Path): void {
    const d = isObj(s.deploy) ? s.deploy : {};
    const [v, path] = d.replicas !== undefined ? [d.replicas, at('deploy', 'replicas')] : [s.scale, at('scale')];
    if (v === undefined) return;
    if (this.fits('replicas', v, path)) f.replicas = v;
  }

  private ports(s: Obj, f: Obj, comments: Record<string, string[]>, at: (...r: Array<string | number>) => Path, name: string): void {
    const entries: Array<{ m: PortMapping; path: Path }> = [];
    const ports = s.ports;
    if (Array.isArray(ports)) {
      ports.forEach((p, i) => {
        const m = parsePort(p);
        if (!m) this.untranslated(at('ports', i), 'not a port mapping like "8080:80" or { target = 80 }');
        else entries.push({ m, path: at('ports', i) });
      });
    } else if (ports !== undefined && ports !== null) this.untranslated(at('ports'), 'not a list');
    const expose = s.expose;
    if (Array.isArray(expose)) {
      expose.forEach((p, i) => {
        const m = parsePort(p);
        if (!m || m.published !== undefined) this.untranslated(at('expose', i), 'not a container port like "80"');
        else entries.push({ m, path: at('expose', i) });
      });
    } else if (expose !== undefined && expose !== null) this.untranslated(at('expose'), 'not a list');
    let chosen: { m: PortMapping; path: Path } | undefined;
    for (const e of entries) {
      const { m, path } = e;
      if (m.protocol !== 'tcp') {
        this.untranslated(path, `${m.protocol.toUpperCase()}: Orca's port takes TCP traffic and its proxy HTTP`);
        continue;
      }
      const single = m.target.from === m.target.to;
      if (!chosen && single) {
        chosen = e;
        continue;
      }
      if (chosen && single && m.target.from === chosen.m.target.from) {
        // The same container port published twice (say on two host addresses): one port, one route.
        if (m.published !== undefined && chosen.m.published === undefined) chosen = e;
        continue;
      }
      this.untranslated(path, single ? `Orca takes traffic on one port per service (port = ${chosen!.m.target.from}); other services still reach :${m.target.from} on the cluster network` : 'a range of ports: Orca takes traffic on one port per service');
    }
    if (!chosen) return;
    const port = chosen.m.target.from;
    f.port = port;
    const written = JSON.stringify(chosen.m.published !== undefined ? `${chosen.m.hostIp ? `${chosen.m.hostIp}:` : ''}${chosen.m.published}:${port}` : String(port));
    if (chosen.m.published === undefined) return;
    const http = chosen.m.appProtocol === undefined ? !NON_HTTP_PORTS.has(port) : /^(http|https|h2c?|ws|wss)$/i.test(chosen.m.appProtocol);
    if (!http) {
      this.untranslated(chosen.path, `host port ${chosen.m.published}: Orca publishes no fixed host port and its proxy routes HTTP only; other services reach ${name}:${port} on the cluster network`);
      return;
    }
    f.route = { host: `${name}.localhost` };
    comments.route = [
      `From ports ${written}: Orca publishes no fixed host port. Its proxy (orca server`,
      '--proxy-listen, default 127.0.0.1:8080) routes by Host header to ready instances:',
      `  curl -H 'Host: ${name}.localhost' http://127.0.0.1:8080/`,
      'Set host to the name clients use (browsers resolve *.localhost to this machine).',
    ];
    if (chosen.m.hostIp !== undefined && chosen.m.hostIp !== '127.0.0.1' && chosen.m.hostIp !== '::1' && chosen.m.hostIp !== 'localhost') {
      this.note(chosen.path, `host address ${chosen.m.hostIp}: the proxy listens where orca server --proxy-listen says (127.0.0.1 by default)`);
    }
  }

  private labels(s: Obj, f: Obj, at: (...r: Array<string | number>) => Path): void {
    const labels: Record<string, string> = {};
    const take = (k: string, v: unknown, path: Path) => {
      if (k.toLowerCase().startsWith('orca.')) return this.untranslated(path, 'labels starting with "orca." are reserved for Orca');
      const value = v === null || v === undefined ? '' : String(v);
      if (this.fits('labels', { [k]: value }, path)) labels[k] = value;
    };
    if (Array.isArray(s.labels)) {
      s.labels.forEach((item, i) => {
        if (typeof item !== 'string') return this.untranslated(at('labels', i), 'not a string "key=value"');
        const eq = item.indexOf('=');
        take(eq < 0 ? item : item.slice(0, eq), eq < 0 ? '' : item.slice(eq + 1), at('labels', i));
      });
    } else if (isObj(s.labels)) {
      for (const [k, v] of Object.entries(s.labels)) take(k, v, at('labels', k));
    } else if (s.labels !== undefined && s.labels !== null) this.untranslated(at('labels'), 'not a list or a mapping');
    if (Object.keys(labels).length > 0) f.labels = labels;
  }

  private volumes(s: Obj, f: Obj, comments: Record<string, string[]>, at: (...r: Array<string | number>) => Path, name: string): void {
    if (s.volumes === undefined || s.volumes === null) return;
    if (!Array.isArray(s.volumes)) return this.untranslated(at('volumes'), 'not a list');
    const volumes: Record<string, string> = {};
    const mounts: Array<Record<string, unknown>> = [];
    const sources: string[] = [];
    s.volumes.forEach((raw, i) => {
      const path = at('volumes', i);
      const v = parseVolume(raw);
      if (!v) return this.untranslated(path, 'not a volume like "data:/var/lib/data" or "./dir:/dir:ro"');
      if (v.kind === 'anonymous') return this.untranslated(path, `anonymous volume at ${v.target}: give it a name to keep its data across replacements`);
      if (v.kind === 'tmpfs' || v.kind === 'other') return this.untranslated(path, `${v.kind === 'tmpfs' ? 'tmpfs' : v.type} mounts are not supported by Orca's manifest`);
      const target = posix.normalize(v.target).replace(/(.)\/$/, '$1');
      if (v.kind === 'volume') {
        const vol = dnsLabel(v.source);
        if (!vol) return this.untranslated(path, `no DNS label can be made of the volume name "${v.source}"`);
        if (v.readOnly) this.note(path, 'mounted read-write: Orca\'s named volumes have no read-only mode');
        if (volumes[vol] !== undefined) return this.untranslated(path, `a second mount of volume ${vol}: Orca mounts a named volume once`);
        if (this.fits('volumes', { [vol]: target }, path)) {
          volumes[vol] = target;
          sources.push(v.source === vol ? vol : `${v.source} (as ${vol})`);
        }
        return;
      }
      if (v.source.startsWith('~')) return this.untranslated(path, `host path ${v.source}: write it as an absolute path`);
      const host = posix.resolve(this.opts.absDir, v.source).replace(/(.)\/$/, '$1');
      const mount = { host, path: target, read_only: v.readOnly };
      if (this.fits('mounts', [mount], path)) {
        mounts.push(mount);
        if (!posix.isAbsolute(v.source)) this.note(path, `host path ${v.source} resolved to ${host} (beside the Compose file)`);
      }
    });
    if (Object.keys(volumes).length > 0) {
      f.volumes = volumes;
      comments.volumes = [
        `From Compose volumes ${sources.join(', ')}: Orca makes one Docker volume per replica slot`,
        `(orca-<cluster>-${name}-<volume>-<slot>), kept across restarts and deletes. Compose's`,
        'volumes are not reused: copy their data in if you need it.',
      ];
    }
    if (mounts.length > 0) {
      f.mounts = mounts;
      comments.mounts = ['Host paths: a node runs this service only if orca agent/server --allow-host-path allows each one.'];
    }
  }

  private secrets(s: Obj, f: Obj, at: (...r: Array<string | number>) => Path): void {
    if (s.secrets === undefined || s.secrets === null) return;
    if (!Array.isArray(s.secrets)) return this.untranslated(at('secrets'), 'not a list');
    const top = isObj(this.doc.secrets) ? this.doc.secrets : {};
    const names: string[] = [];
    s.secrets.forEach((raw, i) => {
      const path = at('secrets', i);
      const source = typeof raw === 'string' ? raw : isObj(raw) && typeof raw.source === 'string' ? raw.source : undefined;
      if (!source) return this.untranslated(path, 'not a secret name or { source = … }');
      const name = dnsLabel(source);
      if (!name) return this.untranslated(path, `no DNS label can be made of the secret name "${source}"`);
      if (names.includes(name)) return;
      if (name !== source) {
        this.note(path, `secret renamed to "${name}" (a DNS label): it is delivered at /run/secrets/${name}, not /run/secrets/${source}`);
        this.renameSecretPaths(f, source, name);
      }
      if (isObj(raw)) {
        const target = raw.target;
        if (typeof target === 'string' && target !== source && target !== `/run/secrets/${source}`) {
          this.untranslated([...path, 'target'], `Orca delivers every secret at /run/secrets/<name>: here /run/secrets/${name}`);
        }
        for (const k of ['uid', 'gid', 'mode']) if (raw[k] !== undefined) this.untranslated([...path, k], 'Orca delivers secrets read-only (0400) to the container\'s user');
      }
      names.push(name);
      this.secretCommand(name, source, top[source]);
    });
    if (names.length > 0 && this.fits('secrets', names, at('secrets'))) f.secrets = names;
  }

  /** Env values that name `/run/secrets/<old>` (say POSTGRES_PASSWORD_FILE) follow the rename. */
  private renameSecretPaths(f: Obj, from: string, to: string): void {
    if (!isObj(f.env)) return;
    for (const [k, v] of Object.entries(f.env)) {
      if (typeof v === 'string' && v.includes(`/run/secrets/${from}`)) (f.env as Obj)[k] = v.split(`/run/secrets/${from}`).join(`/run/secrets/${to}`);
    }
  }

  private secretCommand(name: string, source: string, def: unknown): void {
    if (this.secretCommands.has(name)) return;
    const q = (s: string) => (/^[\w./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`);
    if (isObj(def) && typeof def.file === 'string') {
      const file = posix.isAbsolute(def.file) ? def.file : posix.normalize(posix.join(this.opts.dir, def.file));
      this.secretCommands.set(name, `orca secret set ${name} -f ${q(file)}`);
    } else if (isObj(def) && typeof def.environment === 'string') {
      this.secretCommands.set(name, `printf '%s' "$${def.environment}" | orca secret set ${name}`);
    } else {
      const why = isObj(def) && def.external ? 'external in Compose' : def === undefined ? `not declared under secrets: in ${posix.basename(this.opts.file)}` : 'its value is not in the Compose file';
      this.secretCommands.set(name, `orca secret set ${name} -f FILE    # ${source}: ${why}`);
    }
  }

  private resources(s: Obj, f: Obj, at: (...r: Array<string | number>) => Path): void {
    const limits = isObj(s.deploy) && isObj(s.deploy.resources) && isObj(s.deploy.resources.limits) ? s.deploy.resources.limits : {};
    const r: Obj = {};
    const mem: [unknown, Path] = limits.memory !== undefined ? [limits.memory, at('deploy', 'resources', 'limits', 'memory')] : [s.mem_limit, at('mem_limit')];
    if (mem[0] !== undefined && this.fits('resources', { memory: mem[0] }, mem[1])) r.memory = mem[0];
    const cpus: [unknown, Path] = limits.cpus !== undefined ? [limits.cpus, at('deploy', 'resources', 'limits', 'cpus')] : [s.cpus, at('cpus')];
    if (cpus[0] !== undefined) {
      const n = typeof cpus[0] === 'string' ? Number(cpus[0]) : cpus[0];
      if (this.fits('resources', { cpus: n }, cpus[1])) r.cpus = n;
    }
    for (const k of Object.keys(limits)) if (k !== 'memory' && k !== 'cpus') this.untranslated(at('deploy', 'resources', 'limits', k), "not supported by Orca's manifest");
    if (isObj(s.deploy) && isObj(s.deploy.resources) && s.deploy.resources.reservations !== undefined) {
      this.untranslated(at('deploy', 'resources', 'reservations'), 'Orca sets limits only');
    }
    if (Object.keys(r).length > 0) f.resources = r;
  }

  private healthcheck(s: Obj, f: Obj, comments: Record<string, string[]>, at: (...r: Array<string | number>) => Path): void {
    const h = s.healthcheck;
    if (h === undefined || h === null) return;
    if (!isObj(h)) return this.untranslated(at('healthcheck'), 'not a mapping');
    const test = h.test;
    if (h.disable === true || (Array.isArray(test) && test[0] === 'NONE')) {
      return this.untranslated(at('healthcheck'), 'disabled: Orca has no probe to turn off (it does not act on the image\'s HEALTHCHECK)');
    }
    let exec: string[] | null = null;
    if (typeof test === 'string') exec = ['/bin/sh', '-c', test];
    else if (Array.isArray(test) && test.every((x) => typeof x === 'string')) {
      if (test[0] === 'CMD' && test.length > 1) exec = test.slice(1) as string[];
      else if (test[0] === 'CMD-SHELL' && test.length === 2) exec = ['/bin/sh', '-c', test[1] as string];
    }
    if (!exec) return this.untranslated(at('healthcheck', 'test'), 'not ["CMD", …], ["CMD-SHELL", "…"] or a string');
    exec = exec.map((w) => this.lit(w, at('healthcheck', 'test')));
    const secs = (key: string, dflt: number, min: number): number => {
      if (h[key] === undefined) return dflt;
      const v = parseDuration(h[key]);
      if (v === null) {
        this.untranslated(at('healthcheck', key), `not a duration like "10s"; ${dflt} s used`);
        return dflt;
      }
      if (v < min) {
        this.note(at('healthcheck', key), `raised to ${min} s, Orca's least`);
        return min;
      }
      return v;
    };
    const interval = secs('interval', HC_DEFAULTS.intervalSecs, MIN_SECS);
    const timeout = secs('timeout', HC_DEFAULTS.timeoutSecs, MIN_SECS);
    const startPeriod = secs('start_period', 0, 0);
    let retries = HC_DEFAULTS.retries;
    if (h.retries !== undefined) {
      if (typeof h.retries === 'number' && Number.isInteger(h.retries) && h.retries >= 1) retries = h.retries;
      else this.untranslated(at('healthcheck', 'retries'), `not an integer ≥ 1; ${retries} used`);
    }
    if (h.start_interval !== undefined) this.untranslated(at('healthcheck', 'start_interval'), 'Orca checks at interval_secs from the start');
    const probe = { exec, interval_secs: interval, timeout_secs: timeout, failure_threshold: retries };
    const readiness = { ...probe, initial_delay_secs: 0 };
    const liveness = { ...probe, initial_delay_secs: startPeriod };
    if (this.fits('readiness', readiness, at('healthcheck')) && this.fits('liveness', liveness, at('healthcheck'))) {
      f.readiness = readiness;
      f.liveness = liveness;
      comments.readiness = [
        'From the Compose healthcheck. Compose only reports health; Orca acts on it: readiness',
        'decides whether an instance gets traffic, liveness restarts it after failure_threshold',
        'failures in a row (start_period becomes the liveness initial_delay_secs).',
      ];
    }
  }

  private restart(s: Obj, f: Obj, at: (...r: Array<string | number>) => Path): void {
    const rp = isObj(s.deploy) && isObj(s.deploy.restart_policy) ? s.deploy.restart_policy : undefined;
    let policy: string | undefined;
    if (s.restart !== undefined) {
      const v = String(s.restart);
      const path = at('restart');
      if (v === 'no' || v === 'false') policy = 'never';
      else if (v === 'always') policy = 'always';
      else if (v === 'unless-stopped') {
        policy = 'always';
        this.note(path, '"unless-stopped" → "always": to stop a service in Orca, set replicas = 0');
      } else if (/^on-failure(:\d+)?$/.test(v)) {
        policy = 'on-failure';
        if (v.includes(':')) this.note(path, 'the retry limit is dropped: Orca retries with backoff, forever');
      } else this.untranslated(path, 'not no, always, on-failure or unless-stopped');
      if (rp && rp.condition !== undefined) this.untranslated(at('deploy', 'restart_policy', 'condition'), 'restart: is used');
    } else if (rp && rp.condition !== undefined) {
      const c = String(rp.condition);
      policy = c === 'none' ? 'never' : c === 'on-failure' ? 'on-failure' : c === 'any' ? 'always' : undefined;
      if (!policy) this.untranslated(at('deploy', 'restart_policy', 'condition'), 'not none, on-failure or any');
    }
    if (rp) {
      for (const k of Object.keys(rp)) {
        if (k === 'condition') continue;
        this.untranslated(at('deploy', 'restart_policy', k), k === 'max_attempts' ? 'Orca retries with backoff, forever' : 'Orca backs off from restart.backoff_initial_secs to backoff_max_secs');
      }
    }
    if (policy) f.restart = { policy };
  }

  private deploy(s: Obj, f: Obj, at: (...r: Array<string | number>) => Path): void {
    const d = s.deploy;
    if (d === undefined || d === null) return;
    if (!isObj(d)) return this.untranslated(at('deploy'), 'not a mapping');
    for (const [k, v] of Object.entries(d)) {
      if (k === 'replicas' || k === 'resources' || k === 'restart_policy') continue;
      if (k === 'update_config' && isObj(v)) {
        for (const [uk, uv] of Object.entries(v)) {
          if (uk === 'order' && (uv === 'start-first' || uv === 'stop-first')) f.deploy = { strategy: uv };
          else this.untranslated(at('deploy', 'update_config', uk), 'Orca rolls out one instance at a time; a new one must be ready within deploy.ready_timeout_secs');
        }
        continue;
      }
      this.untranslated(at('deploy', k), DEPLOY_REASONS[k] ?? "not supported by Orca's manifest");
    }
  }
}

/** Service keys translated (or deliberately dropped) above. */
const HANDLED = new Set([
  'image', 'build', 'command', 'entrypoint', 'environment', 'ports', 'expose', 'stop_grace_period', 'init', 'labels', 'volumes',
  'secrets', 'mem_limit', 'cpus', 'healthcheck', 'restart', 'deploy', 'scale',
]);
