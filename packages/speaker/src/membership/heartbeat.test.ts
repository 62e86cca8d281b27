import { strict as assert } from 'node:assert';
import { assertCodec, assertCodecError, fuzzDecode, hex } from '../codec/check.ts';
import { heartbeatCodec, remember, sealHeartbeat, verifyHeartbeat, type Heartbeat, type ReplayState, type VerifyOptions } from './heartbeat.ts';

const KEY = Buffer.from('portico heartbeat test key 32 by');
const OLD_KEY = Buffer.from('the key before the rotation.....');
const NOW = 1_750_000_000_000;
const hb = (over: Partial<Heartbeat> = {}): Heartbeat => ({ node: 'node-1', incarnation: 1_749_999_000_000, sequence: 7, timestamp: NOW - 5, leaving: false, ...over });
const opts = (over: Partial<VerifyOptions> = {}): VerifyOptions => ({ keys: [KEY], now: NOW, maxSkewMs: 2000, state: new Map(), ...over });

describe('heartbeat codec', () => {
  it('lays out the message field by field', () => {
    const mac = Buffer.alloc(32, 0xab);
    const bytes = hex`
      5048               # magic "PH"
      01                 # version
      01                 # flags: leaving
      0000000000000002   # incarnation 2
      0000000000000003   # sequence 3
      0000019c0000abcd   # timestamp
      06                 # node name length
      6e6f64652d31       # "node-1"
      ${mac.toString('hex')}  # HMAC-SHA256`;
    assertCodec(heartbeatCodec, { node: 'node-1', incarnation: 2, sequence: 3, timestamp: 0x19c0000abcd, leaving: true, mac }, bytes);
  });

  it('rejects a wrong magic, version, flags, trailing bytes and integers beyond 2^53', () => {
    const good = sealHeartbeat(hb(), KEY);
    const bad = (f: (b: Buffer) => void): Buffer => { const b = Buffer.from(good); f(b); return b; };
    assertCodecError(() => heartbeatCodec.decode(bad((b) => { b[0] = 0; })), 'magic');
    assert.equal(assertCodecError(() => heartbeatCodec.decode(bad((b) => { b[2] = 2; })), 'version').code, 'PORTICO_CODEC_UNSUPPORTED');
    assertCodecError(() => heartbeatCodec.decode(bad((b) => { b[3] = 0x80; })), 'flags');
    assertCodecError(() => heartbeatCodec.decode(Buffer.concat([good, Buffer.alloc(1)])), 'trailing');
    assertCodecError(() => heartbeatCodec.decode(bad((b) => { b[4] = 0xff; })), 'incarnation beyond 2^53');
    assertCodecError(() => sealHeartbeat(hb({ sequence: -1 }), KEY), 'negative sequence');
    assertCodecError(() => sealHeartbeat(hb({ node: '' }), KEY), 'empty name');
  });

  it('survives fuzzing from sealed messages', () => {
    const seeds = [sealHeartbeat(hb(), KEY), sealHeartbeat(hb({ node: 'a-very-long-node-name.example', leaving: true }), KEY)];
    const r = fuzzDecode((b) => heartbeatCodec.decode(b), seeds, { iterations: 5000, encode: (v) => heartbeatCodec.encode(v) });
    assert.ok(r.decoded > 0 && r.rejected > 0, JSON.stringify(r));
  });
});

describe('heartbeat authentication', () => {
  it('accepts a sealed heartbeat and returns it without the MAC', () => {
    const v = verifyHeartbeat(sealHeartbeat(hb(), KEY), opts());
    assert.deepEqual(v, { ok: true, heartbeat: hb() });
  });

  const rejects: Array<{ name: string; datagram: () => Uint8Array; opts?: Partial<VerifyOptions>; reason: string }> = [
    { name: 'a different key', datagram: () => sealHeartbeat(hb(), OLD_KEY), reason: 'bad-mac' },
    { name: 'one flipped bit in the sequence', datagram: () => { const b = sealHeartbeat(hb(), KEY); b[19]! ^= 1; return b; }, reason: 'bad-mac' },
    { name: 'one flipped bit in the MAC', datagram: () => { const b = sealHeartbeat(hb(), KEY); b[b.length - 1]! ^= 1; return b; }, reason: 'bad-mac' },
    { name: 'a renamed sender', datagram: () => { const b = sealHeartbeat(hb(), KEY); b[29 + 5] = 0x32; return b; }, reason: 'bad-mac' },
    { name: 'garbage', datagram: () => Buffer.from('GET / HTTP/1.1\r\n\r\n'), reason: 'malformed' },
    { name: 'a truncated message', datagram: () => sealHeartbeat(hb(), KEY).subarray(0, 40), reason: 'malformed' },
    { name: 'a recording older than the allowed skew', datagram: () => sealHeartbeat(hb({ timestamp: NOW - 2001 }), KEY), reason: 'stale' },
    { name: 'a timestamp from the future', datagram: () => sealHeartbeat(hb({ timestamp: NOW + 60_000 }), KEY), reason: 'stale' },
    { name: 'our own heartbeat', datagram: () => sealHeartbeat(hb(), KEY), opts: { self: 'node-1' }, reason: 'self' },
    { name: 'a node nobody knows', datagram: () => sealHeartbeat(hb({ node: 'intruder' }), KEY), opts: { knownNodes: new Set(['node-1', 'node-2']) }, reason: 'unknown-node' },
  ];
  for (const r of rejects) {
    it(`rejects ${r.name}: ${r.reason}`, () => {
      const v = verifyHeartbeat(r.datagram(), opts(r.opts));
      assert.equal(v.ok, false);
      if (!v.ok) assert.equal(v.reason, r.reason, v.detail);
    });
  }

  it('replays, in order: the same message twice, an older sequence, an older incarnation; a restart is accepted', () => {
    let state: ReplayState = new Map();
    const accept = (h: Heartbeat): void => {
      const v = verifyHeartbeat(sealHeartbeat(h, KEY), opts({ state }));
      assert.ok(v.ok, `expected ${JSON.stringify(h)} accepted, got ${JSON.stringify(v)}`);
      state = remember(state, v.heartbeat);
    };
    const reject = (h: Heartbeat, datagram = sealHeartbeat(h, KEY)): void => {
      const v = verifyHeartbeat(datagram, opts({ state }));
      assert.ok(!v.ok && v.reason === 'replay', `expected replay, got ${JSON.stringify(v)}`);
    };
    const first = sealHeartbeat(hb({ sequence: 7 }), KEY);
    accept(hb({ sequence: 7 }));
    reject(hb({ sequence: 7 }), first); // the captured datagram, resent
    accept(hb({ sequence: 8 }));
    reject(hb({ sequence: 5 }));
    accept(hb({ incarnation: 1_750_000_000_000 - 100, sequence: 1 })); // the speaker restarted: new incarnation, sequence from 1
    reject(hb({ sequence: 9 })); // the old incarnation is over
    accept(hb({ node: 'node-2', sequence: 1 })); // per-node state
    assert.deepEqual([...state.keys()].sort(), ['node-1', 'node-2']);
  });

  it('verifies with either key during a rotation, and carries the leaving flag', () => {
    const v = verifyHeartbeat(sealHeartbeat(hb({ leaving: true }), OLD_KEY), opts({ keys: [KEY, OLD_KEY] }));
    assert.ok(v.ok && v.heartbeat.leaving);
  });
});
