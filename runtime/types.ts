/**
 * The Runtime port: the narrow slice of a container engine that Orca needs.
 * DockerRuntime (the only file that imports dockerode) and FakeRuntime implement it and
 * pass one contract suite. Every mutating call is idempotent.
 */

import type { Listener } from './listeners.js';

export type { Listener };

export interface ContainerSpec {
  /** Container name; Orca uses the instance id. */
  name: string;
  image: string;
  command?: string[];
  entrypoint?: string[];
  env: Record<string, string>;
  /** All labels, orca.* included (see runtime/labels.ts). */
  labels: Record<string, string>;
  /**
   * Container port to publish (TCP) on hostIp with an ephemeral host port: the service port,
   * reported as hostIp/hostPort. The runtime records it in the orca.port label (LABEL.port).
   */
  port?: number;
  /**
   * More container ports to publish (TCP) on hostIp, each with its own ephemeral host port
   * (health probes on a port other than `port`). Duplicates, and `port` itself, are ignored.
   * Reported in ObservedContainer.ports only.
   */
  extraPorts?: number[];
  /** Address published ports bind to (the node's advertise address). */
  hostIp: string;
  memoryBytes?: number;
  /** CPUs, fractional (0.5). */
  cpus?: number;
  /** Docker's init as PID 1. */
  init: boolean;
  /** SIGTERM → SIGKILL grace used by stop. */
  stopGraceSecs: number;
  /**
   * A user-defined network the container is created attached to (instead of the engine's
   * default one), with these DNS aliases: it never starts without them. The network must exist
   * (see Runtime.ensureNetwork): a missing one is ORCA_RUNTIME_NOT_FOUND.
   */
  network?: { name: string; aliases: string[] };
  /**
   * Host names the container's /etc/hosts maps to its node's gateway address: the gateway of
   * `network` when it has one (where the node's proxy listens, SPEC §3.8), else Docker's
   * `host-gateway`.
   */
  gatewayHosts?: string[];
  /**
   * Named volumes and host paths mounted into the container. A `volume` source is a volume name
   * (make it first with Runtime.ensureVolume: the engine would make a missing one unlabelled);
   * a `bind` source is an absolute host path that must exist.
   */
  mounts?: MountSpec[];
}

/** One mount of a container. */
export interface MountSpec {
  type: 'volume' | 'bind';
  source: string;
  /** Absolute path inside the container. */
  target: string;
  readOnly: boolean;
}

/** A named volume as the engine shows it now. */
export interface ObservedVolume {
  name: string;
  labels: Record<string, string>;
  /** Bytes used, when the engine knows it (Docker only computes it for `docker system df`); else null. */
  sizeBytes: number | null;
}

/** A network as the engine shows it now. */
export interface ObservedNetwork {
  id: string;
  name: string;
  /** "bridge" for the networks Orca makes. */
  driver: string;
  labels: Record<string, string>;
  /** Ids of the running containers attached to it (the engine keeps endpoints only while a container runs). */
  containers: string[];
  /**
   * The network's gateway address on the host (its IPv4 one when it has several), or null when
   * the engine gives none: what `orca.internal` is in its containers, where the node's proxy listens.
   */
  gateway: string | null;
}

export type ContainerStatus = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

export interface ObservedContainer {
  id: string;
  name: string;
  image: string;
  labels: Record<string, string>;
  status: ContainerStatus;
  /** Exit code of the last run, when it has exited. */
  exitCode: number | null;
  /** The last run was OOM-killed; false while running or never started. */
  oomKilled: boolean;
  /** ISO-8601, or null if never started. */
  startedAt: string | null;
  /** ISO-8601 end of the last run (kept after a restart, as Docker does), or null. */
  finishedAt: string | null;
  createdAt: string;
  /** Published address of `port` (never of an extra port), like 127.0.0.1:49153, once running. */
  hostIp: string | null;
  hostPort: number | null;
  /**
   * Every published container port (`port` and extraPorts) → its host port on hostIp (the
   * spec's), keyed by the container port as a string ("80"), once running; {} when none is
   * published or the container is not running.
   */
  ports: Record<string, number>;
  /** Docker HEALTHCHECK status, when the image defines one. */
  health: 'starting' | 'healthy' | 'unhealthy' | null;
  /** Error Docker recorded when the container failed to start. */
  error: string | null;
}

export type RuntimeEventKind = 'create' | 'start' | 'die' | 'oom' | 'kill' | 'stop' | 'destroy' | 'health_status';

export interface RuntimeEvent {
  kind: RuntimeEventKind;
  containerId: string;
  labels: Record<string, string>;
  /** ms since epoch as reported by the engine. */
  timeMs: number;
  exitCode?: number;
  health?: 'healthy' | 'unhealthy' | 'starting';
}

/** The outcome of Runtime.exec. */
export interface ExecResult {
  /** Exit code of the command; null when it timed out. */
  exitCode: number | null;
  /** stdout and stderr interleaved as they arrived, at most 64 KiB (the rest is dropped). */
  output: string;
  /** The command did not finish within timeoutMs (it may still be running in the container). */
  timedOut: boolean;
}

