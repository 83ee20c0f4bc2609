import { describe, expect, it } from 'vitest';
import { dockerTime, observedFromInspect, runtimeEventFromDocker, toOrcaError, type DockerInspect } from './docker-mapping.js';

const attrs = { 'orca.cluster': 'c1', 'orca.instance': 'web-1', image: 'orca-test/busybox:1', name: 'web-1' };
const ev = (action: string, extra: Record<string, string> = {}) => ({
  Type: 'container',
  Action: action,
  Actor: { ID: 'abc', Attributes: { ...attrs, ...extra } },
  time: 1_700_000_000,
  timeNano: 1_700_000_000_123_456_789,
});

describe('runtimeEventFromDocker', () => {
  it('maps die with its exit code and strips non-label attributes', () => {
    expect(runtimeEventFromDocker(ev('die', { exitCode: '137' }))).toEqual({
      kind: 'die',
      containerId: 'abc',
      labels: { 'orca.cluster': 'c1', 'orca.instance': 'web-1' },
      timeMs: 1_700_000_000_123,
      exitCode: 137,
    });
  });

  it('maps health_status with the status after the colon', () => {
    expect(runtimeEventFromDocker(ev('health_status: unhealthy'))).toMatchObject({ kind: 'health_status', health: 'unhealthy' });
    expect(runtimeEventFromDocker(ev('health_status: healthy'))?.health).toBe('healthy');
  });

  it('drops the signal attribute of kill events, and ignores kinds outside the port', () => {
    expect(runtimeEventFromDocker(ev('kill', { signal: '15' }))?.labels).not.toHaveProperty('signal');
    for (const a of ['exec_create: cat /tmp/healthy', 'attach', 'rename', 'pause']) expect(runtimeEventFromDocker(ev(a))).toBeUndefined();
    expect(runtimeEventFromDocker({ ...ev('create'), Type: 'network' })).toBeUndefined();
  });
});

describe('observedFromInspect', () => {
  const base: DockerInspect = {
    Id: 'id1',
    Name: '/web-1',
    Created: '2026-01-01T00:00:00.123456789Z',
    Config: { Image: 'orca-test/busybox:1', Labels: { a: 'b' } },
    State: { Status: 'running', ExitCode: 0, OOMKilled: true, Error: '', StartedAt: '2026-01-01T00:00:01.5Z', FinishedAt: '0001-01-01T00:00:00Z', Health: { Status: 'healthy' } },
    HostConfig: { PortBindings: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] } },
    NetworkSettings: { Ports: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '49153' }] } },
  };

  it('maps a running container: no exit code, stale OOM flag hidden, port published', () => {
    expect(observedFromInspect(base)).toEqual({
      id: 'id1', name: 'web-1', image: 'orca-test/busybox:1', labels: { a: 'b' }, status: 'running', exitCode: null,
      oomKilled: false, startedAt: '2026-01-01T00:00:01.500Z', finishedAt: null, createdAt: '2026-01-01T00:00:00.123Z',
      hostIp: '127.0.0.1', hostPort: 49153, ports: { '80': 49153 }, health: 'healthy', error: null,
    });
  });

  it('takes the primary port from the orca.port label, not from the order of the port map', () => {
    const c = observedFromInspect({
      ...base,
      Config: { ...base.Config, Labels: { 'orca.port': '9000' } },
      HostConfig: { PortBindings: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }], '9000/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] } },
      NetworkSettings: {
        Ports: {
          '53/udp': [{ HostIp: '127.0.0.1', HostPort: '49000' }],
          '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '49153' }],
          '443/tcp': null,
          '9000/tcp': [{ HostIp: '127.0.0.1', HostPort: '49154' }],
        },
      },
    });
    expect(c).toMatchObject({ hostIp: '127.0.0.1', hostPort: 49154, ports: { '80': 49153, '9000': 49154 } });
    expect(Object.keys(c.ports).sort()).toEqual(['80', '9000']);
  });

  it('an empty orca.port label means only extra ports: no hostPort', () => {
    const c = observedFromInspect({ ...base, Config: { ...base.Config, Labels: { 'orca.port': '' } } });
    expect(c).toMatchObject({ hostIp: null, hostPort: null, ports: { '80': 49153 } });
  });

  it('maps an exited container with its code, OOM flag and error', () => {
    const c = observedFromInspect({
      ...base,
      State: { ...base.State, Status: 'exited', ExitCode: 137, Error: 'boom', FinishedAt: '2026-01-01T00:00:02Z', Health: null },
      NetworkSettings: { Ports: {} },
    });
    expect(c).toMatchObject({ status: 'exited', exitCode: 137, oomKilled: true, error: 'boom', hostPort: null, ports: {}, health: null });
  });

  it('treats the zero time as null', () => {
    expect(dockerTime('0001-01-01T00:00:00Z')).toBeNull();
  });
});

describe('toOrcaError', () => {
  it('maps socket errors to ORCA_RUNTIME_UNAVAILABLE, transient', () => {
    const e = toOrcaError(Object.assign(new Error('connect ENOENT /var/run/docker.sock'), { code: 'ENOENT' }), 'ping');
    expect([e.code, e.transient]).toEqual(['ORCA_RUNTIME_UNAVAILABLE', true]);
  });

  it('maps HTTP statuses with Docker\'s message', () => {
    const http = (statusCode: number) => Object.assign(new Error('x'), { statusCode, json: { message: 'msg' } });
    expect(toOrcaError(http(404), 'op')).toMatchObject({ code: 'ORCA_RUNTIME_NOT_FOUND', message: 'op: msg' });
    expect(toOrcaError(http(409), 'op').code).toBe('ORCA_RUNTIME_CONFLICT');
    expect(toOrcaError(http(500), 'op')).toMatchObject({ code: 'ORCA_RUNTIME_FAILED', transient: true });
    expect(toOrcaError(http(400), 'op')).toMatchObject({ code: 'ORCA_RUNTIME_FAILED', transient: false });
  });
});
