/**
 * The `edge` server message (SPEC §3.12): what every agent that runs a proxy needs for HTTPS at
 * the edge, whole each time — the certificates with their keys (only to an agent whose hello said
 * `proxyTls`: a node without a TLS listener gets no private key) and the ACME HTTP-01 challenges
 * the leader is answering now (to every proxy: the CA may ask any node). Protocol version 2
 * sessions only (forProtocol drops it for version 1). Bounded: at most EDGE_LIMITS.certs
 * certificates and EDGE_LIMITS.challenges challenges, under the message budget — the server
 * leaves out what does not fit (saying so), an agent refuses a message over the bounds and keeps
 * its last state. Pure.
 */
import { z } from 'zod';
import type { AcmeChallenge, EdgeCert } from '../proxy/tls.js';
import { jsonBytes } from './split.js';

export const EDGE_LIMITS = {
  certs: 1024,
  challenges: 256,
  certChars: 64 * 1024,
  keyChars: 16 * 1024,
  /** Room for the certificates of one message under the 1 MiB message limit. */
  budgetBytes: 900 * 1024,
} as const;

export interface EdgeMessage {
  type: 'edge';
  certs: EdgeCert[];
  challenges: AcmeChallenge[];
}

export const edgeMessageSchema = z.strictObject({
  type: z.literal('edge'),
  certs: z
    .array(z.strictObject({ host: z.string().min(1).max(253), cert: z.string().min(1).max(EDGE_LIMITS.certChars), key: z.string().min(1).max(EDGE_LIMITS.keyChars) }))
    .max(EDGE_LIMITS.certs),
  challenges: z.array(z.strictObject({ token: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/), keyAuthorization: z.string().min(1).max(512) })).max(EDGE_LIMITS.challenges),
});

/**
 * The message for an agent: the certificates only `withKeys`, as many as fit the budget (the
 * challenges first: they are small and time-bound). `left` counts certificates left out.
 */
export function edgeMessage(edge: { certs: readonly EdgeCert[]; challenges: readonly AcmeChallenge[] }, withKeys: boolean, budgetBytes: number = EDGE_LIMITS.budgetBytes): { message: EdgeMessage; left: number } {
  const challenges = edge.challenges.slice(0, EDGE_LIMITS.challenges);
  let bytes = jsonBytes(challenges);
  const certs: EdgeCert[] = [];
  let left = 0;
  if (withKeys) {
    for (const c of edge.certs) {
      const size = jsonBytes(c) + 1;
      if (certs.length >= EDGE_LIMITS.certs || bytes + size > budgetBytes || c.cert.length > EDGE_LIMITS.certChars || c.key.length > EDGE_LIMITS.keyChars) {
        left++;
        continue;
      }
      certs.push(c);
      bytes += size;
    }
  }
  return { message: { type: 'edge', certs, challenges }, left };
}
