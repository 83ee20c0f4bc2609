/**
 * The leader's ACME client (SPEC §3.12, `tls = "acme"`): for every route host that asks for it,
 * a certificate from `--acme-directory`, answered by HTTP-01 on every node's plain proxy port,
 * stored sealed in the store (server/certs.ts) and pushed to every proxy; renewed once a third of
 * its lifetime is left; a failed order retried with backoff (server/acme-policy.ts).
 *
 * Rate-limit safety: what decides an order — the certificate and the order's standing — is in the
 * store, written before and after every attempt, so a restarted, crash-looping or new leader never
 * orders a certificate it has valid, nor retries a failed order before its backoff is over. One
 * host at a time; only while this server leads.
 *
 * The protocol itself is npm `acme-client` (RFC 8555: account, order, authorizations, finalize,
 * download), its own HTTP-01 self-check skipped (it would fetch port 80 of the host from here,
 * which proves nothing about the nodes and fails behind NAT and in tests); the CA's validation is
 * the check.
 */
import http from 'node:http';
import https from 'node:https';
import { sleep, type Clock, type TimerHandle } from '../core/clock.js';
import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { BackoffPolicy } from '../core/backoff.js';
import type { EventRecord } from '../store/types.js';
import type { AcmeChallenge } from '../proxy/tls.js';
import type { AcmeOrderState, CertStore } from './certs.js';
import { ACME_RETRY, decideOrder, retryDelayMs } from './acme-policy.js';

export const LETS_ENCRYPT_DIRECTORY = 'https://acme-v02.api.letsencrypt.org/directory';

export interface AcmeSettings {
  /** `--acme-directory`. */
  directory: string;
  /** `--acme-email`: the account's contact. */
  email?: string;
  /** `--acme-ca-file`'s PEM: the CA the directory's HTTPS is checked against (a test CA). */
  caPem?: string;
  /** Retry of a failed order; ACME_RETRY (hours) unless configured for tests. */
  retry?: BackoffPolicy;
  /** How often the hosts are looked at anyway (a missed trigger, a clock jump). */
  checkEveryMs?: number;
  /** One order's longest run before it counts as failed. */
  orderTimeoutMs?: number;
  /** After a challenge is pushed to the proxies, before the CA is told to check it (the agents get it over their sessions). */
  propagationMs?: number;
}

/** Obtains a certificate for `host`: the PEM chain and its key. The default speaks ACME (acme-client). */
export type OrderFn = (host: string, challenges: ChallengeBoard, signal: AbortSignal) => Promise<{ cert: string; key: string }>;

/** Where an order puts the HTTP-01 challenges it answers (the edge push). */
export interface ChallengeBoard {
  add(c: AcmeChallenge): void;
  remove(token: string): void;
}

export interface AcmeDeps {
  clock: Clock;
  log: Logger;
  certs: CertStore;
  settings: AcmeSettings;
  /** Hosts of routes with tls = "acme" now. */
  hosts: () => readonly string[];
  leading: () => boolean;
  challenges: ChallengeBoard;
  record: (e: EventRecord) => void;
  /** For tests: the order itself. Default: acmeOrder(settings, certs). */
  order?: OrderFn;
}

const DEFAULT_CHECK_MS = 10 * 60_000;
const DEFAULT_ORDER_TIMEOUT_MS = 5 * 60_000;

export class AcmeManager {
  private timer: TimerHandle | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private readonly abort = new AbortController();
  private readonly order: OrderFn;

  constructor(private readonly deps: AcmeDeps) {
    this.order = deps.order ?? acmeOrder(deps.settings, deps.certs, deps.log, deps.clock);
  }

  /** Looks at every host now (routes changed, leadership began), then on its own schedule. */
  poke(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pass()
      .catch((err: unknown) => this.deps.log.error({ err }, 'ACME pass failed'))
      .finally(() => {
        this.running = null;
        if (this.again && !this.stopped) {
          this.again = false;
          this.poke();
        }
      });
  }

