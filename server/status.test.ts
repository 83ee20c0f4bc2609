import { describe, expect, it } from 'vitest';
import type { InstanceReport } from '../protocol/reports.js';
import { instanceHash } from '../controllers/container/instance-hash.js';
import type { ServiceRecord } from '../store/types.js';
import { aSpec } from '../test/builders.js';
import { serviceStatus } from './status.js';

const spec = aSpec({ name: 'web', replicas: 3 });
const svc: ServiceRecord = { name: 'web', revision: 2, spec, specHash: 'h2', createdAt: 't', updatedAt: 't' };
const OLD = 'old-hash';

const report = (over: Partial<InstanceReport>): InstanceReport => ({
  id: 'web-1-0-aaaa',
  service: 'web',
  slot: 0,
  revision: 1,
  specHash: OLD,
  node: 'n1',
  state: 'running',
  ready: true,
  restarts: 0,
  lastExit: null,
  containerId: 'c0',
  address: '127.0.0.1:40000',
  nextRetryAt: null,
  startedAt: '2026-12-04T10:00:00.000Z',
  current: false,
  rolloutFailed: null,
  ...over,
});

describe('serviceStatus', () => {
  it('after a failed rollout: the row counts the old instances that serve, names the probe’s answer and suggests rollback', () => {
    const failed = 'instance web-2-0-bbbb of revision 2 was not ready within ready_timeout_secs = 2; last readiness check: HTTP 404';
    const newExit = { code: 143, reason: 'Error', at: '2026-12-04T10:05:00.000Z' };
    const reports = [0, 1, 2].map((slot) =>
      report({ id: `web-1-${slot}-aaaa`, slot, containerId: `c${slot}`, rolloutFailed: slot === 0 ? failed : null, lastExit: slot === 0 ? newExit : null }),
    );
    const s = serviceStatus(svc, reports);
    expect(s.state).toBe('rollout-failed');
    expect(s.replicas).toEqual({ desired: 3, running: 3, ready: 3 });
    expect(s.instances.filter((i) => i.state === 'running' && i.ready)).toHaveLength(s.replicas.ready);
    expect(s.reason).toMatch(/HTTP 404.*orca rollback web/);
    // The removed new instance's exit is not the healthy old instance's past.
    expect(s.instances[0]?.lastExit).toBeNull();
  });

  it('a replacement keeps showing its predecessor’s exit', () => {
    const crash = { code: 137, reason: 'Error', at: '2026-12-04T09:59:00.000Z' };
    const hash = instanceHash(spec);
    const s = serviceStatus(svc, [report({ specHash: hash, current: true, restarts: 1, lastExit: crash })]);
    expect(s.instances[0]?.lastExit).toEqual(crash);
  });

  it('a terminal error becomes the reason', () => {
    const s = serviceStatus(svc, [report({ specHash: instanceHash(spec), current: true, state: 'pending', ready: false, containerId: null, address: null, startedAt: null, error: 'image x:1 not found on node n1' })]);
    expect(s.state).toBe('degraded');
    expect(s.reason).toBe('image x:1 not found on node n1');
    expect(s.instances[0]?.error).toBe('image x:1 not found on node n1');
  });
});

describe('serviceStatus: slots no node took (SPEC §3.8)', () => {
  const db: ServiceRecord = { name: 'db', revision: 1, spec: aSpec({ name: 'db', replicas: 2, volumes: { data: '/data' } }), specHash: 'h', createdAt: 't', updatedAt: 't' };
  const hash = instanceHash(db.spec);
  it('a slot whose volume is on a down node is listed waiting with the reason, and the service is degraded', () => {
    const running = report({ id: 'db-1-0-aaaa', service: 'db', slot: 0, specHash: hash, current: true });
    const s = serviceStatus(db, [running], [{ slot: 1, reason: 'volume on down node n2' }]);
    expect(s.state).toBe('degraded');
    expect(s.reason).toBe('volume on down node n2');
    expect(s.instances.map((i) => [i.id, i.node, i.state, i.error])).toEqual([
      ['db-1-0-aaaa', 'n1', 'running', null],
      [null, 'n2', 'waiting', 'volume on down node n2'],
    ]);
    expect(s.replicas).toEqual({ desired: 2, running: 1, ready: 1 });
  });

  it('a slot no node allows is pending with the reason', () => {
    const s = serviceStatus({ ...db, spec: { ...db.spec, replicas: 1 } }, [], [{ slot: 0, reason: 'no schedulable node allows host path /srv/x (orca agent --allow-host-path)' }]);
    expect(s.state).toBe('degraded');
    expect(s.instances).toEqual([expect.objectContaining({ id: null, node: '-', state: 'pending', error: expect.stringContaining('/srv/x') })]);
  });
});
