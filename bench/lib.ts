import { spawnSync } from 'node:child_process';
import { systemClock } from '../core/clock.js';

/** Percentile (0..100) of a list of numbers, nearest-rank. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

export const median = (v: number[]) => percentile(v, 50);

/** Wall time of a command in ms (spawned, waited for). Throws when it fails. */
export function timeCommand(cmd: string, args: string[], env: Record<string, string> = {}): number {
  const t0 = systemClock.now();
  const r = spawnSync(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = systemClock.now() - t0;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr.toString()}`);
  return ms;
}

/** Prints rows as an aligned table with a title. */
export function report(title: string, header: string[], rows: Array<Array<string | number>>): void {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? fmt(c) : c)));
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  process.stdout.write(`\n${title}\n${line(header)}\n${cells.map(line).join('\n')}\n`);
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return '-';
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

/** Whether this file is the script node was asked to run. */
export function isMain(metaUrl: string): boolean {
  return process.argv[1] !== undefined && metaUrl === new URL(`file://${process.argv[1]}`).href;
}

/** HTTP status of a GET, or undefined when there is no answer within timeoutMs (refused, reset, slow). */
export async function httpStatus(url: string, timeoutMs: number): Promise<number | undefined> {
  const abort = new AbortController();
  const timer = systemClock.setTimeout(() => abort.abort(), timeoutMs);
  try {
    const res = await fetch(url, { signal: abort.signal });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return undefined;
  } finally {
    systemClock.clearTimeout(timer);
  }
}

/** Numbers as a compact space-separated series (rounded), with `-` for NaN. */
export function series(values: number[]): string {
  return values.map((v) => (Number.isFinite(v) ? v.toFixed(0) : '-')).join(' ');
}
