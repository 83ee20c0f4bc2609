/**
 * The services of a Compose translation as manifest TOML, with comments where Orca works
 * differently (routes instead of host ports, volumes per slot, probes that act). Pure.
 */
import { tomlKey, tomlString } from '../render.js';
import type { ServiceOut } from './translate.js';

/** Fields in SPEC §2 order; tables among them become `[service.x]` sections. */
const ORDER = ['name', 'image', 'command', 'entrypoint', 'env', 'replicas', 'port', 'stop_grace_secs', 'init', 'labels', 'placement', 'volumes', 'mounts', 'secrets', 'secret_env', 'route', 'resources', 'readiness', 'liveness', 'restart', 'deploy'];
const SECTIONS = new Set(['route', 'resources', 'readiness', 'liveness', 'restart', 'deploy']);

export function renderComposeToml(services: readonly ServiceOut[], file: string): string {
  const out: string[] = [
    `# Translated from ${oneLine(file)} by \`orca import compose\`.`,
    '# Keys it could not translate are listed on stderr with their lines.',
    '# Orca restarts exited instances (restart.policy = "always") unless a service says',
    '# otherwise; Compose restarts nothing unless told to.',
  ];
  for (const s of services) {
    out.push('', '[[service]]');
    const sections: string[] = [];
    for (const key of ORDER) {
      const v = s.fields[key];
      if (v === undefined) continue;
      const comment = (s.comments[key] ?? []).map((l) => `# ${oneLine(l)}`);
      if (SECTIONS.has(key) && isTable(v)) {
        sections.push('', ...comment, `[service.${key}]`, ...Object.entries(v).map(([k, x]) => `${tomlKey(k)} = ${value(x)}`));
      } else {
        out.push(...comment, `${tomlKey(key)} = ${value(v)}`);
      }
    }
    out.push(...sections);
  }
  return `${out.join('\n')}\n`;
}

const isTable = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
/** A comment stays one line whatever a name holds. */
const oneLine = (s: string) => s.replace(/[\r\n\u2028\u2029]/g, ' ');

function value(v: unknown): string {
  if (typeof v === 'string') return tomlString(v);
  // String(), not TOML.stringify (which writes 8_000): finite numbers only reach here.
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(value).join(', ')}]`;
  if (isTable(v)) {
    const entries = Object.entries(v).map(([k, x]) => `${tomlKey(k)} = ${value(x)}`);
    return entries.length === 0 ? '{}' : `{ ${entries.join(', ')} }`;
  }
  throw new Error(`compose render: cannot write ${typeof v}`);
}