  /** Resolves when the pass under way (if any) is over. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  stop(): void {
    this.stopped = true;
    this.abort.abort();
    if (this.timer) this.deps.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(atMs: number): void {
    if (this.stopped) return;
    if (this.timer) this.deps.clock.clearTimeout(this.timer);
    const check = this.deps.settings.checkEveryMs ?? DEFAULT_CHECK_MS;
    const delay = Math.max(0, Math.min(atMs - this.deps.clock.now(), check));
    this.timer = this.deps.clock.setTimeout(() => {
      this.timer = null;
      this.poke();
    }, delay);
  }

  private async pass(): Promise<void> {
    const now0 = this.deps.clock.now();
    let next = now0 + (this.deps.settings.checkEveryMs ?? DEFAULT_CHECK_MS);
    if (!this.deps.leading()) return this.schedule(next);
    const hosts = [...new Set(this.deps.hosts())].sort();
    for (const host of hosts) {
      if (this.stopped || !this.deps.leading()) break;
      const cert = await this.deps.certs.get(host);
      const order = await this.deps.certs.order(host);
      const d = decideOrder({ cert, order, nowMs: this.deps.clock.now() });
      if (d.kind === 'wait') {
        next = Math.min(next, d.untilMs);
        continue;
      }
      const after = await this.orderOne(host, d.why, order);
      next = Math.min(next, after);
    }
    this.schedule(next);
  }

  /** One order for `host`; returns when the host should be looked at again. */
  private async orderOne(host: string, why: string, prev: AcmeOrderState | undefined): Promise<number> {
    const { clock, certs, log } = this.deps;
    const started = clock.now();
    const startedIso = new Date(started).toISOString();
    const failuresBefore = prev?.failures ?? 0;
    // Written before the CA is asked: a crash mid-order is seen by the next leader. A retry stays
    // "failed" (with the last reason) until it succeeds.
    await certs.putOrder(prev?.status === 'failed' ? { ...prev, lastAttemptAt: startedIso } : { host, status: 'pending', failures: failuresBefore, lastAttemptAt: startedIso });
    log.info({ host, why, directory: this.deps.settings.directory }, 'ordering a certificate');
    const timeout = new AbortController();
    const onStop = () => timeout.abort();
    this.abort.signal.addEventListener('abort', onStop, { once: true });
    const timer = clock.setTimeout(() => timeout.abort(), this.deps.settings.orderTimeoutMs ?? DEFAULT_ORDER_TIMEOUT_MS);
    try {
      const got = await Promise.race([
        this.order(host, this.deps.challenges, timeout.signal),
        new Promise<never>((_, reject) => timeout.signal.addEventListener('abort', () => reject(new Error('the order took too long')), { once: true })),
      ]);
      const rec = await certs.put(host, got.cert, got.key, 'acme', new Date(clock.now()));
      await certs.clearOrder(host);
      const ms = clock.now() - started;
      log.info({ host, issuer: rec.issuer, notAfter: rec.notAfter, ms }, 'certificate obtained');
      this.event(host, 'cert.obtain', why, 'ok', ms, `issuer ${rec.issuer}, valid until ${rec.notAfter}`);
      return clock.now();
    } catch (err) {
      if (this.stopped) return clock.now();
      const failures = failuresBefore + 1;
      const delay = retryDelayMs(this.deps.settings.retry ?? ACME_RETRY, failures);
      const nextAt = clock.now() + delay;
      const reason = errorMessage(err).replace(/\s+/g, ' ').slice(0, 500);
      await certs.putOrder({ host, status: 'failed', failures, reason, lastAttemptAt: startedIso, nextAttemptAt: new Date(nextAt).toISOString() });
      log.warn({ host, failures, reason, retryInMs: delay }, 'certificate order failed; retrying later');
      this.event(host, 'cert.obtain', why, 'failed', clock.now() - started, `${reason}; next attempt at ${new Date(nextAt).toISOString()}`);
      return nextAt;
    } finally {
      clock.clearTimeout(timer);
      this.abort.signal.removeEventListener('abort', onStop);
    }
  }

