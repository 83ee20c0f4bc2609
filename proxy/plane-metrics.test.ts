import { describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { applyMetricsBatch, MAX_BATCH_SAMPLES, MetricsBatcher, type PlaneMetrics } from './plane-metrics.js';
import type { MetricsBatch } from './plane-messages.js';

function recorder() {
  const requests = new Map<string, number>();
  const upstream: Array<[string, number]> = [];
  const metrics: PlaneMetrics = {
    request: (route, status) => requests.set(`${route} ${status}`, (requests.get(`${route} ${status}`) ?? 0) + 1),
    requests: (route, status, count) => requests.set(`${route} ${status}`, (requests.get(`${route} ${status}`) ?? 0) + count),
    upstreamSeconds: (route, seconds) => upstream.push([route, seconds]),
  };
  return { metrics, requests, upstream };
}

describe('MetricsBatcher', () => {
  it('sends one batch flushMs after the first request, with counts by route and status and every upstream time', () => {
    const clock = new ManualClock();
    const sent: MetricsBatch[] = [];
    const b = new MetricsBatcher(clock, 100, (x) => sent.push(x));
    b.request('web', 200);
    b.request('web', 200);
    b.request('web', 502);
    b.request('-', 404);
    b.upstreamSeconds('web', 0.0012345);
    b.upstreamSeconds('web', 0.5);
    clock.advance(99);
    expect(sent).toEqual([]);
    clock.advance(1);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.requests).toEqual(expect.arrayContaining([['web', 200, 2], ['web', 502, 1], ['-', 404, 1]]));
    expect(sent[0]!.upstreamMicros).toEqual([['web', [1235, 500_000]]]);
  });

  it('sets no timer while idle and sends nothing empty', () => {
    const clock = new ManualClock();
    const sent: MetricsBatch[] = [];
    const b = new MetricsBatcher(clock, 100, (x) => sent.push(x));
    expect(clock.pending()).toBe(0);
    b.flush();
    expect(sent).toEqual([]);
    b.request('web', 200);
    clock.advance(100);
    clock.advance(1_000);
    expect(sent).toHaveLength(1);
    expect(clock.pending()).toBe(0);
  });

  it('sends early when MAX_BATCH_SAMPLES upstream times are held (a bounded buffer)', () => {
    const clock = new ManualClock();
    const sent: MetricsBatch[] = [];
    const b = new MetricsBatcher(clock, 100, (x) => sent.push(x));
    for (let i = 0; i < MAX_BATCH_SAMPLES; i++) b.upstreamSeconds('web', 0.001);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.upstreamMicros[0]![1]).toHaveLength(MAX_BATCH_SAMPLES);
    expect(clock.pending()).toBe(0);
  });
});

describe('applyMetricsBatch', () => {
  it('adds counts and upstream times; batches of several workers add up', () => {
    const r = recorder();
    applyMetricsBatch(r.metrics, { requests: [['web', 200, 3]], upstreamMicros: [['web', [1000, 2000]]] });
    applyMetricsBatch(r.metrics, { requests: [['web', 200, 4], ['-', 404, 1]], upstreamMicros: [['web', [500]]] });
    expect(Object.fromEntries(r.requests)).toEqual({ 'web 200': 7, '- 404': 1 });
    expect(r.upstream).toEqual([['web', 0.001], ['web', 0.002], ['web', 0.0005]]);
  });

  it('skips malformed entries and keeps the good ones', () => {
    const r = recorder();
    applyMetricsBatch(r.metrics, {
      requests: [['web', 200, 1], ['web', '200', 1], [5, 200, 1], ['web', 200, -1], 'x', ['web', 200, 1.5]] as never,
      upstreamMicros: [['web', [1000, -1, 'x', Infinity]], ['api', 'nope'], null] as never,
    });
    applyMetricsBatch(r.metrics, { requests: 'nope' } as never);
    expect(Object.fromEntries(r.requests)).toEqual({ 'web 200': 1 });
    expect(r.upstream).toEqual([['web', 0.001]]);
  });
});
