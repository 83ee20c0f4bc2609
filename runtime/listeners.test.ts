import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { listenVerdict, parseProcNetTcp } from './listeners.js';

// Real lines from a busybox httpd on 0.0.0.0:80 with a client connected, and a tcp6 table.
const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1235 1 0000000000000000 100 0 0 10 0
   2: 020011AC:0050 010011AC:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 1236 1 0000000000000000 20 4 30 10 -1
`;
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2000 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:1F92 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2001 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:1F93 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2002 1 0000000000000000 100 0 0 10 0
`;

describe('parseProcNetTcp', () => {
  it('reads LISTEN sockets with their address and port, IPv4 and IPv6, and skips connections', () => {
    expect(parseProcNetTcp(TCP)).toEqual([
      { address: '0.0.0.0', port: 80 },
      { address: '127.0.0.1', port: 8080 },
    ]);
    expect(parseProcNetTcp(TCP6)).toEqual([
      { address: '::', port: 8081 },
      { address: '::1', port: 8082 },
      { address: '127.0.0.1', port: 8083 },
    ]);
  });

  it('never throws on garbage', () => {
    fc.assert(fc.property(fc.string({ maxLength: 2000 }), (s) => Array.isArray(parseProcNetTcp(`header\n${s}`))));
    expect(parseProcNetTcp('h\n 0: ZZ:0050 0 0A\n 1: 00000000:0000 0 0A\n 2: 000000:0050 0 0A')).toEqual([]);
  });
});

describe('listenVerdict', () => {
  const ls = [...parseProcNetTcp(TCP), ...parseProcNetTcp(TCP6)];
  it('passes for a port that something listens on for the world', () => {
    expect(listenVerdict(ls, 80)).toEqual({ ok: true, detail: 'listening on 80' });
    expect(listenVerdict(ls, 8081).ok).toBe(true);
  });
  it('fails for a port nothing listens on, naming the ports that are open', () => {
    expect(listenVerdict(ls, 9000)).toEqual({ ok: false, detail: 'nothing listens on port 9000 inside the container (it listens on 80, 8081)' });
    expect(listenVerdict([], 80).detail).toBe('nothing listens on port 80 inside the container');
  });
  it('fails for a loopback-only listener, saying why', () => {
    expect(listenVerdict(ls, 8080)).toMatchObject({ ok: false, detail: expect.stringMatching(/127\.0\.0\.1 port 8080 only/) });
    expect(listenVerdict(ls, 8082).ok).toBe(false);
  });
});
