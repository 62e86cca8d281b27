import { strict as assert } from 'node:assert';
import { assertCodec, assertCodecError, hex } from '../codec/check.ts';
import { ipv6 } from './ipv6.ts';
import { linkLayerAddress, ndp, type NdpMessage } from './ndp.ts';
import { vector } from './testdata/vectors.ts';

const message = (name: string): Buffer => ipv6.decode(vector(name).subarray(14)).payload;

describe('ndp codec (RFC 4861 §4.3, §4.4, §4.6)', () => {
  it('the kernel multicast Neighbor Solicitation, field by field', () => {
    const bytes = hex`
      87             # type: Neighbor Solicitation (135)
      00             # code
      8ae3           # checksum
      00000000       # reserved
      20010db8000400000000000000000002   # target 2001:db8:4::2
      01             # option: source link-layer address
      01             # length: 1 x 8 bytes
      92045640aaf7   # MAC`;
    assert.deepEqual(bytes, message('kernel-ndp-ns-multicast'));
    assertCodec(ndp, {
      type: 'neighbor-solicitation',
      code: 0,
      checksum: 0x8ae3,
      reserved: 0,
      target: '2001:db8:4::2',
      options: [{ kind: 'source-link-layer-address', mac: '92:04:56:40:aa:f7' }],
    }, bytes, { truncation: 24 });
    for (let n = 25; n < bytes.length; n++) assertCodecError(() => ndp.decode(bytes.subarray(0, n)), `cut inside the option at ${n}`);
  });

  it('the kernel solicited Neighbor Advertisement: S and O, target link-layer address', () => {
    const value: NdpMessage = {
      type: 'neighbor-advertisement',
      code: 0,
      checksum: 0x10e2,
      router: false,
      solicited: true,
      override: true,
      reserved: 0,
      target: '2001:db8:4::2',
      options: [{ kind: 'target-link-layer-address', mac: '9a:24:36:c8:aa:98' }],
    };
    assertCodec(ndp, value, message('kernel-ndp-na-solicited'), { truncation: 24 });
    assert.equal(linkLayerAddress(value, 'target-link-layer-address'), '9a:24:36:c8:aa:98');
    assert.equal(linkLayerAddress(value, 'source-link-layer-address'), undefined);
  });

  it('the kernel unsolicited Neighbor Advertisement: O only', () => {
    const m = ndp.decode(message('kernel-ndp-na-unsolicited'));
    assert.equal(m.type, 'neighbor-advertisement');
    if (m.type !== 'neighbor-advertisement') return;
    assert.deepEqual([m.router, m.solicited, m.override], [false, false, true]);
  });

  it('the kernel DAD solicitation keeps its nonce option (RFC 7527) raw', () => {
    const bytes = message('kernel-ndp-ns-dad');
    const m = ndp.decode(bytes);
    assert.deepEqual(m.options, [{ kind: 'raw', type: 14, data: hex`a0580ec6d817` }]);
    assertCodec(ndp, m, bytes, { truncation: 24 });
  });

  it('a link-layer option longer than Ethernet stays raw; flags and reserved bits round-trip', () => {
    const bytes = hex`
      88 00 0000     # NA, code 0, checksum 0
      a0000005       # R and O set, reserved bits 5
      fe800000000000000000000000000001   # target fe80::1
      02 02          # target link-layer address, 16 bytes (not Ethernet)
      0102030405060708090a0b0c0d0e`;
    assertCodec(ndp, {
      type: 'neighbor-advertisement',
      code: 0,
      checksum: 0,
      router: true,
      solicited: false,
      override: true,
      reserved: 5,
      target: 'fe80::1',
      options: [{ kind: 'raw', type: 2, data: hex`0102030405060708090a0b0c0d0e` }],
    }, bytes, { truncation: 24 });
  });

  it('rejects a zero-length option, an option past the end, and other ICMPv6 types', () => {
    const base = message('kernel-ndp-ns-multicast');
    const zero = Buffer.from(base);
    zero[25] = 0;
    assert.equal(assertCodecError(() => ndp.decode(zero), 'zero-length option').code, 'PORTICO_CODEC_INVALID');
    const long = Buffer.from(base);
    long[25] = 2;
    assert.equal(assertCodecError(() => ndp.decode(long), 'option past the end').code, 'PORTICO_CODEC_TRUNCATED');
    const echo = ipv6.decode(vector('kernel-icmpv6-echo-request').subarray(14)).payload;
    assert.equal(assertCodecError(() => ndp.decode(echo), 'echo request').code, 'PORTICO_CODEC_UNSUPPORTED');
    assertCodecError(() => ndp.encode({ type: 'neighbor-solicitation', code: 0, checksum: 0, reserved: 0, target: '::', options: [{ kind: 'raw', type: 9, data: hex`0102` }] }), 'raw option not a multiple of 8');
  });
});
