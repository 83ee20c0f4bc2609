/**
 * The Runtime port over the Docker Engine API (dockerode). The only file that uses dockerode
 * (loaded through ./dockerode.ts, which defers ssh2). Every mutating call is idempotent; errors
 * are OrcaErrors (see docker-mapping.ts). Images are never pulled: a missing image is
 * ORCA_IMAGE_MISSING; images Orca needs for tests and examples are built locally by
 * ensureImage from an ImageDef.
 */
import { Readable, type Duplex } from 'node:stream';
import { isIP } from 'node:net';
import type Docker from 'dockerode';
import { Dockerode } from './dockerode.js';
import { sleep, systemClock, type Clock, type TimerHandle } from '../core/clock.js';
import { readFile } from 'node:fs/promises';
import { parseProcNetTcp, type Listener } from './listeners.js';
import { OrcaError, errorMessage } from '../core/errors.js';
import {
  dockerMessage,
  httpStatus,
  observedFromInspect,
  runtimeEventFromDocker,
  toOrcaError,
  type DockerEvent,
  type DockerInspect,
} from './docker-mapping.js';
import { IMAGE_HASH_LABEL, imageContextTar, imageDefHash, type ImageDef } from './image-def.js';
import { LABEL } from './labels.js';
import { imageMissing } from './runtime-errors.js';
import { labelsWithPort, publishedContainerPorts } from './ports.js';
import { demuxDockerStream, dockerLogLines, splitLines } from './streams.js';
import { EXEC_OUTPUT_LIMIT, type ContainerSpec, type ExecResult, type LogOptions, type ObservedContainer, type ObservedNetwork, type ObservedVolume, type Runtime, type RuntimeEvent } from './types.js';

export interface DockerRuntimeOptions {
  /** Unix socket of the engine. Default: DOCKER_HOST when set, else /var/run/docker.sock. */
  socketPath?: string;
  /** Stamps the `since` of event subscriptions and times exec. Default: systemClock. */
  clock?: Clock;
}

/** Container events the port reports, filtered by the engine so healthcheck exec_* noise stays out. */
const EVENT_FILTER = ['create', 'start', 'die', 'oom', 'kill', 'stop', 'destroy', 'health_status'];
/** How often exec polls for the exit code when it is not recorded yet as the stream ends. */
const EXEC_INSPECT_POLL_MS = 10;
/** Longest Docker event line accepted (labels make them long; a cut line fails to parse). */
const EVENT_LINE_MAX_CHARS = 1024 * 1024;
/** Parallel inspects per list(). */
const INSPECT_CONCURRENCY = 16;
/**
 * How long a bridge network seen (inspected or ensured) counts as there for the creates that
 * follow: a burst of creates then asks Docker about it once, not twice per container (each
 * inspect lists every endpoint of the network). A create or start that fails forgets it, and so
 * does any inspect that finds it missing or changed (the network reconciler looks for itself).
 */
const NETWORK_SEEN_MS = 2_000;

export class DockerRuntime implements Runtime {
  private readonly docker: Docker;
  private readonly clock: Clock;
  /** ensureNetwork calls under way, by network name. */
  private readonly ensuring = new Map<string, Promise<boolean>>();
  /** Bridge networks seen lately, by name: when (performance.now) and their gateway. */
  private readonly networksSeen = new Map<string, { at: number; id: string; gateway: string | null }>();

  /** No I/O here; the first call connects. */
  constructor(opts: DockerRuntimeOptions = {}) {
    const fromEnv = process.env.DOCKER_HOST;
    this.docker = opts.socketPath
      ? new Dockerode({ socketPath: opts.socketPath })
      : fromEnv
        ? new Dockerode()
        : new Dockerode({ socketPath: '/var/run/docker.sock' });
    this.clock = opts.clock ?? systemClock;
  }

  async ping(): Promise<void> {
    try {
      await this.docker.ping();
    } catch (e) {
      const err = toOrcaError(e, 'ping');
      if (err.code === 'ORCA_RUNTIME_UNAVAILABLE') throw err;
      throw new OrcaError('ORCA_RUNTIME_UNAVAILABLE', err.message, { transient: true, cause: e });
    }
  }

