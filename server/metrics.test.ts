import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Metrics, PROXY_UPSTREAM_BUCKETS } from './metrics.js';

/** The lines of an exposition that belong to the metrics named `prefix…`. */
const linesOf = (text: string, prefix: string) => text.split('\n').filter((l) => l.includes(prefix));

describe("the proxy's tallied metrics", () => {
  it("show exactly what prom-client's own Counter and Histogram show for the same requests", async () => {
    const metrics = new Metrics({ instances: async () => [], nodes: () => [] });
    const ref = new Registry();
    const counter = new Counter({ name: 'orca_proxy_requests_total', help: 'Proxied requests by route and status', labelNames: ['route', 'status'], registers: [ref] });
    const histogram = new Histogram({ name: 'orca_proxy_upstream_duration_seconds', help: 'Time to the upstream response headers', labelNames: ['route'], buckets: [...PROXY_UPSTREAM_BUCKETS], registers: [ref] });
    const samples = [0, 0.0004, 0.0005, 0.0007, 0.001, 0.003, 0.02, 0.3, 1, 4.9, 5, 7, 100];
    const routes = ['web', 'api', 'odd "route"\\n'];
    const scrape = async () => {
      const text = await metrics.text();
      const want = await ref.metrics();
      for (const prefix of ['orca_proxy_requests_total', 'orca_proxy_upstream_duration_seconds']) expect(linesOf(text.body, prefix)).toEqual(linesOf(want, prefix));
    };
    await scrape(); // nothing yet: the same headers, no samples
    for (const [i, route] of routes.entries()) {
      for (const s of samples.slice(i)) {
        metrics.proxyUpstreamSeconds(route, s);
        histogram.observe({ route }, s);
      }
      for (const status of [200, 200, 502, 404]) {
        metrics.proxyRequest(route, status);
        counter.inc({ route, status: String(status) });
      }
      metrics.proxyRequest(route, 499, 5);
      counter.inc({ route, status: '499' }, 5);
    }
    await scrape();
    // Counts go on adding up across scrapes.
    metrics.proxyRequest('web', 200, 3);
    counter.inc({ route: 'web', status: '200' }, 3);
    metrics.proxyUpstreamSeconds('web', 0.002);
    histogram.observe({ route: 'web' }, 0.002);
    await scrape();
    await scrape();
    expect((await metrics.text()).body).toContain('orca_proxy_requests_total{route="web",status="200"} 5');
  });
});
