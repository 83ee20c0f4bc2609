/**
 * Which container ports a ContainerSpec publishes, and how the primary one (`port`) is recorded,
 * shared by DockerRuntime and FakeRuntime so both report the same ports and labels.
 */
import { LABEL } from './labels.js';
import type { ContainerSpec } from './types.js';

/** The container ports to publish: `port` first, then extraPorts, without duplicates. */
export function publishedContainerPorts(spec: Pick<ContainerSpec, 'port' | 'extraPorts'>): number[] {
  const out: number[] = [];
  for (const p of [...(spec.port === undefined ? [] : [spec.port]), ...(spec.extraPorts ?? [])]) {
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

/**
 * The labels a container is created with: spec.labels plus LABEL.port when anything is
 * published (the primary port, or '' when there are only extra ports). Docker reports published
 * ports as an unordered map, so this is how the primary port is told from the extras.
 */
export function labelsWithPort(spec: Pick<ContainerSpec, 'labels' | 'port' | 'extraPorts'>): Record<string, string> {
  if (publishedContainerPorts(spec).length === 0) return spec.labels;
  return { ...spec.labels, [LABEL.port]: spec.port === undefined ? '' : String(spec.port) };
}