  async hasImage(image: string): Promise<boolean> {
    return (await this.imageInfo(image)) !== undefined;
  }

  /** True when the image defines a HEALTHCHECK (other than NONE). ORCA_IMAGE_MISSING if absent. */
  async imageExposedPorts(image: string): Promise<number[]> {
    const info = await this.imageInfo(image);
    if (!info) throw imageMissing(image);
    return exposedTcpPorts(Object.keys(info.Config?.ExposedPorts ?? {}));
  }

  async imageHealthcheck(image: string): Promise<boolean> {
    const info = await this.imageInfo(image);
    if (!info) throw imageMissing(image);
    const test = info.Config?.Healthcheck?.Test;
    return Array.isArray(test) && test.length > 0 && test[0] !== 'NONE';
  }

  /**
   * Creates (never starts) the container, with port and extraPorts published on spec.hostIp on
   * ephemeral host ports, no restart policy (Orca heals), and swap disabled under a memory
   * limit so the limit is the limit. Idempotent by name + orca.instance label. The primary port
   * is recorded in the orca.port label (see ports.ts). With spec.network the container is on
   * that network only (NetworkMode), its aliases set at creation; gatewayHosts become
   * ExtraHosts entries `name:<the network's gateway>` (where the node's proxy listens for
   * `orca.internal`), or `name:host-gateway` without a network or when it has no gateway.
   */
  async create(spec: ContainerSpec): Promise<string> {
    const portKeys = publishedContainerPorts(spec).map((p) => `${p}/tcp`);
    const gatewayHosts = spec.gatewayHosts ?? [];
    const gateway = gatewayHosts.length > 0 && spec.network ? await this.networkGateway(spec.network.name) : null;
    const options: Docker.ContainerCreateOptions = {
      name: spec.name,
      Image: spec.image,
      Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
      Labels: labelsWithPort(spec),
      StopTimeout: Math.max(0, Math.ceil(spec.stopGraceSecs)),
      HostConfig: {
        Init: spec.init,
        RestartPolicy: { Name: 'no' },
        ...(portKeys.length > 0
          ? { PortBindings: Object.fromEntries(portKeys.map((k) => [k, [{ HostIp: spec.hostIp, HostPort: '' }]])) }
          : {}),
        ...(spec.memoryBytes !== undefined ? { Memory: spec.memoryBytes, MemorySwap: spec.memoryBytes } : {}),
        ...(spec.cpus !== undefined ? { NanoCpus: Math.round(spec.cpus * 1e9) } : {}),
        ...(spec.network ? { NetworkMode: spec.network.name } : {}),
        ...(gatewayHosts.length > 0 ? { ExtraHosts: gatewayHosts.map((h) => `${h}:${gateway ?? 'host-gateway'}`) } : {}),
        ...(spec.mounts && spec.mounts.length > 0
          ? { Mounts: spec.mounts.map((m) => ({ Type: m.type, Source: m.source, Target: m.target, ReadOnly: m.readOnly })) }
          : {}),
      },
      ...(spec.network ? { NetworkingConfig: { EndpointsConfig: { [spec.network.name]: { Aliases: [...spec.network.aliases] } } } } : {}),
      ...(portKeys.length > 0 ? { ExposedPorts: Object.fromEntries(portKeys.map((k) => [k, {}])) } : {}),
      ...(spec.command ? { Cmd: spec.command } : {}),
      ...(spec.entrypoint ? { Entrypoint: spec.entrypoint } : {}),
    };
    for (let attempt = 0; ; attempt++) {
      try {
        const c = await this.docker.createContainer(options);
        return c.id;
      } catch (e) {
        if (spec.network) this.networksSeen.delete(spec.network.name);
        const status = httpStatus(e);
        // Engines newer than API 1.41 check the network at create (1.41 does at start).
        if (status === 404 && spec.network && /network/i.test(dockerMessage(e))) {
          throw new OrcaError('ORCA_RUNTIME_NOT_FOUND', `create ${spec.name}: network ${spec.network.name} not found`, { cause: e });
        }
        if (status === 404) throw imageMissing(spec.image, e);
        if (status !== 409) throw toOrcaError(e, `create ${spec.name}`);
      }
      // The name is taken: ours (a retried create) or someone else's.
      const existing = await this.inspectRaw(spec.name);
      if (!existing) {
        if (attempt < 2) continue; // removed in between: try again
        throw new OrcaError('ORCA_RUNTIME_CONFLICT', `create ${spec.name}: name keeps conflicting`, { transient: true });
      }
      const mine = spec.labels[LABEL.instance];
      if (mine !== undefined && existing.Config.Labels?.[LABEL.instance] === mine) return existing.Id;
      throw new OrcaError(
        'ORCA_RUNTIME_CONFLICT',
        `create ${spec.name}: the name is taken by container ${existing.Id.slice(0, 12)} of another instance; Orca never removes it to free the name`,
        { details: { existingId: existing.Id } },
      );
    }
  }

