import { describe, expect, it } from 'vitest';
import { memoryStore } from '../store/index.js';
import { aSpec, slotsOf } from '../test/builders.js';
import { AssignmentCache } from './assignments.js';

describe('AssignmentCache', () => {
  it('is unknown until a set is given, then persists it for the next session', async () => {
    const store = memoryStore();
    await store.open();
    const c = new AssignmentCache(store);
    expect(c.known).toBe(false);
    expect(await c.cached()).toBeUndefined();
    const web = slotsOf(aSpec({ replicas: 2 }));
    await c.replace(web);
    expect(c.known).toBe(true);
    expect(c.of('web')).toHaveLength(2);
    expect(await new AssignmentCache(store).cached()).toEqual(web);
  });

  it('an empty set is a known set (everything here is undesired)', async () => {
    const store = memoryStore();
    await store.open();
    const c = new AssignmentCache(store);
    await c.replace([]);
    expect(c.known).toBe(true);
    expect([...c.services()]).toEqual([]);
  });

  it('names the services whose slots changed, came or went', async () => {
    const store = memoryStore();
    await store.open();
    const c = new AssignmentCache(store);
    const web = slotsOf(aSpec({ replicas: 2 }));
    const api = slotsOf(aSpec({ name: 'api' }));
    expect([...(await c.replace([...web, ...api]))].sort()).toEqual(['api', 'web']);
    expect([...(await c.replace([...web, ...api]))]).toEqual([]);
    const db = slotsOf(aSpec({ name: 'db' }));
    expect([...(await c.replace([...slotsOf(aSpec({ replicas: 3 })), ...db]))].sort()).toEqual(['api', 'db', 'web']);
    expect(c.all()).toHaveLength(4);
  });
});
