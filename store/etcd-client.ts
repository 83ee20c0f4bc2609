/**
 * The etcd connection of the store on etcd: the client's options (call deadlines, TLS, message
 * bound), one deadline over a whole store operation, and the mapping of etcd's and gRPC's
 * failures to Orca's error codes.
 */

import { circuitBreaker, ConsecutiveBreaker, handleWhen } from 'cockatiel';
import { ClientClosedError, Etcd3, GRPCInvalidArgumentError, GRPCGenericError, isRecoverableError, type IOptions } from 'etcd3';
import type { Clock } from '../core/clock.js';
import { DEFAULTS } from '../core/defaults.js';
import { errorMessage, isOrcaError, OrcaError } from '../core/errors.js';

/** The etcd store's defaults and bounds (DEFAULTS.etcdStore), as numbers a test may override. */
export const ETCD_STORE_DEFAULTS: EtcdLimits = DEFAULTS.etcdStore;

export type EtcdLimits = { [K in keyof typeof DEFAULTS.etcdStore]: number };

/** TLS to etcd: the CA that signed its certificates, and a client certificate and key if it wants one (PEM). */
export interface EtcdTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/**
 * The Etcd3 options: every unary call gets a deadline of `limits.callTimeoutMs` (streams, such as
 * the election's watches and keepalives, none); etcd3's own fault handling stays (three attempts
 * on other members), except that a member that failed three times in a row is skipped for
 * `limits.memberSkipMs` (etcd3: 5 s). Skipped for 5 s, a member just restarted and the two others
 * answering "no leader" during the election after a kill left every member skipped at once for
 * longer than a store operation may take (CI saw it: "the circuit breaker is open"). With `tls`,
 * the connection is TLS (endpoints are https://).
 */
export function etcdClientOptions(endpoints: string[], tls: EtcdTls | undefined, limits: EtcdLimits, clock: Clock): IOptions {
  return {
    hosts: endpoints,
    dialTimeout: limits.dialTimeoutMs,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: clock.now() + limits.callTimeoutMs }),
    grpcOptions: { 'grpc.max_receive_message_length': limits.maxReceiveBytes },
    faultHandling: {
      host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: limits.memberSkipMs, breaker: new ConsecutiveBreaker(3) }),
    },
    ...(tls
      ? {
          credentials: {
            // grpc takes the system's roots when no CA is given.
            rootCertificate: tls.ca as Buffer,
            ...(tls.key ? { privateKey: tls.key } : {}),
            ...(tls.cert ? { certChain: tls.cert } : {}),
          },
        }
      : {}),
  };
}

export const newEtcdClient = (options: IOptions): Etcd3 => new Etcd3(options);

/**
 * Runs fn, but gives up after `ms` with ORCA_STORE_UNAVAILABLE (transient) saying who did not
 * answer. fn's promise may still settle later; its result is then dropped.
 */
export function withDeadline<T>(clock: Clock, ms: number, what: () => string, fn: () => Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = clock.setTimeout(
      () => reject(new OrcaError('ORCA_STORE_UNAVAILABLE', `${what()}: no answer within ${(ms / 1000).toFixed(1)} s`, { transient: true })),
      ms,
    );
    fn().then(
      (v) => {
        clock.clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clock.clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/**
 * An etcd or gRPC failure as an OrcaError: a request etcd refuses as malformed or too large is
 * ORCA_INTERNAL (a bug or a bound to raise, not worth retrying); everything else — no member
 * reachable, deadlines, a broken circuit, a closed client, refused credentials — is
 * ORCA_STORE_UNAVAILABLE, transient. OrcaErrors pass through.
 */
export function etcdFailure(where: string, e: unknown): OrcaError {
  if (isOrcaError(e)) return e;
  const message = errorMessage(e).split('\n')[0]?.slice(0, 500) ?? '';
  if (e instanceof GRPCInvalidArgumentError) return new OrcaError('ORCA_INTERNAL', `${where}: etcd refused the request: ${message}`, { cause: e });
  const kind = e instanceof ClientClosedError ? 'the connection is closed' : e instanceof GRPCGenericError ? 'etcd failed' : 'etcd is unreachable';
  return new OrcaError('ORCA_STORE_UNAVAILABLE', `${where}: ${kind}: ${message}`, { transient: true, cause: e });
}