  /**
   * Already running is success (HTTP 304). ORCA_RUNTIME_NOT_FOUND when gone. A command that
   * cannot run: ORCA_RUNTIME_FAILED (terminal), the container stays `created` with `error` set.
   */
  async start(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).start();
    } catch (e) {
      if (httpStatus(e) === 304) return;
      // API 1.41 checks the network at start: look at it again before the next create.
      this.networksSeen.clear();
      const err = toOrcaError(e, `start ${id}`);
      // A command that cannot be executed fails the same way on every try.
      if (err.code === 'ORCA_RUNTIME_FAILED' && /OCI runtime/i.test(err.message)) {
        throw new OrcaError('ORCA_RUNTIME_FAILED', err.message, { cause: e, details: err.details });
      }
      throw err;
    }
  }

  /** SIGTERM, SIGKILL after graceSecs rounded up to whole seconds. Stopped or missing: success. */
  async stop(id: string, graceSecs: number): Promise<void> {
    try {
      await this.docker.getContainer(id).stop({ t: Math.max(0, Math.ceil(graceSecs)) });
    } catch (e) {
      const s = httpStatus(e);
      if (s === 304 || s === 404) return;
      throw toOrcaError(e, `stop ${id}`);
    }
  }

  /** Signal to PID 1 (docker-init when init is on, which forwards it). Missing or not running: NOT_FOUND. */
  async kill(id: string, signal: string): Promise<void> {
    try {
      await this.docker.getContainer(id).kill({ signal });
    } catch (e) {
      const s = httpStatus(e);
      if (s === 404 || s === 409) {
        throw new OrcaError('ORCA_RUNTIME_NOT_FOUND', `kill ${id}: ${dockerMessage(e)}`, { cause: e });
      }
      throw toOrcaError(e, `kill ${id}`);
    }
  }

  /**
   * Removes the container (and its anonymous volumes). Missing or already being removed:
   * success. Running without force: ORCA_RUNTIME_CONFLICT.
   */
  async remove(id: string, opts: { force?: boolean } = {}): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({ force: opts.force ?? false, v: true });
    } catch (e) {
      const s = httpStatus(e);
      if (s === 404) return;
      if (s === 409 && /already in progress/i.test(dockerMessage(e))) return;
      throw toOrcaError(e, `remove ${id}`);
    }
  }

  /**
   * One ensure per name at a time in this process: API 1.41's duplicate check is not atomic, so
   * two creates at once (two replicas created concurrently) would make two networks of one name.
   * A caller that joins one under way gets false (it did not create it) or its error.
   */
  ensureNetwork(name: string, labels: Record<string, string>): Promise<boolean> {
    if (this.recentlySeen(name)) return Promise.resolve(false);
    const under = this.ensuring.get(name);
    if (under) return under.then(() => false);
    const p = this.ensureNetworkNow(name, labels).finally(() => this.ensuring.delete(name));
    this.ensuring.set(name, p);
    return p;
  }

  private async ensureNetworkNow(name: string, labels: Record<string, string>): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      let existing: ObservedNetwork | undefined;
      try {
        existing = await this.inspectNetwork(name);
      } catch (e) {
        // Two networks of this name (an earlier race): settle on one and look again (once).
        if (attempt > 0 || !/ambiguous/i.test(errorMessage(e))) throw e;
        await this.settleDuplicateNetworks(name);
        continue;
      }
      if (existing) {
        if (existing.driver === 'bridge') return false;
        throw new OrcaError(
          'ORCA_RUNTIME_CONFLICT',
          `network ${name} exists with driver ${existing.driver}${existing.labels[LABEL.cluster] === undefined ? ' and was not made by Orca' : ''}; Orca needs a bridge network of that name and never removes one: remove or rename it`,
        );
      }
      try {
        // CheckDuplicate: API 1.41 would otherwise make a second network with the same name.
        await this.docker.createNetwork({ Name: name, Driver: 'bridge', Labels: { ...labels }, CheckDuplicate: true });
        // CheckDuplicate is not atomic: two processes (two agents of one cluster on one Docker
        // host) can each make one. Both then keep the same one and remove the other.
        await this.settleDuplicateNetworks(name);
        return true;
      } catch (e) {
        // Made by someone else in between: look again (once).
        if (httpStatus(e) !== 409 || attempt > 0) throw toOrcaError(e, `create network ${name}`);
      }
    }
  }

  /**
   * When several networks carry exactly this name (a create race), keeps the oldest (then the
   * lowest id) and removes the others that Orca made and nothing is attached to. Every process
   * that settles picks the same one. Never throws: a loser that cannot be removed now is left
   * for the next pass.
   */
  private async settleDuplicateNetworks(name: string): Promise<void> {
    let list: Array<{ Id: string; Name: string; Created?: string; Labels?: Record<string, string> | null }>;
    try {
      list = (await this.docker.listNetworks({ filters: { name: [name] } })) as typeof list;
    } catch {
      return;
    }
    const same = list.filter((n) => n.Name === name);
    if (same.length < 2) return;
    same.sort((a, b) => (a.Created ?? '').localeCompare(b.Created ?? '') || a.Id.localeCompare(b.Id));
    for (const extra of same.slice(1)) {
      if (extra.Labels?.[LABEL.cluster] === undefined) continue;
      try {
        const info = (await this.docker.getNetwork(extra.Id).inspect()) as { Containers?: Record<string, unknown> | null };
        if (Object.keys(info.Containers ?? {}).length > 0) continue;
        await this.docker.getNetwork(extra.Id).remove();
      } catch {
        // Removed by the other process, or in use since: fine either way.
      }
    }
  }

  /** A bridge network of this name was seen within NETWORK_SEEN_MS. */
  private recentlySeen(name: string): { id: string; gateway: string | null } | undefined {
    const seen = this.networksSeen.get(name);
    if (seen && performance.now() - seen.at < NETWORK_SEEN_MS) return seen;
    return undefined;
  }

  /** The gateway of a network (null when it has none, or cannot be inspected), recently seen or inspected now. */
  private async networkGateway(name: string): Promise<string | null> {
    const seen = this.recentlySeen(name);
    if (seen) return seen.gateway;
    return (await this.inspectNetwork(name).catch(() => undefined))?.gateway ?? null;
  }

  async inspectNetwork(name: string): Promise<ObservedNetwork | undefined> {
    const observed = await this.inspectNetworkNow(name).catch((e: unknown) => {
      this.networksSeen.delete(name);
      throw e;
    });
    if (observed?.driver === 'bridge') this.networksSeen.set(name, { at: performance.now(), id: observed.id, gateway: observed.gateway });
    else this.networksSeen.delete(name);
    return observed;
  }

  private async inspectNetworkNow(name: string): Promise<ObservedNetwork | undefined> {
    let raw: {
      Id: string;
      Name: string;
      Driver: string;
      Labels?: Record<string, string> | null;
      Containers?: Record<string, unknown> | null;
      IPAM?: { Config?: Array<{ Gateway?: string }> | null } | null;
    };
    try {
      raw = (await this.docker.getNetwork(name).inspect()) as typeof raw;
    } catch (e) {
      if (httpStatus(e) === 404) return undefined;
      throw toOrcaError(e, `inspect network ${name}`);
    }
    // The engine also resolves id prefixes; only the exact name counts.
    if (raw.Name !== name) return undefined;
    const gateways = (raw.IPAM?.Config ?? []).map((c) => c.Gateway).filter((g): g is string => typeof g === 'string' && isIP(g) !== 0);
    const gateway = gateways.find((g) => isIP(g) === 4) ?? gateways[0] ?? null;
    // Keys are container ids; Docker lists an endpoint whose container it no longer knows (left by a
    // forced disconnect racing a connect) as "ep-<endpoint id>": not a container, left out.
    return { id: raw.Id, name: raw.Name, driver: raw.Driver, labels: { ...(raw.Labels ?? {}) }, containers: Object.keys(raw.Containers ?? {}).filter((k) => !k.startsWith('ep-')), gateway };
  }

  async connect(containerId: string, network: string, aliases: string[]): Promise<void> {
    try {
      await this.docker.getNetwork(network).connect({ Container: containerId, EndpointConfig: { Aliases: [...aliases] } });
    } catch (e) {
      const s = httpStatus(e);
      // 403 on API 1.41 (a conflict on later ones): "endpoint with name … already exists in network …".
      if ((s === 403 || s === 409 || s === 500) && /already exists/i.test(dockerMessage(e))) return;
      if (s === 404) throw new OrcaError('ORCA_RUNTIME_NOT_FOUND', `connect ${containerId} to ${network}: ${dockerMessage(e)}`, { cause: e });
      throw toOrcaError(e, `connect ${containerId} to ${network}`);
    }
  }

  async ensureVolume(name: string, labels: Record<string, string>): Promise<boolean> {
    if (await this.inspectVolume(name)) return false;
    try {
      // Creating a volume that exists returns it unchanged: a racing create is harmless.
      await this.docker.createVolume({ Name: name, Labels: { ...labels } });
      return true;
    } catch (e) {
      throw toOrcaError(e, `create volume ${name}`);
    }
  }

  private async inspectVolume(name: string): Promise<boolean> {
    try {
      await this.docker.getVolume(name).inspect();
      return true;
    } catch (e) {
      if (httpStatus(e) === 404) return false;
      throw toOrcaError(e, `inspect volume ${name}`);
    }
  }

  async listVolumes(labels: Record<string, string>): Promise<ObservedVolume[]> {
    let raw: { Volumes?: Array<{ Name: string; Labels?: Record<string, string> | null; UsageData?: { Size?: number } | null }> | null };
    try {
      raw = (await this.docker.listVolumes({ filters: JSON.stringify({ label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) }) })) as typeof raw;
    } catch (e) {
      throw toOrcaError(e, 'list volumes');
    }
    return (raw.Volumes ?? [])
      .map((v) => {
        const size = v.UsageData?.Size;
        return { name: v.Name, labels: { ...(v.Labels ?? {}) }, sizeBytes: typeof size === 'number' && size >= 0 ? size : null };
      })
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async removeVolume(name: string): Promise<void> {
    try {
      await this.docker.getVolume(name).remove();
    } catch (e) {
      const s = httpStatus(e);
      if (s === 404) return;
      if (s === 409) throw new OrcaError('ORCA_RUNTIME_CONFLICT', `remove volume ${name}: ${dockerMessage(e)}`, { cause: e });
      throw toOrcaError(e, `remove volume ${name}`);
    }
  }

  /**
   * Removes a network (tests and operators; the agent never removes its network). Missing is
   * success; one with containers attached: ORCA_RUNTIME_CONFLICT, as Docker refuses it.
   */
  async removeNetwork(name: string): Promise<void> {
    try {
      const existing = await this.inspectNetwork(name);
      if (!existing) return;
      this.networksSeen.delete(name);
      await this.docker.getNetwork(existing.id).remove();
    } catch (e) {
      this.networksSeen.delete(name);
      if (httpStatus(e) === 404) return;
      if (httpStatus(e) === 403) throw new OrcaError('ORCA_RUNTIME_CONFLICT', `remove network ${name}: ${dockerMessage(e)}`, { cause: e });
      throw toOrcaError(e, `remove network ${name}`);
    }
  }

  /**
   * All containers (any state) carrying every given label, newest first. One list call plus one
   * inspect per container (in parallel): only inspect has exit code, OOM flag and timestamps.
   * A container removed between the two calls is left out.
   */
  async list(labels: Record<string, string>): Promise<ObservedContainer[]> {
    let infos: Docker.ContainerInfo[];
    try {
      infos = await this.docker.listContainers({ all: true, filters: { label: labelFilters(labels) } });
    } catch (e) {
      throw toOrcaError(e, 'list containers');
    }
    const inspected = await mapLimit(infos, INSPECT_CONCURRENCY, (info) => this.inspectRaw(info.Id));
    return inspected.filter((c): c is DockerInspect => c !== undefined).map(observedFromInspect);
  }

  async inspect(id: string): Promise<ObservedContainer | undefined> {
    const raw = await this.inspectRaw(id);
    return raw && observedFromInspect(raw);
  }

  /**
   * `docker exec` without a TTY: creates the exec, starts it attached (hijacked stream), keeps
   * up to EXEC_OUTPUT_LIMIT bytes of the demultiplexed stdout/stderr, and reads the exit code
   * from the exec's inspect once the stream ends. After timeoutMs (on the clock) it gives up:
   * the stream is closed and { exitCode: null, timedOut: true } returned, but the process keeps
   * running in the container until it ends by itself or the container stops (the Engine API
   * has no way to kill an exec). ORCA_RUNTIME_NOT_FOUND when the container is missing or not
   * running (or stops before the exec starts).
   */
  async exec(id: string, command: string[], timeoutMs: number): Promise<ExecResult> {
    const ac = new AbortController();
    const output = new CappedOutput(EXEC_OUTPUT_LIMIT);
    let timer: TimerHandle | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = this.clock.setTimeout(() => resolve('timeout'), Math.max(0, timeoutMs));
    });
    const work = this.runExec(id, command, ac.signal, output);
    try {
      const r = await Promise.race([work, timeout]);
      if (r !== 'timeout') return r;
      ac.abort();
      work.catch(() => undefined); // it fails or ends quietly once aborted; nobody waits for it
      return { exitCode: null, output: output.text(), timedOut: true };
    } finally {
      if (timer) this.clock.clearTimeout(timer);
    }
  }

  /**
   * Reads /proc/<main pid>/net/tcp and tcp6 on this host: the container's network namespace's
   * listening sockets (see runtime/listeners.ts). The agent runs beside the engine, as root.
   */
  async listeners(id: string): Promise<Listener[]> {
    const raw = await this.inspectRaw(id);
    const pid = raw?.State.Pid ?? 0;
    if (!raw || raw.State.Status !== 'running' || !(pid > 0)) {
      throw new OrcaError('ORCA_RUNTIME_NOT_FOUND', `listeners ${id}: container is ${raw ? raw.State.Status : 'missing'}`);
    }
    const tables = await Promise.all(
      ['tcp', 'tcp6'].map((t) =>
        readFile(`/proc/${pid}/net/${t}`, 'utf8').catch((err: NodeJS.ErrnoException) => {
          if (err.code === 'ENOENT' && t === 'tcp6') return ''; // IPv6 disabled in the kernel
          if (err.code === 'ENOENT' || err.code === 'ESRCH') throw new OrcaError('ORCA_RUNTIME_NOT_FOUND', `listeners ${id}: its process ended`, { cause: err });
          throw new OrcaError('ORCA_RUNTIME_UNAVAILABLE', `listeners ${id}: cannot read /proc/${pid}/net/${t} (${err.code})`, { cause: err, transient: true });
        }),
      ),
    );
    return tables.flatMap(parseProcNetTcp);
  }

  /**
   * Combined stdout/stderr lines. tail: last N lines (default all). follow: keeps streaming
   * until the container stops or opts.signal aborts (then the iterable just ends).
   * ORCA_RUNTIME_NOT_FOUND for a missing container.
   */
  logs(id: string, opts: LogOptions): AsyncIterable<string> {
    return this.logStream(id, opts);
  }

  /**
   * Container events carrying every given label, from the moment of this call on (the engine
   * replays what happened between the call and the connection, via `since`). Ends when the
   * engine closes the stream, throws (ORCA_RUNTIME_UNAVAILABLE etc.) when it breaks, and ends
   * quietly when signal aborts.
   */
  events(labels: Record<string, string>, signal: AbortSignal): AsyncIterable<RuntimeEvent> {
    return this.eventStream(labels, signal, this.clock.now());
  }

  /**
   * Builds def unless an image with its tag already carries its content hash. The build runs in
   * the engine from a `FROM scratch` context (no network). Throws ORCA_RUNTIME_FAILED with the
   * build's own error message when the build fails.
   */
  async ensureImage(def: ImageDef): Promise<{ built: boolean }> {
    const hash = await imageDefHash(def);
    const existing = await this.imageInfo(def.tag);
    if (existing?.Config?.Labels?.[IMAGE_HASH_LABEL] === hash) return { built: false };
    const context = await imageContextTar(def);
    let output: Array<{ error?: string; errorDetail?: { message?: string } }>;
    try {
      const stream = await this.docker.buildImage(Readable.from([context]), { t: def.tag, rm: true, forcerm: true });
      output = await new Promise((resolve, reject) => {
        this.docker.modem.followProgress(stream, (err, res) => (err ? reject(err) : resolve(res)));
      });
    } catch (e) {
      throw toOrcaError(e, `build image ${def.tag}`);
    }
    const failed = output.find((o) => o.error !== undefined || o.errorDetail !== undefined);
    if (failed) {
      const msg = failed.errorDetail?.message ?? failed.error ?? 'unknown error';
      throw new OrcaError('ORCA_RUNTIME_FAILED', `build image ${def.tag}: ${msg}`);
    }
    const built = await this.imageInfo(def.tag);
    if (built?.Config?.Labels?.[IMAGE_HASH_LABEL] !== hash) {
      throw new OrcaError('ORCA_RUNTIME_FAILED', `build image ${def.tag}: the built image does not carry the expected hash`);
    }
    return { built: true };
  }

  private async imageInfo(image: string): Promise<Docker.ImageInspectInfo | undefined> {
    try {
      return await this.docker.getImage(image).inspect();
    } catch (e) {
      if (httpStatus(e) === 404) return undefined;
      throw toOrcaError(e, `inspect image ${image}`);
    }
  }

  private async inspectRaw(idOrName: string): Promise<DockerInspect | undefined> {
    try {
      return (await this.docker.getContainer(idOrName).inspect()) as unknown as DockerInspect;
    } catch (e) {
      if (httpStatus(e) === 404) return undefined;
      throw toOrcaError(e, `inspect ${idOrName}`);
    }
  }

  private async runExec(id: string, command: string[], signal: AbortSignal, output: CappedOutput): Promise<ExecResult> {
    const what = `exec in ${id}`;
    const notRunning = (e: unknown) => {
      const s = httpStatus(e);
      // 404: no such container; 409: not running (or paused), also when it stopped before the start.
      if (s === 404 || s === 409) return new OrcaError('ORCA_RUNTIME_NOT_FOUND', `${what}: ${dockerMessage(e)}`, { cause: e });
      return toOrcaError(e, what);
    };
    let exec: Docker.Exec;
    let stream: Duplex;
    try {
      exec = await this.docker.getContainer(id).exec({ Cmd: command, AttachStdout: true, AttachStderr: true, abortSignal: signal });
      stream = await exec.start({ hijack: true, stdin: false, abortSignal: signal });
    } catch (e) {
      throw notRunning(e);
    }
    const onAbort = () => stream.destroy();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const frame of demuxDockerStream(stream as AsyncIterable<Buffer>)) output.push(frame.data);
    } catch (e) {
      if (!signal.aborted) throw toOrcaError(e, what);
    } finally {
      signal.removeEventListener('abort', onAbort);
      stream.destroy();
    }
    // The stream ends when the process does; the exit code may be recorded a moment later.
    for (;;) {
      if (signal.aborted) return { exitCode: null, output: output.text(), timedOut: true };
      let info: Docker.ExecInspectInfo;
      try {
        info = await exec.inspect({ abortSignal: signal });
      } catch (e) {
        if (signal.aborted) continue;
        throw toOrcaError(e, what);
      }
      if (!info.Running && info.ExitCode !== null) return { exitCode: info.ExitCode, output: output.text(), timedOut: false };
      await sleep(this.clock, EXEC_INSPECT_POLL_MS, signal).catch(() => undefined);
    }
  }

  private async *logStream(id: string, opts: LogOptions): AsyncGenerator<string> {
    const signal = opts.signal;
    if (signal?.aborted) return;
    const query = { stdout: true, stderr: true, follow: opts.follow ?? false, tail: opts.tail ?? 'all' };
    let stream: Readable;
    try {
      stream = await new Promise<Readable>((resolve, reject) => {
        this.docker.modem.dial(
          {
            path: `/containers/${encodeURIComponent(id)}/logs?`,
            method: 'GET',
            options: query,
            isStream: true,
            statusCodes: { 200: true, 404: 'no such container', 500: 'server error' },
            ...(signal ? { abortSignal: signal } : {}),
          },
          (err, res) => (err ? reject(err) : resolve(res as Readable)),
        );
      });
    } catch (e) {
      if (signal?.aborted) return;
      throw toOrcaError(e, `logs ${id}`);
    }
    yield* this.guarded(stream, signal, `logs ${id}`, dockerLogLines(stream));
  }

  private async *eventStream(labels: Record<string, string>, signal: AbortSignal, sinceMs: number): AsyncGenerator<RuntimeEvent> {
    if (signal.aborted) return;
    let stream: Readable;
    try {
      stream = (await this.docker.getEvents({
        since: (sinceMs / 1000).toFixed(3),
        filters: { type: ['container'], event: EVENT_FILTER, label: labelFilters(labels) },
        abortSignal: signal,
      } as unknown as Docker.GetEventsOptions)) as unknown as Readable;
    } catch (e) {
      if (signal.aborted) return;
      throw toOrcaError(e, 'events');
    }
    for await (const line of this.guarded(stream, signal, 'events', splitLines(stream, EVENT_LINE_MAX_CHARS))) {
      if (line.trim() === '') continue;
      let parsed: DockerEvent;
      try {
        parsed = JSON.parse(line) as DockerEvent;
      } catch (e) {
        throw new OrcaError('ORCA_RUNTIME_FAILED', `events: unparsable line from Docker: ${errorMessage(e)}`, { transient: true });
      }
      const ev = runtimeEventFromDocker(parsed);
      if (ev) yield ev;
    }
  }

  /**
   * Yields from `items` (read from `stream`), destroying the stream on abort or when the consumer
   * stops early. Errors after an abort end the iteration quietly; others become OrcaErrors.
   */
  private async *guarded<T>(stream: Readable, signal: AbortSignal | undefined, what: string, items: AsyncIterable<T>): AsyncGenerator<T> {
    const onAbort = () => stream.destroy();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const item of items) {
        if (signal?.aborted) return;
        yield item;
      }
    } catch (e) {
      if (signal?.aborted) return;
      throw toOrcaError(e, what);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      stream.destroy();
    }
  }
}


function labelFilters(labels: Record<string, string>): string[] {
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`);
}

/** Collects chunks up to a byte limit, dropping the rest (the stream is still read to its end). */
class CappedOutput {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly limit: number) {}

  push(chunk: Buffer): void {
    const room = this.limit - this.size;
    if (room <= 0) return;
    const kept = chunk.length > room ? chunk.subarray(0, room) : chunk;
    this.chunks.push(Buffer.from(kept));
    this.size += kept.length;
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/** Maps items with at most `limit` calls in flight; results keep input order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** "80/tcp", "53/udp" … → the TCP ports, sorted. */
function exposedTcpPorts(keys: string[]): number[] {
  const ports = keys.map((k) => k.split('/')).filter(([, proto]) => (proto ?? 'tcp') === 'tcp').map(([p]) => Number(p));
  return [...new Set(ports.filter((p) => Number.isInteger(p) && p > 0 && p <= 65535))].sort((a, b) => a - b);
}
