import { Agent, request } from 'node:http';

/** A keep-alive HTTP client for the proxy, with the Host header set (fetch cannot set it). */
export function httpClient(proxy: string) {
  const [host, port] = proxy.split(':');
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  const get = (vhost: string, path = '/', timeoutMs = 5000) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host, port: Number(port), path, method: 'GET', agent, headers: { host: vhost }, timeout: timeoutMs }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end();
    });
  return { get, close: () => agent.destroy() };
}

/**
 * Sends sequential GETs until stop() is called or `maxRequests` (bounded in count and time);
 * counts what failed (a transport error or any status other than 200).
 */
export function getLoop(get: (vhost: string) => Promise<{ status: number; body: string }>, vhost: string, maxRequests = 20_000) {
  let stopped = false;
  const result = { sent: 0, failed: 0, failures: [] as string[], bodies: new Map<string, number>() };
  const done = (async () => {
    while (!stopped && result.sent < maxRequests) {
      result.sent++;
      try {
        const r = await get(vhost);
        if (r.status !== 200) {
          result.failed++;
          result.failures.push(`HTTP ${r.status}: ${r.body.slice(0, 100)}`);
        } else result.bodies.set(r.body.trim(), (result.bodies.get(r.body.trim()) ?? 0) + 1);
      } catch (err) {
        result.failed++;
        result.failures.push(String(err));
      }
    }
  })();
  return {
    result,
    stop: async () => {
      stopped = true;
      await done;
      return result;
    },
  };
}
