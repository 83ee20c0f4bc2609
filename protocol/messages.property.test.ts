import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeAgentMessage, LIMITS } from './messages.js';
import { checkEndpoint, checkEndpointAddress, parseHostPort } from '../server/endpoint-check.js';

const TYPES = ['hello', 'state', 'endpoints', 'event', 'heartbeat', 'drain', 'logs-data', 'logs-end', 'containers-result', 'observed', 'x'];

/** JSON text of a value nested `depth` deep in arrays or objects (built as text: stringify would overflow). */
const deep = (depth: number, inObject: boolean) => (inObject ? `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}` : `${'['.repeat(depth)}1${']'.repeat(depth)}`);

describe('decodeAgentMessage (property)', () => {
  it('never throws on any string', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 2000 }), (s) => {
        const d = decodeAgentMessage(s);
        expect(typeof d.ok).toBe('boolean');
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on any JSON value, and refuses what is not a message', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const d = decodeAgentMessage(JSON.stringify(v) ?? 'null');
        if (typeof v !== 'object' || v === null || Array.isArray(v)) expect(d.ok).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on envelopes of a known type with arbitrary fields and records; kept records are valid', () => {
    const field = fc.oneof(fc.jsonValue(), fc.array(fc.jsonValue(), { maxLength: 20 }));
    fc.assert(
      fc.property(
        fc.constantFrom(...TYPES),
        fc.dictionary(fc.constantFrom('v', 'node', 'cluster', 'advertise', 'labels', 'capacity', 'reports', 'endpoints', 'records', 'seq', 'id', 'containers', 'lines', 'more'), field),
        (type, rest) => {
          const d = decodeAgentMessage(JSON.stringify({ ...rest, type }));
          if (d.ok) {
            expect(d.msg.type).toBe(type);
            expect(Array.isArray(d.dropped)).toBe(true);
          } else expect(d.error.length).toBeLessThanOrEqual(400);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('refuses deeply nested values (thousands deep) and oversized text as results, not exceptions', () => {
    for (const depth of [10, 1000, 5000, 100_000]) {
      for (const inObject of [false, true]) {
        const v = deep(depth, inObject);
        for (const raw of [v, `{"type":"event","records":[${v}]}`, `{"type":"heartbeat","seq":${v}}`, `{"type":"state","reports":[${v}],"endpoints":[${v}]}`]) {
          if (raw.length > LIMITS.maxMessageBytes) {
            expect(decodeAgentMessage(raw)).toMatchObject({ ok: false });
            continue;
          }
          const d = decodeAgentMessage(raw);
          if (d.ok) expect(d.msg.type === 'event' ? d.msg.records : []).toEqual([]);
        }
      }
    }
    expect(decodeAgentMessage('['.repeat(500_000))).toMatchObject({ ok: false });
    expect(decodeAgentMessage(`{"type":"${'t'.repeat(100_000)}"}`)).toMatchObject({ ok: false });
  });

  it('one bad record leaves the others of its batch', () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { maxLength: 50 }), (goodness) => {
        const good = { service: 'web', instance: 'web-1-0-aaaa', address: '127.0.0.1:8080' };
        const records = goodness.map((g, i) => (g ? { ...good, instance: `web-1-${i}-aaaa` } : { ...good, address: i }));
        const d = decodeAgentMessage(JSON.stringify({ type: 'endpoints', endpoints: records }));
        expect(d.ok).toBe(true);
        if (d.ok && d.msg.type === 'endpoints') expect(d.msg.endpoints.map((e) => e.instance)).toEqual(goodness.flatMap((g, i) => (g ? [`web-1-${i}-aaaa`] : [])));
      }),
    );
  });
});

describe('endpoint validation (property)', () => {
  const assigned = new Map([['web/0', 3]]);
  const own = [{ host: '127.0.0.1', port: 6880 }];

  it('never throws, and accepts only the advertise address with a port 1–65535', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), fc.string({ maxLength: 40 }), (address, advertise) => {
        const v = checkEndpointAddress(address, { advertise, own });
        if (v.ok) {
          const hp = parseHostPort(address)!;
          expect(hp.port).toBeGreaterThanOrEqual(1);
          expect(hp.port).toBeLessThanOrEqual(65535);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('for any port: ok exactly when 1–65535 and not the server’s own', () => {
    fc.assert(
      fc.property(fc.integer({ min: -10, max: 200_000 }), fc.constantFrom('127.0.0.2', '::1', '203.0.113.3'), (port, host) => {
        const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
        const v = checkEndpoint({ service: 'web', instance: 'web-3-0-abcd', address }, { advertise: host, own, assigned });
        expect(v.ok).toBe(port >= 1 && port <= 65535);
      }),
    );
  });

  it('refuses any other host than the advertise address, and any instance of a slot not assigned', () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.ipV4(), fc.integer({ min: 0, max: 9 }), fc.integer({ min: 1, max: 9 }), (a, b, slot, rev) => {
        const v = checkEndpoint({ service: 'web', instance: `web-${rev}-${slot}-abcd`, address: `${a}:40000` }, { advertise: b, own: [], assigned });
        expect(v.ok).toBe(a === b && slot === 0 && rev <= 3);
      }),
      { numRuns: 2000 },
    );
  });
});
