import { describe, expect, it } from 'vitest';
import { EDGE_LIMITS, edgeMessage, type EdgeMessage } from './edge.js';
import { decodeServerMessage, encode, LIMITS, PROTOCOL_VERSION, type ServerMessage } from './messages.js';
import { initialServerSession, stepServerSession, type ServerSessionInput, type ServerSessionState, type ServerSessionStep } from './server-session.js';
import { initialAgentSession, stepAgentSession, type AgentSessionInput } from './agent-session.js';
import { decodeServerMessage as decodeV1 } from '../test/fixtures/protocol-v1.js';
import type { EdgeState } from '../proxy/tls.js';

const cert = (host: string, size = 1200) => ({ host, cert: `-----BEGIN CERTIFICATE-----\n${'A'.repeat(size)}\n-----END CERTIFICATE-----\n`, key: `-----BEGIN PRIVATE KEY-----\n${'B'.repeat(200)}\n-----END PRIVATE KEY-----\n` });
const edge: EdgeState = { certs: [cert('web.example.com'), cert('*.apps.example.com')], challenges: [{ token: 'tok_1-x', keyAuthorization: 'tok_1-x.thumbprint' }] };

const attached: ServerSessionInput = { kind: 'attached', reports: [], endpoints: [] };
const withProxy: ServerSessionInput = { ...attached, proxy: true };
const withTls: ServerSessionInput = { ...attached, proxy: true, proxyTls: true };
function runServer(inputs: ServerSessionInput[], state: ServerSessionState = initialServerSession()): ServerSessionStep[] {
  return inputs.map((input, i) => {
    const r = stepServerSession(state, input, 1000 + i);
    state = r.state;
    return r;
  });
}
const edgesSent = (steps: ServerSessionStep[]) =>
  steps.map((r) => r.send.filter((m): m is EdgeMessage => m.type === 'edge').map((m) => `certs:${m.certs.map((c) => c.host).join(',')} challenges:${m.challenges.length}`));

describe('stepServerSession: certificates and challenges (SPEC §3.12)', () => {
  it.each<[string, ServerSessionInput[], string[][]]>([
    ['a TLS proxy gets certificates and challenges at attach and on change', [{ kind: 'edge', edge }, withTls, { kind: 'edge', edge: { ...edge, challenges: [] } }], [[], ['certs:web.example.com,*.apps.example.com challenges:1'], ['certs:web.example.com,*.apps.example.com challenges:0']]],
    ['a plain proxy gets the challenges, never a key', [withProxy, { kind: 'edge', edge }], [[], ['certs: challenges:1']]],
    ['no proxy: nothing', [attached, { kind: 'edge', edge }], [[], []]],
    ['unchanged: nothing again', [withTls, { kind: 'edge', edge }, { kind: 'edge', edge: structuredClone(edge) }], [[], ['certs:web.example.com,*.apps.example.com challenges:1'], []]],
    ['a later session gets it again', [withTls, { kind: 'edge', edge }, { kind: 'detached' }, withTls], [[], ['certs:web.example.com,*.apps.example.com challenges:1'], [], ['certs:web.example.com,*.apps.example.com challenges:1']]],
  ])('%s', (_name, inputs, expected) => {
    expect(edgesSent(runServer(inputs))).toEqual(expected);
  });

  it('never to a version 1 session: every message it gets decodes with its own decoder', () => {
    const steps = runServer([{ kind: 'edge', edge }, { ...withTls, protocol: 1 }, { kind: 'edge', edge: { certs: [], challenges: [] } }]);
    expect(steps.flatMap((r) => r.send).some((m) => m.type === 'edge')).toBe(false);
    expect(decodeV1(encode({ type: 'edge', certs: [], challenges: [] } satisfies ServerMessage)).ok).toBe(false);
  });

  it('certificates past the budget are left out and counted; the message stays under the 1 MiB limit and decodes', () => {
    const many = Array.from({ length: 400 }, (_, i) => cert(`h${i}.example.com`, 4000));
    const { message, left } = edgeMessage({ certs: many, challenges: edge.challenges }, true);
    expect(left).toBeGreaterThan(0);
    expect(message.certs.length + left).toBe(400);
    expect(encode(message).length).toBeLessThanOrEqual(LIMITS.maxMessageBytes);
    expect(decodeServerMessage(encode(message)).ok).toBe(true);
    const steps = runServer([withTls, { kind: 'edge', edge: { certs: many, challenges: [] } }]);
    expect(steps[1]!.effects).toContainEqual(expect.objectContaining({ kind: 'log', level: 'warn', fields: { certificatesLeftOut: left } }));
  });

  it('the schema refuses what is out of bounds', () => {
    const ok = (m: unknown) => decodeServerMessage(JSON.stringify(m)).ok;
    expect(ok({ type: 'edge', ...edge })).toBe(true);
    expect(ok({ type: 'edge', certs: [{ ...cert('a'), key: 'k'.repeat(EDGE_LIMITS.keyChars + 1) }], challenges: [] })).toBe(false);
    expect(ok({ type: 'edge', certs: [], challenges: [{ token: 'bad token', keyAuthorization: 'x' }] })).toBe(false);
    expect(ok({ type: 'edge', certs: [], challenges: [], extra: 1 })).toBe(false);
  });
});

describe('stepAgentSession: certificates and challenges', () => {
  it('says proxyTls in its hello when its proxy serves TLS, and hands what it gets to the proxy', () => {
    let state = initialAgentSession({ node: 'n2', cluster: 'c', advertise: '127.0.0.1', labels: {}, capacity: {}, proxy: true, proxyTls: true });
    const inputs: AgentSessionInput[] = [
      { kind: 'connected' },
      { kind: 'inventory', for: 'hello', ok: true, inventory: { reports: [], endpoints: [] } },
      { kind: 'message', text: encode({ type: 'welcome', v: PROTOCOL_VERSION, heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 3000 }) },
      { kind: 'message', text: encode({ type: 'edge', ...edge }) },
    ];
    const steps = inputs.map((input, i) => {
      const r = stepAgentSession(state, input, 1000 + i);
      state = r.state;
      return r;
    });
    expect(steps[1]!.send[0]).toMatchObject({ type: 'hello', proxy: true, proxyTls: true });
    expect(steps[3]!.effects).toContainEqual({ kind: 'edge', edge });
  });
});
