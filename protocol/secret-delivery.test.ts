import { describe, expect, it } from 'vitest';
import { initialServerSession, secretsOf, stepServerSession, type ServerSessionInput, type ServerSessionState } from './server-session.js';
import { decodeAgentMessage, decodeServerMessage, encode, LIMITS, type SecretValue, type ServerMessage } from './messages.js';
import { initialAgentSession, stepAgentSession } from './agent-session.js';
import { aSpec, slotsOf } from '../test/builders.js';
import type { SlotAssignment } from '../controllers/container/types.js';

const withSecrets = (slots: SlotAssignment[], versions: Record<string, number>) => slots.map((a) => ({ ...a, secretVersions: versions }));
const web = withSecrets(slotsOf(aSpec({ replicas: 2, secrets: ['db-password'] })), { 'db-password': 1 });
const api = withSecrets(slotsOf(aSpec({ name: 'api', secrets: ['api-key'] })), { 'api-key': 3 });
const plain = slotsOf(aSpec({ name: 'plain' }));
const val = (name: string, version: number): SecretValue => ({ name, version, value: Buffer.from(`${name}-v${version}`).toString('base64') });
const all = [val('db-password', 1), val('api-key', 3), val('other', 1), val('db-password', 2)];

function sent(inputs: ServerSessionInput[]): ServerMessage[] {
  let state: ServerSessionState = initialServerSession();
  const out: ServerMessage[] = [];
  for (const input of inputs) {
    const r = stepServerSession(state, input, 0);
    state = r.state;
    out.push(...r.send);
  }
  return out.filter((m) => m.type === 'assignments');
}
const names = (m: ServerMessage | undefined) => (m?.type === 'assignments' ? (m.secrets ?? []).map((v) => `${v.name}@${v.version}`).sort() : []);
const attached: ServerSessionInput = { kind: 'attached', reports: [], endpoints: [] };

describe('secret values over the session (SPEC §3.9)', () => {
  it('secretsOf keeps only the versions the slots use, each once', () => {
    expect(secretsOf([...web, ...plain], all).map((v) => `${v.name}@${v.version}`)).toEqual(['db-password@1']);
    expect(secretsOf(plain, all)).toEqual([]);
  });

  it('a node gets the values its own slots use and no other, with the full set', () => {
    const [m] = sent([attached, { kind: 'assignments', slots: [...web, ...plain], secrets: all }]);
    expect(names(m)).toEqual(['db-password@1']);
    const [none] = sent([attached, { kind: 'assignments', slots: plain, secrets: all }]);
    expect(none?.type === 'assignments' && none.secrets).toBeFalsy();
  });

  it('a delta carries the values of the changed services only', () => {
    const msgs = sent([attached, { kind: 'assignments', slots: web, secrets: all }, { kind: 'assignments', slots: [...web, ...api], secrets: all }]);
    expect(msgs.map(names)).toEqual([['db-password@1'], ['api-key@3']]);
    expect(msgs[1]?.type === 'assignments' && Object.keys(msgs[1].services ?? {})).toEqual(['api']);
  });

  it('a value the server could not read before is sent once it can (its slots unchanged)', () => {
    const msgs = sent([attached, { kind: 'assignments', slots: web, secrets: [] }, { kind: 'assignments', slots: web, secrets: all }, { kind: 'assignments', slots: web, secrets: all }]);
    expect(msgs.map(names)).toEqual([[], ['db-password@1']]);
  });

  it('the agent session hands the values of a message to the agent with the whole set', () => {
    const msg: ServerMessage = { type: 'assignments', full: true, slots: web, secrets: [val('db-password', 1)] };
    let s = stepAgentSession(initialAgentSession({ node: 'n1', cluster: 'c', advertise: '127.0.0.1', labels: {}, capacity: {} }), { kind: 'connected' }, 0).state;
    const r = stepAgentSession(s, { kind: 'message', text: encode(msg) }, 1);
    s = r.state;
    expect(r.effects).toContainEqual({ kind: 'assign', slots: web, secrets: [val('db-password', 1)] });
  });

  it.each<[string, unknown]>([
    ['a value over 64 KiB', { name: 'a', version: 1, value: 'A'.repeat(LIMITS.secretValueChars + 4) }],
    ['a value that is not base64', { name: 'a', version: 1, value: 'not base64!' }],
    ['a name that is not a DNS label', { name: 'A_B', version: 1, value: '' }],
    ['version 0', { name: 'a', version: 0, value: '' }],
    ['an unknown field', { name: 'a', version: 1, value: '', extra: 1 }],
  ])('the agent refuses an assignments message with %s', (_what, secret) => {
    expect(decodeServerMessage(JSON.stringify({ type: 'assignments', full: true, slots: [], secrets: [secret] })).ok).toBe(false);
  });

  it('a 64 KiB value passes; a slot using more than 64 secrets does not', () => {
    const big = Buffer.alloc(64 * 1024, 7).toString('base64');
    expect(decodeServerMessage(JSON.stringify({ type: 'assignments', full: true, slots: web, secrets: [{ name: 'db-password', version: 1, value: big }] })).ok).toBe(true);
    const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`s${i}`, 1]));
    expect(decodeServerMessage(JSON.stringify({ type: 'assignments', full: true, slots: withSecrets(web, many) })).ok).toBe(false);
    const at = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`s${i}`, 1]));
    expect(decodeServerMessage(JSON.stringify({ type: 'assignments', full: true, slots: withSecrets(web, at) })).ok).toBe(true);
  });
});

describe('agent event records', () => {
  it.each(['container', 'health', 'network'])('keeps a record of the %s reconciler', (reconciler) => {
    const rec = { time: 't', reconciler, service: null, instance: null, node: 'n1', action: 'container.create', reason: 'r', outcome: 'ok', durationMs: 1 };
    const d = decodeAgentMessage(JSON.stringify({ type: 'event', records: [rec] }));
    expect(d.ok && d.msg.type === 'event' && d.msg.records.length).toBe(1);
  });
  it('drops a record of a reconciler not in the fixed list (a metric label)', () => {
    const rec = { time: 't', reconciler: 'made-up', service: null, instance: null, node: 'n1', action: 'container.create', reason: 'r', outcome: 'ok', durationMs: 1 };
    const d = decodeAgentMessage(JSON.stringify({ type: 'event', records: [rec] }));
    expect(d.ok && d.dropped.length).toBe(1);
  });
});
