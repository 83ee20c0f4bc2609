import { afterEach, expect, it } from 'vitest';
import { undiciLoaded } from './core.js';
import { send, testScope } from './test-support.js';

/** Its own file: each test file has its own module graph, so nothing else here has loaded undici. */
const { backend, proxyWith } = testScope(afterEach);

it('serves GETs without loading undici, and loads it for the first request that takes the full path', async () => {
  const b = await backend('b');
  const { port } = await proxyWith([{ service: 'web', host: 'app.test', path: '/', backends: [{ instance: 'b', address: b.address }] }]);
  for (let i = 0; i < 3; i++) expect((await send(port, `/${i}`)).body).toBe(`b GET /${i}`);
  expect(undiciLoaded()).toBe(false);
  expect((await send(port, '/p', { method: 'POST', body: 'x' })).body).toBe('b POST /p');
  expect(undiciLoaded()).toBe(true);
});