/** Most bytes of output Runtime.exec keeps. */
export const EXEC_OUTPUT_LIMIT = 64 * 1024;

export interface LogOptions {
  tail?: number;
  follow?: boolean;
  signal?: AbortSignal;
}

export interface Runtime {
  /** Resolves when the engine answers; throws OrcaError ORCA_RUNTIME_UNAVAILABLE otherwise. */
  ping(): Promise<void>;
  /** True when the image is present locally (images are never pulled). */
  hasImage(image: string): Promise<boolean>;
  /** TCP ports the image declares (EXPOSE), sorted; [] when none. ORCA_IMAGE_MISSING if absent. */
  imageExposedPorts(image: string): Promise<number[]>;
  /** HEALTHCHECK defined by an image, if any. */
  imageHealthcheck(image: string): Promise<boolean>;

  /**
   * Creates (does not start) a container. Idempotent: if a container with this name exists
   * and carries the same orca.instance label, returns its id. If the name is taken by any
   * other container, throws ORCA_RUNTIME_CONFLICT (never force-removes). ORCA_IMAGE_MISSING
   * when the image is not present.
   */
  create(spec: ContainerSpec): Promise<string>;
  /** Starts; already running is success. ORCA_RUNTIME_NOT_FOUND if the container is gone. */
  start(id: string): Promise<void>;
  /** SIGTERM, then SIGKILL after graceSecs. Stopped or missing is success. */
  stop(id: string, graceSecs: number): Promise<void>;
  /** Sends a signal to the main process (tests and benchmarks). Missing or not running: ORCA_RUNTIME_NOT_FOUND. */
  kill(id: string, signal: string): Promise<void>;
  /** Removes a stopped container; missing is success. With force, removes a running one too (only for orphans). */
  remove(id: string, opts?: { force?: boolean }): Promise<void>;
  /**
   * Makes sure a bridge network of this name exists: creates it with these labels when there is
   * none (true), uses the one there is when it is a bridge, labelled or not (false; never
   * relabels or removes it). A network of that name with another driver: ORCA_RUNTIME_CONFLICT.
   * Idempotent, also when two callers race.
   */
  ensureNetwork(name: string, labels: Record<string, string>): Promise<boolean>;
  /** The network of this exact name, or undefined when there is none. */
  inspectNetwork(name: string): Promise<ObservedNetwork | undefined>;
  /**
   * Attaches a container (running or not) to a network with these DNS aliases. Already attached
   * is success (its aliases are left as they are). Missing container or network: ORCA_RUNTIME_NOT_FOUND.
   */
  connect(containerId: string, network: string, aliases: string[]): Promise<void>;
  /**
   * Makes sure a named volume exists: creates it with these labels when there is none (true);
   * one of that name already there is used as it is (false; never relabelled, never emptied).
   * Idempotent, also when two callers race.
   */
  ensureVolume(name: string, labels: Record<string, string>): Promise<boolean>;
  /** Volumes whose labels include every given label. */
  listVolumes(labels: Record<string, string>): Promise<ObservedVolume[]>;
  /**
   * Removes a volume and its data. Missing is success; one a container (in any state) still
   * mounts: ORCA_RUNTIME_CONFLICT, as the engine refuses it.
   */
  removeVolume(name: string): Promise<void>;
  /** Containers whose labels include every given label (all states). */
  list(labels: Record<string, string>): Promise<ObservedContainer[]>;
  /** undefined when there is no such container. */
  inspect(id: string): Promise<ObservedContainer | undefined>;
  /**
   * Runs command (argv, no shell unless it is `sh -c ...`) inside a running container, as
   * `docker exec` does, for exec probes. Resolves with the exit code and the combined output.
   * After timeoutMs it resolves with { exitCode: null, timedOut: true } and the output so far;
   * the process may linger in the container (Docker cannot kill an exec), until it ends or the
   * container stops. A command that cannot be executed is a non-zero exit code (126/127), not
   * an error. Missing or not running container: ORCA_RUNTIME_NOT_FOUND. Not idempotent: it
   * runs the command each time.
   */
  exec(id: string, command: string[], timeoutMs: number): Promise<ExecResult>;
  /**
   * TCP sockets listening inside the running container's network namespace (address and port),
   * read without running anything in the container and without dialling it. Proves what a
   * connection to the published host port cannot: that the app, not Docker's forwarder, accepts.
   * Missing or not running container: ORCA_RUNTIME_NOT_FOUND. ORCA_RUNTIME_UNAVAILABLE when this
   * process may not read the container's socket table (the caller falls back to connecting).
   */
  listeners(id: string): Promise<Listener[]>;
  /** Combined stdout/stderr as text lines. With follow, streams until the container stops or the signal aborts. */
  logs(id: string, opts: LogOptions): AsyncIterable<string>;
  /**
   * Container events filtered by labels. The iterable ends (or throws) when the stream
   * breaks; callers reconnect and resync.
   */
  events(labels: Record<string, string>, signal: AbortSignal): AsyncIterable<RuntimeEvent>;
}