  private event(host: string, action: string, why: string, outcome: 'ok' | 'failed', durationMs: number, message: string): void {
    this.deps.record({
      time: new Date(this.deps.clock.now()).toISOString(),
      reconciler: 'acme',
      service: null,
      instance: null,
      node: null,
      action,
      reason: `${why}: ${host}: ${message}`,
      outcome,
      durationMs: Math.round(durationMs),
    });
  }
}

/**
 * The real order, with acme-client: the account key kept (sealed) in the store per directory, an
 * ECDSA P-256 certificate key, HTTP-01 only.
 */
export function acmeOrder(settings: AcmeSettings, certs: CertStore, log: Logger, clock: Clock): OrderFn {
  return async (host, board) => {
    const acme = (await import('acme-client')).default;
    // acme-client's HTTP is one axios instance: the test CA and a bound on every request.
    if (settings.caPem) acme.axios.defaults.httpsAgent = new https.Agent({ ca: settings.caPem, keepAlive: false });
    acme.axios.defaults.timeout = 30_000;
    // Its own retries of a refused connection or a 5xx: two, 2 s and 4 s apart (its default, five
    // up to 25 s apart, holds a failing order for over a minute); the order's backoff does the rest.
    const settingsOf = acme.axios.defaults as unknown as { acmeSettings?: { retryMaxAttempts: number; retryDefaultDelay: number } };
    if (settingsOf.acmeSettings) Object.assign(settingsOf.acmeSettings, { retryMaxAttempts: 2, retryDefaultDelay: 2 });
    acme.setLogger(() => undefined);
    // acme-client reports a CA it cannot reach poorly ("Cannot read properties of undefined"):
    // the directory is fetched first, so that the reason shown says what is wrong.
    await reachDirectory(settings.directory, settings.caPem);
    let account = await certs.accountKey(settings.directory);
    if (!account) {
      const keyPem = (await acme.crypto.createPrivateEcdsaKey('P-256')).toString();
      await certs.putAccountKey(settings.directory, keyPem, settings.email, undefined);
      account = { keyPem };
      log.info({ directory: settings.directory }, 'ACME account key made');
    }
    // No account URL kept: newAccount with the key finds the account (or makes it again at a CA that lost it).
    const client = new acme.Client({ directoryUrl: settings.directory, accountKey: account.keyPem, backoffAttempts: 8, backoffMin: 500, backoffMax: 5_000 });
    const [key, csr] = await acme.crypto.createCsr({ commonName: host, altNames: [host] }, await acme.crypto.createPrivateEcdsaKey('P-256'));
    const cert = await client.auto({
      csr,
      ...(settings.email ? { email: settings.email } : {}),
      termsOfServiceAgreed: true,
      challengePriority: ['http-01'],
      skipChallengeVerification: true,
      challengeCreateFn: async (_authz, challenge, keyAuthorization) => {
        if (challenge.type !== 'http-01') throw new Error(`challenge ${challenge.type} is not offered by Orca (HTTP-01 only)`);
        board.add({ token: challenge.token, keyAuthorization });
        await sleep(clock, settings.propagationMs ?? 1_000);
      },
      challengeRemoveFn: async (_authz, challenge) => {
        board.remove(challenge.token);
      },
    });
    return { cert, key: key.toString() };
  };
}

/** GET of the ACME directory (10 s bound): rejects with a reason naming the directory when it does not answer 200. */
function reachDirectory(directory: string, caPem: string | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const url = new URL(directory);
    const get = url.protocol === 'http:' ? http.get : https.get;
    const req = get(url, { timeout: 10_000, ...(caPem && url.protocol === 'https:' ? { ca: caPem } : {}) }, (res) => {
      res.resume();
      if (res.statusCode === 200) resolve();
      else reject(new Error(`the ACME directory ${directory} answered HTTP ${res.statusCode}`));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', (err: NodeJS.ErrnoException) => reject(new Error(`the ACME directory ${directory} cannot be reached: ${err.code ?? err.message}`)));
  });
}
