import { describe, expect, it } from 'vitest';
import { clientAddress, downstreamResponseHeaders, upstreamRequestHeaders } from './headers.js';

const pairs = (flat: string[]) => {
  const out: Array<[string, string]> = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i] as string, flat[i + 1] as string]);
  return out;
};

describe('upstreamRequestHeaders', () => {
  it('drops hop-by-hop headers, those the Connection header names, and adds X-Forwarded-*', () => {
    const raw = [
      'Host', 'App.test:8080',
      'Connection', 'keep-alive, X-Private',
      'X-Private', 'secret',
      'Keep-Alive', 'timeout=5',
      'Proxy-Connection', 'keep-alive',
      'TE', 'trailers',
      'Trailer', 'X-Sum',
      'Upgrade', 'websocket',
      'Expect', '100-continue',
      'Accept', '*/*',
      'X-Forwarded-Proto', 'https',
      'X-Forwarded-Host', 'spoofed',
    ];
    const { headers, host, hasBody } = upstreamRequestHeaders(raw, '127.0.0.9');
    expect(pairs(headers)).toEqual([
      ['Host', 'App.test:8080'],
      ['Accept', '*/*'],
      ['x-forwarded-for', '127.0.0.9'],
      ['x-forwarded-proto', 'http'],
      ['x-forwarded-host', 'App.test:8080'],
    ]);
    expect(host).toBe('App.test:8080');
    expect(hasBody).toBe(false);
  });

  it('counts the Host headers (routing refuses more than one)', () => {
    expect(upstreamRequestHeaders(['Accept', '*/*'], '').hostCount).toBe(0);
    expect(upstreamRequestHeaders(['Host', 'a'], '').hostCount).toBe(1);
    const two = upstreamRequestHeaders(['Host', 'a', 'HOST', 'b'], '');
    expect([two.hostCount, two.host]).toEqual([2, 'b']);
  });

  it('appends the client to every X-Forwarded-For it got', () => {
    const raw = ['host', 'a', 'x-forwarded-for', '1.1.1.1', 'X-Forwarded-For', '2.2.2.2, 3.3.3.3'];
    const { headers } = upstreamRequestHeaders(raw, '127.0.0.1');
    expect(pairs(headers)).toContainEqual(['x-forwarded-for', '1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1']);
  });

  it('sees a body from content-length > 0 or a transfer-encoding, and keeps content-length', () => {
    expect(upstreamRequestHeaders(['Content-Length', '0'], '').hasBody).toBe(false);
    const withLength = upstreamRequestHeaders(['Content-Length', '12'], '');
    expect(withLength.hasBody).toBe(true);
    expect(pairs(withLength.headers)).toContainEqual(['Content-Length', '12']);
    const chunked = upstreamRequestHeaders(['Transfer-Encoding', 'chunked'], '');
    expect(chunked.hasBody).toBe(true);
    expect(chunked.headers).not.toContain('Transfer-Encoding');
  });

  it('for a tunnel keeps Upgrade and sends Connection: upgrade', () => {
    const raw = ['Host', 'h', 'Connection', 'Upgrade', 'Upgrade', 'websocket', 'Sec-WebSocket-Key', 'k'];
    const { headers } = upstreamRequestHeaders(raw, '127.0.0.1', true);
    expect(pairs(headers)).toEqual([
      ['Host', 'h'],
      ['Upgrade', 'websocket'],
      ['Sec-WebSocket-Key', 'k'],
      ['Connection', 'upgrade'],
      ['x-forwarded-for', '127.0.0.1'],
      ['x-forwarded-proto', 'http'],
      ['x-forwarded-host', 'h'],
    ]);
  });
});

describe('downstreamResponseHeaders', () => {
  it('drops hop-by-hop headers and those the Connection header names', () => {
    const raw = ['Content-Type', 'text/plain', 'Connection', 'close, X-Hop', 'X-Hop', '1', 'Transfer-Encoding', 'chunked', 'Keep-Alive', 'timeout=5', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2'].map((s) => Buffer.from(s));
    expect(pairs(downstreamResponseHeaders(raw))).toEqual([
      ['Content-Type', 'text/plain'],
      ['Set-Cookie', 'a=1'],
      ['Set-Cookie', 'b=2'],
    ]);
  });
});

describe('clientAddress', () => {
  it('unmaps IPv4-mapped IPv6 addresses', () => {
    expect(clientAddress('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(clientAddress('::1')).toBe('::1');
    expect(clientAddress(undefined)).toBe('');
  });
});
