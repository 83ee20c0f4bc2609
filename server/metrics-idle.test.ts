import { createRequire } from 'node:module';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../core/defaults.js';
import { Metrics } from './metrics.js';

// prom-client reaches perf_hooks through require(): the same module object as here.
const perfHooks = createRequire(import.meta.url)('node:perf_hooks') as typeof import('node:perf_hooks');
const original = perfHooks.monitorEventLoopDelay;
afterEach(() => {
  perfHooks.monitorEventLoopDelay = original;
});

describe('Metrics at idle', () => {
  it('samples event-loop lag at most once a second (not every 10 ms), and still reports it', async () => {
    const resolutions: number[] = [];
    perfHooks.monitorEventLoopDelay = (o) => {
      resolutions.push(o?.resolution ?? 10);
      return original(o);
    };
    const m = new Metrics({ instances: async () => [], nodes: () => [] });
    expect(resolutions).toEqual([DEFAULTS.metricsLoopSampleMs]);
    expect(DEFAULTS.metricsLoopSampleMs).toBeGreaterThanOrEqual(1000);
    expect(await m.registry.metrics()).toMatch(/^orca_process_nodejs_eventloop_lag_p99_seconds /m);
  });
});
