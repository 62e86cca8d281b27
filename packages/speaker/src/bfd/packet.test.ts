// The BFD Control packet codec against hand-written bytes (RFC 5880 §4.1) and
// the packets captured from FRR's bfdd and BIRD (testdata/capture.ts), which
// also seed a fuzz test.
import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assertCodec, assertCodecError, fuzzDecode, hex } from '../codec/check.ts';
import { checkReceived, controlCodec, decodeControl, encodeControl, type ControlPacket } from './packet.ts';

const DIR = join(dirname(fileURLToPath(import.meta.url)), 'testdata');
const FILES = readdirSync(DIR).filter((f) => f.endsWith('.bin')).sort();
const load = (f: string): Buffer => readFileSync(join(DIR, f));
const META = JSON.parse(readFileSync(join(DIR, 'capture.json'), 'utf8')) as Record<string, { ttl: number; dstPort: number }>;

const up: ControlPacket = {
  diag: 0, state: 'Up', poll: false, final: false, controlPlaneIndependent: false, demand: false, multipoint: false,
  detectMult: 3, myDiscriminator: 1, yourDiscriminator: 2, desiredMinTxInterval: 50_000, requiredMinRxInterval: 50_000, requiredMinEchoRxInterval: 0,
};

describe('bfd control packet codec', () => {
  it('a plain Up packet, one field per line (RFC 5880 §4.1)', () => {
    assertCodec(controlCodec, up, hex`
      20        # version 1, diag 0
      c0        # state Up, no flags
      03        # detect mult 3
      18        # length 24
      00000001  # my discriminator
      00000002  # your discriminator
      0000c350  # desired min tx 50 ms
      0000c350  # required min rx 50 ms
      00000000  # required min echo rx: no echo`);
  });

  it('poll, diag and a keyed SHA1 section; an unknown auth type stays raw', () => {
    assertCodec(controlCodec, { ...up, diag: 1, state: 'Down', poll: true, auth: { type: 'keyed', authType: 5, keyId: 7, reserved: 0, sequence: 9, digest: Buffer.alloc(20, 0xab) } }, hex`
      21 64 03 34  # version 1 diag 1 | Down, P, A | mult 3 | length 52
      00000001 00000002 0000c350 0000c350 00000000
      05 1c 07 00  # meticulous keyed SHA1, auth len 28, key 7, reserved
      00000009     # sequence
      ${'ab'.repeat(20)}`, { truncation: 24 });
    assertCodec(controlCodec, { ...up, auth: { type: 'raw', authType: 99, data: Buffer.from('0102', 'hex') } }, hex`
      20 c4 03 1c 00000001 00000002 0000c350 0000c350 00000000
      63 04 0102   # type 99, auth len 4, two data bytes`, { truncation: 24 });
  });

  it('refuses a wrong version, a short Length and a Length past the datagram as CodecErrors', () => {
    const good = encodeControl(up);
    const v2 = Buffer.from(good); v2[0] = 0x40;
    assert.equal(assertCodecError(() => decodeControl(v2), 'version 2').code, 'PORTICO_CODEC_UNSUPPORTED');
    const short = Buffer.from(good); short[3] = 20;
    assert.equal(assertCodecError(() => decodeControl(short), 'length 20').code, 'PORTICO_CODEC_INVALID');
    const long = Buffer.from(good); long[3] = 40;
    assert.equal(assertCodecError(() => decodeControl(long), 'length 40').code, 'PORTICO_CODEC_TRUNCATED');
  });

  it('checkReceived applies RFC 5880 §6.8.6 and says why', () => {
    assert.equal(checkReceived(up), undefined);
    assert.equal(checkReceived({ ...up, detectMult: 0 }), 'detect-mult-zero');
    assert.equal(checkReceived({ ...up, multipoint: true }), 'multipoint');
    assert.equal(checkReceived({ ...up, myDiscriminator: 0 }), 'my-discriminator-zero');
    assert.equal(checkReceived({ ...up, yourDiscriminator: 0 }), 'your-discriminator-zero');
    assert.equal(checkReceived({ ...up, state: 'Down', yourDiscriminator: 0 }), undefined);
  });

  it('captured vectors cover both daemons, all three paths, poll/final and admin down', () => {
    for (const d of ['frr-8.4', 'bird-2.0']) for (const p of ['ipv4', 'ipv6', 'multihop']) {
      for (const k of ['up', 'up-poll', 'up-final']) assert.ok(FILES.includes(`${d}-${p}-${k}.bin`), `${d}-${p}-${k}.bin missing`);
    }
    for (const p of ['ipv4', 'ipv6', 'multihop']) assert.ok(FILES.includes(`frr-8.4-${p}-admindown.bin`));
    // GTSM facts the transport relies on: single hop always TTL 255; BIRD's multihop TTL is 64.
    for (const [f, m] of Object.entries(META)) if (m.dstPort === 3784) assert.equal(m.ttl, 255, f);
    assert.equal(META['bird-2.0-multihop-up.bin']?.ttl, 64);
  });

  it('field values of captured packets: FRR slow-starts at 1 s, polls to 100 ms, signals echo 50 ms', () => {
    const init = decodeControl(load('frr-8.4-ipv4-init.bin'));
    assert.equal(init.desiredMinTxInterval, 1_000_000); // RFC 5880 §6.8.3: >= 1 s while not Up
    const poll = decodeControl(load('frr-8.4-ipv4-up-poll.bin'));
    assert.deepEqual([poll.desiredMinTxInterval, poll.requiredMinRxInterval, poll.requiredMinEchoRxInterval, poll.detectMult], [100_000, 100_000, 50_000, 3]);
    const bird = decodeControl(load('bird-2.0-ipv4-up-final.bin'));
    assert.equal(bird.myDiscriminator, poll.yourDiscriminator);
    assert.equal(bird.yourDiscriminator, poll.myDiscriminator);
    const down = decodeControl(load('bird-2.0-ipv4-down-poll.bin'));
    assert.equal(down.diag, 3); // neighbor signaled session down, after FRR's admin down
  });

  for (const f of FILES) {
    it(`${f} decodes, passes §6.8.6 and re-encodes byte for byte`, () => {
      const bytes = load(f);
      const p = decodeControl(bytes);
      assert.equal(p.state.toLowerCase(), f.split('-').slice(3).join('-').replace(/(-poll|-final)?\.bin$/, ''));
      assert.equal(p.poll, f.includes('-poll'), 'P bit as named');
      assert.equal(p.final, f.includes('-final'), 'F bit as named');
      assert.equal(checkReceived(p), undefined);
      assertCodec(controlCodec, p, bytes);
    });
  }

  it('fuzz seeded with the captured vectors: only CodecErrors, and what decodes re-encodes', () => {
    const r = fuzzDecode(decodeControl, FILES.map(load), { iterations: 20_000, encode: encodeControl });
    assert.ok(r.decoded > 100 && r.rejected > 100, JSON.stringify(r));
  });
});
