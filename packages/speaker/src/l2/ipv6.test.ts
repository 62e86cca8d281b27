import { strict as assert } from 'node:assert';
import { assertCodec, assertCodecError, hex } from '../codec/check.ts';
import { checksumValid, icmpv6, icmpv6Checksum, withChecksum, ICMPV6_ECHO_REQUEST } from './icmpv6.ts';
import { ipv6, NEXT_HEADER_HOP_BY_HOP, NEXT_HEADER_ICMPV6 } from './ipv6.ts';
import { vector } from './testdata/vectors.ts';

const packet = (name: string): Buffer => vector(name).subarray(14);

describe('ipv6 codec (RFC 8200 §3)', () => {
  it('the kernel echo request: flow label, hop limit, addresses', () => {
    const bytes = packet('kernel-icmpv6-echo-request');
    assertCodec(ipv6, {
      trafficClass: 0,
      flowLabel: 0x86f8e,
      nextHeader: NEXT_HEADER_ICMPV6,
      hopLimit: 64,
      source: '2001:db8:4::1',
      destination: '2001:db8:4::2',
      payload: bytes.subarray(40),
    }, bytes);
  });

  it('the kernel MLD report keeps its hop-by-hop header in the payload', () => {
    const p = ipv6.decode(packet('kernel-mld-report'));
    assert.equal(p.nextHeader, NEXT_HEADER_HOP_BY_HOP);
    assert.equal(p.hopLimit, 1);
    assert.equal(p.source, 'fe80::9004:56ff:fe40:aaf7');
    assert.equal(p.destination, 'ff02::16');
    assert.equal(p.payload[0], NEXT_HEADER_ICMPV6, 'the hop-by-hop header says ICMPv6 comes next');
  });

  it('a header written field by field, traffic class and flow label split across bytes', () => {
    const bytes = hex`
      6 ab 12345     # version 6, traffic class 0xab, flow label 0x12345
      0004           # payload length
      3a             # next header: ICMPv6
      ff             # hop limit 255
      20010db8000000000000000000000001   # source 2001:db8::1
      ff0200000000000000000001ff000001   # destination ff02::1:ff00:1
      80000000       # payload`;
    assertCodec(ipv6, {
      trafficClass: 0xab,
      flowLabel: 0x12345,
      nextHeader: 58,
      hopLimit: 255,
      source: '2001:db8::1',
      destination: 'ff02::1:ff00:1',
      payload: hex`80000000`,
    }, bytes);
  });

  it('rejects a wrong version and a payload length past the buffer; ignores padding after it', () => {
    const bytes = packet('kernel-icmpv6-echo-request');
    const v4 = Buffer.from(bytes);
    v4[0] = 0x45;
    assertCodecError(() => ipv6.decode(v4), 'version 4');
    const long = Buffer.from(bytes);
    long.writeUInt16BE(bytes.length, 4);
    assertCodecError(() => ipv6.decode(long), 'payload length too long');
    const padded = Buffer.concat([bytes, Buffer.alloc(6)]);
    assert.deepEqual(ipv6.encode(ipv6.decode(padded)), bytes);
  });
});

describe('icmpv6 codec and checksum (RFC 4443 §2)', () => {
  const captured = ['kernel-icmpv6-echo-request', 'kernel-ndp-ns-multicast', 'kernel-ndp-na-solicited', 'kernel-ndp-na-unsolicited', 'kernel-ndp-ns-dad'];

  for (const name of captured) {
    it(`${name}: the kernel's checksum verifies and re-computes`, () => {
      const p = ipv6.decode(packet(name));
      assert.ok(checksumValid(p.source, p.destination, p.payload));
      const m = icmpv6.decode(p.payload);
      assertCodec(icmpv6, m, p.payload, { truncation: 4 });
      assert.equal(withChecksum({ ...m, checksum: 0 }, p.source, p.destination).checksum, m.checksum);
    });
  }

  it('a flipped bit, a different address or a wrong length fails the checksum', () => {
    const p = ipv6.decode(packet('kernel-icmpv6-echo-request'));
    const flipped = Buffer.from(p.payload);
    flipped[10]! ^= 0x01;
    assert.equal(checksumValid(p.source, p.destination, flipped), false);
    assert.equal(checksumValid(p.source, '2001:db8:4::3', p.payload), false);
    assert.equal(checksumValid(p.source, p.destination, p.payload.subarray(0, p.payload.length - 2)), false);
    assert.equal(checksumValid(p.source, p.destination, p.payload.subarray(0, 3)), false);
  });

  it('an odd-length message is padded with a zero byte for the sum', () => {
    const m = withChecksum({ type: ICMPV6_ECHO_REQUEST, code: 0, checksum: 0, body: hex`00010002ff` }, '2001:db8::1', '2001:db8::2');
    const bytes = icmpv6.encode(m);
    assert.ok(checksumValid('2001:db8::1', '2001:db8::2', bytes));
    assert.equal(icmpv6Checksum('2001:db8::1', '2001:db8::2', bytes), m.checksum);
    assert.equal(icmpv6Checksum('2001:db8::1', '2001:db8::2', Buffer.concat([bytes, Buffer.alloc(1)])) === m.checksum, false, 'the length is in the pseudo-header');
  });
});
