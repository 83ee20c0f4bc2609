import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePort, freePorts } from './ports.js';

describe('freePorts', () => {
  it('gives distinct ports, each free to bind afterwards', async () => {
    for (let round = 0; round < 20; round++) {
      const ports = await freePorts(6);
      expect(new Set(ports).size).toBe(6);
      for (const p of ports) expect(p).toBeGreaterThan(0);
    }
    const p = await freePort();
    const s = createServer();
    await new Promise<void>((r) => s.listen(p, '127.0.0.1', r));
    await new Promise<void>((r) => s.close(() => r()));
  });
});
