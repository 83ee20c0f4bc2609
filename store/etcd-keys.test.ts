import { ClientClosedError, GRPCInvalidArgumentError, GRPCUnavailableError } from 'etcd3';
import { describe, expect, it } from 'vitest';
import { ManualClock, sleep, systemClock } from '../core/clock.js';
import { isOrcaError } from '../core/errors.js';
import { ETCD_STORE_DEFAULTS, etcdClientOptions, etcdFailure, withDeadline } from './etcd-client.js';
import { defaultStorePrefix, etcdEventFloorKey, etcdEventKey, isEtcdEventKey, keyAfter, prefixEnd, prefixProblem } from './etcd-keys.js';

describe('etcd key layout', () => {
  it('prefix ranges end just past every key with the prefix', () => {
    expect(prefixEnd(Buffer.from('/orca/a/store/svc!')).toString()).toBe('/orca/a/store/svc"');
    expect([...prefixEnd(Buffer.from([0x61, 0xff, 0xff]))]).toEqual([0x62]);
    expect(() => prefixEnd(Buffer.from([0xff]))).toThrow();
    expect(keyAfter(Buffer.from('k')).equals(Buffer.from([0x6b, 0]))).toBe(true);
  });

  it('checks prefixes', () => {
    expect(defaultStorePrefix('prod')).toBe('/orca/prod');
    expect(prefixProblem('/orca/prod')).toBeNull();
    expect(prefixProblem('/a')).toBeNull();
    expect(prefixProblem('orca')).toMatch(/start with/);
    expect(prefixProblem('/orca/')).toMatch(/not end/);
    expect(prefixProblem('/')).toMatch(/below/);
    expect(prefixProblem('/a//b')).toMatch(/\/\//);
    expect(prefixProblem('/a b')).toMatch(/printable/);
    expect(prefixProblem('/é')).toMatch(/printable/);
    expect(prefixProblem('/' + 'a'.repeat(300))).toMatch(/256/);
  });

  it('event keys sort by time, then by the revision their writer opened at, then by its sequence', () => {
    const keys = [
      etcdEventKey(2_000, '9', 0, 'aa'),
      etcdEventKey(1_000, '10', 0, 'bb'),
      etcdEventKey(1_000, '9', 5, 'aa'),
      etcdEventKey(1_000, '9', 4, 'ff'),
      etcdEventKey(1_000, '123456789012', 0, '00'),
    ];
    expect([...keys].sort()).toEqual([keys[3], keys[2], keys[1], keys[4], keys[0]]);
    for (const k of keys) {
      expect(isEtcdEventKey(k)).toBe(true);
      expect(k >= etcdEventFloorKey(1_000)).toBe(true);
    }
    expect(keys[0]! >= etcdEventFloorKey(2_000) && keys[1]! < etcdEventFloorKey(2_000)).toBe(true);
    expect(() => etcdEventKey(1, 'x', 0, 'aa')).toThrow();
  });
});

describe('etcd client edges', () => {
  it('withDeadline rejects with ORCA_STORE_UNAVAILABLE (transient) once the time is up, and passes results before', async () => {
    const clock = new ManualClock();
    const never = withDeadline(clock, 5_000, () => 'get kv on etcd x', () => new Promise<never>(() => undefined));
    clock.advance(4_999);
    const settled = await Promise.race([never.then(() => 'resolved', () => 'rejected'), Promise.resolve('pending')]);
    expect(settled).toBe('pending');
    clock.advance(1);
    const err = await never.catch((e: unknown) => e);
    expect(isOrcaError(err, 'ORCA_STORE_UNAVAILABLE')).toBe(true);
    expect((err as { transient: boolean }).transient).toBe(true);
    expect(String(err)).toMatch(/get kv on etcd x: no answer within 5.0 s/);
    expect(await withDeadline(clock, 5_000, () => 'x', async () => 42)).toBe(42);
    expect(clock.pending()).toBe(0);
  });

  it('maps etcd failures: a refused request is ORCA_INTERNAL, the rest ORCA_STORE_UNAVAILABLE (transient)', () => {
    expect(etcdFailure('put kv', new GRPCInvalidArgumentError('etcdserver: too many operations in txn request')).code).toBe('ORCA_INTERNAL');
    const down = etcdFailure('put kv', new GRPCUnavailableError('14 UNAVAILABLE: No connection established'));
    expect(down).toMatchObject({ code: 'ORCA_STORE_UNAVAILABLE', transient: true });
    expect(down.message).toMatch(/^put kv: etcd failed: 14 UNAVAILABLE/);
    expect(etcdFailure('get', new ClientClosedError('KV')).message).toMatch(/the connection is closed/);
    expect(etcdFailure('get', new Error('Execution prevented because the circuit breaker is open')).code).toBe('ORCA_STORE_UNAVAILABLE');
  });
});

describe('etcd client options', () => {
  it('skip a member that failed three times in a row for memberSkipMs, then try it again', async () => {
    const limits = { ...ETCD_STORE_DEFAULTS, memberSkipMs: 100 };
    const opts = etcdClientOptions(['http://127.0.0.1:1'], undefined, limits, systemClock);
    const policy = opts.faultHandling!.host!('127.0.0.1:1');
    const down = () => Promise.reject(new GRPCUnavailableError('member down'));
    for (let i = 0; i < 3; i++) await expect(policy.execute(down)).rejects.toBeInstanceOf(GRPCUnavailableError);
    let called = false;
    const up = () => {
      called = true;
      return Promise.resolve('ok');
    };
    await expect(policy.execute(up)).rejects.toMatchObject({ isBrokenCircuitError: true });
    expect(called).toBe(false);
    await sleep(systemClock, 150);
    await expect(policy.execute(up)).resolves.toBe('ok');
    expect(ETCD_STORE_DEFAULTS.memberSkipMs).toBeLessThan(ETCD_STORE_DEFAULTS.opTimeoutMs / 2);
  });
});
