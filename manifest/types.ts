/**
 * The validated, normalised form of a `[[service]]` table (SPEC §2). Every default is filled
 * in, so two manifests that mean the same thing produce the same ServiceSpec and spec hash.
 * Durations are seconds (as written in the manifest); memory is bytes.
 */

export type RestartPolicy = 'always' | 'on-failure' | 'never';
export type DeployStrategy = 'start-first' | 'stop-first';

export type ProbeCheck =
  | { kind: 'http'; path: string; port?: number }
  | { kind: 'tcp'; port?: number }
  | { kind: 'exec'; command: string[] };

export interface ProbeSpec {
  check: ProbeCheck;
  intervalSecs: number;
  timeoutSecs: number;
  failureThreshold: number;
  successThreshold: number;
  initialDelaySecs: number;
  /**
   * Not from manifests: the implicit readiness check's (DEFAULTS.implicitTcpReadiness). Until the
   * probe first passes it also looks this often between its interval checks; such a look counts
   * only when it passes (failures keep the interval's cadence), so an instance is ready soon after
   * it listens, not up to a whole interval later.
   */
  startIntervalSecs?: number;
}

export interface MountSpec {
  host: string;
  path: string;
  readOnly: boolean;
}

export interface ServiceSpec {
  name: string;
  image: string;
  command?: string[];
  entrypoint?: string[];
  env: Record<string, string>;
  replicas: number;
  port?: number;
  stopGraceSecs: number;
  init: boolean;
  labels: Record<string, string>;
  placement?: { node?: string; labels?: Record<string, string> };
  /** Named volumes: volume name → container path; one Docker volume per replica slot (SPEC §3.8). Absent when none. */
  volumes?: Record<string, string>;
  /** Host paths mounted into the container, in manifest order (SPEC §3.8). Absent when none. */
  mounts?: MountSpec[];
  /** Secret names delivered as files under /run/secrets, sorted (SPEC §3.9). Absent when none. */
  secrets?: string[];
  /** Environment variable → secret name (SPEC §3.9). Absent when none. */
  secretEnv?: Record<string, string>;
  /** `tls` absent: plain HTTP only (`tls = "off"`); acme or manual: HTTPS at the edge (SPEC §3.12). */
  route?: { host: string; path: string; tls?: RouteTls };
  resources: { memoryBytes?: number; cpus?: number };
  readiness?: ProbeSpec;
  liveness?: ProbeSpec;
  restart: {
    policy: RestartPolicy;
    backoffInitialSecs: number;
    backoffMaxSecs: number;
    resetAfterSecs: number;
  };
  deploy: {
    strategy: DeployStrategy;
    readyTimeoutSecs: number;
  };
}

/** One service as parsed from a file, with where it came from (for error messages). */
export interface ParsedService {
  spec: ServiceSpec;
  file: string;
}

/** How a route's HTTPS certificate is obtained (SPEC §3.12); `off` is stored as no `tls`. */
export type RouteTls = 'acme' | 'manual';
