/**
 * Upper bounds for manifests (SPEC §2): on every number, on every string and collection, and on
 * the raw text itself, so that no manifest — mistaken or hostile — can make the parser, the
 * server or an agent run long, overflow its stack or store a value it cannot live with.
 * One place, so the CLI, the API server and the stored-spec check agree.
 */
export const LIMITS = {
  /**
   * A manifest file, in bytes (UTF-8) and in characters of text. A thousand services fit; the
   * TOML parser needs about a second per MiB on a small machine, so this keeps any file well
   * under a second.
   */
  fileBytes: 256 * 1024,
  /** Nesting of arrays, inline tables and dotted-key segments in the raw text. */
  depth: 16,
  /**
   * A bare key (or any bare word outside strings), in characters, checked before parsing. Looser
   * than the schema's own bounds on keys, so those report the field; this one stops only abuse.
   */
  bareWord: 1024,
  /** A single string literal (quoted key or value), in characters, checked before parsing; looser than the schema's bounds. */
  stringChars: 128 * 1024,
  /** Errors reported per file; the rest are counted in one last line. */
  errorsPerFile: 50,
  /** `[[service]]` tables per file. */
  servicesPerFile: 1000,

  replicas: 1000,
  durationSecs: 86_400,
  threshold: 1000,
  cpus: 1024,
  memoryBytes: 1024 ** 4,

  image: 512,
  /** Items of command, entrypoint and exec. */
  argCount: 1000,
  /** One item of command, entrypoint and exec; one env value. */
  argChars: 64 * 1024,
  envKeys: 1000,
  envKeyChars: 256,
  labelKeys: 1000,
  labelKeyChars: 256,
  labelValueChars: 4096,
  /** placement.node: a node name. */
  nodeNameChars: 253,
  routePathChars: 1024,
  probePathChars: 1024,
  /** Named volumes and host mounts of one service (SPEC §3.8). */
  volumes: 32,
  mounts: 32,
  /** A container or host path of a volume or mount. */
  pathChars: 1024,
  /** Secrets of one service, and variables of its secret_env (SPEC §3.9). */
  secrets: 64,
} as const;

/** Longest excerpt of user input quoted in an error message. */
export const EXCERPT_CHARS = 80;

/**
 * `s` itself when at most `max` characters, otherwise its first characters and "…" (the
 * result is at most `max` characters). Never splits a surrogate pair.
 */
export function excerpt(s: string, max: number = EXCERPT_CHARS): string {
  if (s.length <= max) return s;
  let end = Math.max(0, max - 1);
  const code = s.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end -= 1;
  return `${s.slice(0, end)}…`;
}
