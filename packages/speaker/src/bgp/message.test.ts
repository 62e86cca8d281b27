import { strict as assert } from 'node:assert';
import { assertCodec, assertCodecError, hex } from '../codec/check.ts';
import { asPathForTwoOctetPeer, mergeAs4Path, AS_TRANS, COMMUNITY_NO_EXPORT, findAttribute } from './attributes.ts';
import {
  buildOpen, capabilitiesOf, decodeMessage, encodeMessage, endOfRib, endOfRibFamily, messageCodec, openAsn,
  FOUR_OCTET, type BgpMessage, type UpdateMessage,
} from './message.ts';
import { bgpDetail, describeNotification, shutdownCommunication } from './notification.ts';

const codec = messageCodec(FOUR_OCTET);
const codec2 = messageCodec({ fourOctetAs: false });
const MARKER = 'ffffffffffffffffffffffffffffffff';

/** Wraps a body in a BGP header with the right length. */
function msg(type: number, body: Buffer): Buffer {
  const h = Buffer.alloc(19, 0xff);
  h.writeUInt16BE(19 + body.length, 16);
  h[18] = type;
  return Buffer.concat([h, body]);
}

/** An UPDATE from its three fields, with both length fields computed. */
function update(attrs: Buffer, nlri: Buffer = Buffer.alloc(0), withdrawn: Buffer = Buffer.alloc(0)): Buffer {
  const wl = Buffer.alloc(2);
  wl.writeUInt16BE(withdrawn.length);
  const al = Buffer.alloc(2);
  al.writeUInt16BE(attrs.length);
  return msg(2, Buffer.concat([wl, withdrawn, al, attrs, nlri]));
}

describe('bgp message codec', () => {
  it('KEEPALIVE is a bare header (RFC 4271 §4.4)', () => {
    assertCodec(codec, { type: 'keepalive' }, hex`
      ${MARKER}   # marker
      0013        # length 19
      04          # type KEEPALIVE`);
  });

  it('OPEN with multiprotocol, route refresh, 4-octet AS, graceful restart and an unknown capability', () => {
    const open: BgpMessage = {
      type: 'open', version: 4, myAsn: AS_TRANS, holdTime: 90, bgpId: '198.51.100.20',
      parameters: [{
        type: 'capabilities', capabilities: [
          { type: 'multiprotocol', afi: 1, safi: 1 },
          { type: 'multiprotocol', afi: 2, safi: 1 },
          { type: 'route-refresh' },
          { type: 'four-octet-as', asn: 4200000001 },
          { type: 'graceful-restart', restarting: true, notification: false, restartTime: 120, families: [{ afi: 1, safi: 1, forwarding: true }, { afi: 2, safi: 1, forwarding: false }] },
          { type: 'unknown', code: 73, value: Buffer.from('016100', 'hex') },
        ],
      }],
    };
    assertCodec(codec, open, hex`
      ${MARKER}       # marker
      0044            # length 68
      01              # type OPEN
      04              # version 4
      5ba0            # my AS: AS_TRANS 23456
      005a            # hold time 90 s
      c6336414        # BGP identifier 198.51.100.20
      27              # optional parameters length 39
      02 25           # parameter: capabilities, 37 bytes
      01 04 0001 00 01          # multiprotocol IPv4 unicast
      01 04 0002 00 01          # multiprotocol IPv6 unicast
      02 00                     # route refresh
      41 04 fa56ea01            # 4-octet AS 4200000001
      40 0a 8078                # graceful restart: R bit, restart time 120
            0001 01 80          #   IPv4 unicast, forwarding kept
            0002 01 00          #   IPv6 unicast
      49 03 016100              # FQDN (73), kept raw`);
    assert.equal(openAsn(open), 4200000001);
  });

  it('buildOpen sends AS_TRANS and the 4-octet AS capability for a large AS', () => {
    const o = buildOpen({ asn: 4200000001, holdTime: 9, bgpId: '198.51.100.1', capabilities: [{ type: 'route-refresh' }] });
    assert.equal(o.myAsn, AS_TRANS);
    assert.deepEqual(capabilitiesOf(o), [{ type: 'route-refresh' }, { type: 'four-octet-as', asn: 4200000001 }]);
    assert.equal(openAsn(decodeMessage(encodeMessage(o)) as typeof o), 4200000001);
    assert.equal(buildOpen({ asn: 64512, holdTime: 9, bgpId: '198.51.100.1', capabilities: [] }).myAsn, 64512);
  });

  it('OPEN keeps an unknown optional parameter and the RFC 9072 extended encoding', () => {
    assertCodec(codec, {
      type: 'open', version: 4, myAsn: 64512, holdTime: 3, bgpId: '198.51.100.1', extendedParameters: true,
      parameters: [{ type: 'raw', code: 9, value: Buffer.from('ab', 'hex') }, { type: 'capabilities', capabilities: [{ type: 'route-refresh' }] }],
    }, hex`
      ${MARKER}   # marker
      0029        # length 41
      01          # OPEN
      04          # version
      fc00        # my AS 64512
      0003        # hold time 3
      c6336401    # BGP identifier 198.51.100.1
      ff          # optional parameters length: 255 = extended (RFC 9072)
      ff          # non-extended parameter type 255
      0009        # extended optional parameters length 9
      09 0001 ab  # unknown parameter 9
      02 0002 0200 # capabilities: route refresh`);
  });

  it('UPDATE for IPv4 with every attribute Portico sends', () => {
    const u: UpdateMessage = {
      type: 'update',
      withdrawn: ['203.0.113.99/32'],
      attributes: [
        { type: 'origin', origin: 'igp' },
        { type: 'as-path', segments: [{ type: 'sequence', asns: [64512, 4200000001] }] },
        { type: 'next-hop', nextHop: '198.51.100.11' },
        { type: 'med', med: 0 },
        { type: 'local-pref', localPref: 100 },
        { type: 'communities', communities: ['64512:100', COMMUNITY_NO_EXPORT] },
        { type: 'large-communities', communities: ['4200000001:1:2'] },
      ],
      nlri: ['203.0.113.10/32', '203.0.113.0/24'],
    };
    assertCodec(codec, u, hex`
      ${MARKER}             # marker
      0065                  # length 101
      02                    # type UPDATE
      0005                  # withdrawn routes length
      20 cb007163           # 203.0.113.99/32
      0040                  # total path attribute length 64
      40 01 01 00           # ORIGIN IGP
      40 02 0a              # AS_PATH, 10 bytes
         02 02 0000fc00 fa56ea01   # AS_SEQUENCE 64512 4200000001
      40 03 04 c633640b     # NEXT_HOP 198.51.100.11
      80 04 04 00000000     # MULTI_EXIT_DISC 0
      40 05 04 00000064     # LOCAL_PREF 100
      c0 08 08 fc000064     # COMMUNITIES 64512:100
               ffffff01     #   NO_EXPORT
      c0 20 0c fa56ea01 00000001 00000002   # LARGE_COMMUNITY 4200000001:1:2
      20 cb00710a           # NLRI 203.0.113.10/32
      18 cb0071             # NLRI 203.0.113.0/24`);
  });

  it('UPDATE for IPv6 in MP_REACH_NLRI with global and link-local next hops', () => {
    assertCodec(codec, {
      type: 'update', withdrawn: [], nlri: [],
      attributes: [
        { type: 'mp-reach', afi: 2, safi: 1, nextHops: ['2001:db8:1::11', 'fe80::11'], nlri: ['2001:db8:1::10/128', '2001:db8:2::/48'] },
        { type: 'origin', origin: 'igp' },
        { type: 'as-path', segments: [{ type: 'sequence', asns: [64512] }] },
      ],
    }, hex`
      ${MARKER}       # marker
      0064            # length 100
      02              # UPDATE
      0000            # no withdrawn routes
      004d            # total path attribute length 77
      80 0e 3d        # MP_REACH_NLRI, 61 bytes
         0002 01      #   AFI IPv6, SAFI unicast
         20           #   next hop length 32
         20010db8000100000000000000000011   # 2001:db8:1::11
         fe800000000000000000000000000011   # fe80::11
         00           #   reserved
         80 20010db8000100000000000000000010   # 2001:db8:1::10/128
         30 20010db80002                       # 2001:db8:2::/48
      40 01 01 00     # ORIGIN IGP
      40 02 06 02 01 0000fc00   # AS_PATH: AS_SEQUENCE 64512`);
  });

  it('UPDATE withdrawing IPv6 in MP_UNREACH_NLRI', () => {
    assertCodec(codec, {
      type: 'update', withdrawn: [], nlri: [],
      attributes: [{ type: 'mp-unreach', afi: 2, safi: 1, withdrawn: ['2001:db8:1::10/128'] }],
    }, hex`
      ${MARKER}       # marker
      002e            # length 46
      02              # UPDATE
      0000            # no withdrawn routes
      0017            # total path attribute length 23
      80 0f 14        # MP_UNREACH_NLRI, 20 bytes
         0002 01      #   AFI IPv6, SAFI unicast
         80 20010db8000100000000000000000010   # 2001:db8:1::10/128`);
  });

  it('UPDATE from a 2-octet peer: AS_TRANS in AS_PATH, the real path in AS4_PATH (RFC 6793)', () => {
    const u: UpdateMessage = {
      type: 'update', withdrawn: [], nlri: ['203.0.113.0/24'],
      attributes: [
        { type: 'origin', origin: 'incomplete' },
        { type: 'as-path', segments: [{ type: 'sequence', asns: [64512, AS_TRANS] }] },
        { type: 'next-hop', nextHop: '198.51.100.11' },
        { type: 'as4-path', segments: [{ type: 'sequence', asns: [64512, 4200000001] }] },
      ],
    };
    assertCodec(codec2, u, hex`
      ${MARKER}       # marker
      003c            # length 60
      02              # UPDATE
      0000            # no withdrawn routes
      0021            # total path attribute length 33
      40 01 01 02     # ORIGIN INCOMPLETE
      40 02 06 02 02 fc00 5ba0            # AS_PATH (2-octet): 64512 AS_TRANS
      40 03 04 c633640b                   # NEXT_HOP 198.51.100.11
      c0 11 0a 02 02 0000fc00 fa56ea01    # AS4_PATH: 64512 4200000001
      18 cb0071       # NLRI 203.0.113.0/24`);
    const asPath = findAttribute(u.attributes, 'as-path')!.segments;
    const as4 = findAttribute(u.attributes, 'as4-path')!.segments;
    assert.deepEqual(mergeAs4Path(asPath, as4), [{ type: 'sequence', asns: [64512, 4200000001] }]);
    // One more 2-octet hop in front that AS4_PATH does not cover.
    assert.deepEqual(mergeAs4Path([{ type: 'sequence', asns: [64500, 64512, AS_TRANS] }], as4),
      [{ type: 'sequence', asns: [64500] }, { type: 'sequence', asns: [64512, 4200000001] }]);
    // An AS4_PATH longer than AS_PATH is ignored.
    assert.deepEqual(mergeAs4Path([{ type: 'sequence', asns: [AS_TRANS] }], as4), [{ type: 'sequence', asns: [AS_TRANS] }]);
    assert.deepEqual(asPathForTwoOctetPeer([{ type: 'sequence', asns: [64512, 4200000001] }]), {
      asPath: [{ type: 'sequence', asns: [64512, AS_TRANS] }],
      as4Path: [{ type: 'sequence', asns: [64512, 4200000001] }],
    });
    assert.deepEqual(asPathForTwoOctetPeer([{ type: 'sequence', asns: [64512] }]), { asPath: [{ type: 'sequence', asns: [64512] }] });
    assert.throws(() => codec2.encode({ ...u, attributes: [{ type: 'as-path', segments: [{ type: 'sequence', asns: [4200000001] }] }] }), /2-octet/);
  });

  it('keeps unknown attributes and unusual flags byte for byte', () => {
    assertCodec(codec, {
      type: 'update', withdrawn: [], nlri: [],
      attributes: [
        { type: 'origin', origin: 'igp', flags: 0x50 },
        { type: 'raw', code: 63, flags: 0xe0, value: Buffer.from('abcd', 'hex') },
      ],
    }, hex`
      ${MARKER}       # marker
      0021            # length 33
      02              # UPDATE
      0000            # no withdrawn routes
      000a            # total path attribute length 10
      50 01 0001 00   # ORIGIN IGP with the extended-length flag
      e0 3f 02 abcd   # attribute 63: optional, transitive, partial`);
  });

  it('NOTIFICATION with a shutdown communication reads as a sentence (RFC 9003)', () => {
    const n: BgpMessage = { type: 'notification', code: 6, subcode: 2, data: shutdownCommunication('maintenance') };
    assertCodec(codec, n, hex`
      ${MARKER}   # marker
      0021        # length 33
      03          # NOTIFICATION
      06          # Cease
      02          # Administrative Shutdown
      0b 6d61696e74656e616e6365   # "maintenance"`);
    assert.equal(describeNotification(n), 'Cease / Administrative Shutdown: "maintenance"');
    assert.equal(describeNotification({ code: 2, subcode: 2, data: Buffer.from('fde8', 'hex') }), 'OPEN Message Error / Bad Peer AS (data fde8)');
    assert.equal(describeNotification({ code: 4, subcode: 0, data: Buffer.alloc(0) }), 'Hold Timer Expired');
    assert.equal(describeNotification({ code: 9, subcode: 9, data: Buffer.alloc(0) }), 'error code 9 / subcode 9');
    assert.equal(shutdownCommunication('é'.repeat(200)).length, 1 + 254, 'cut on a character boundary');
  });

  it('ROUTE-REFRESH (RFC 2918 §3)', () => {
    assertCodec(codec, { type: 'route-refresh', afi: 2, safi: 1, subtype: 0 }, hex`
      ${MARKER}   # marker
      0017        # length 23
      05          # ROUTE-REFRESH
      0002        # AFI IPv6
      00          # reserved (RFC 7313 subtype: normal request)
      01          # SAFI unicast`);
  });

  it('End-of-RIB for IPv4 and IPv6 (RFC 4724 §2)', () => {
    assertCodec(codec, endOfRib(1), hex`
      ${MARKER}   # marker
      0017        # length 23
      02          # UPDATE
      0000        # no withdrawn routes
      0000        # no attributes`);
    assertCodec(codec, endOfRib(2), hex`
      ${MARKER}   # marker
      001d        # length 29
      02          # UPDATE
      0000        # no withdrawn routes
      0006        # attributes: 6 bytes
      80 0f 03 0002 01   # MP_UNREACH_NLRI IPv6 unicast, nothing withdrawn`);
    assert.deepEqual(endOfRibFamily(endOfRib(1)), { afi: 1, safi: 1 });
    assert.deepEqual(endOfRibFamily(endOfRib(2)), { afi: 2, safi: 1 });
    assert.equal(endOfRibFamily({ type: 'update', withdrawn: ['203.0.113.1/32'], attributes: [], nlri: [] }), undefined);
  });
});

describe('bgp decode errors carry the NOTIFICATION and the RFC 7606 treatment', () => {
  const ORIGIN = '40010100';
  const AS_PATH = '400206020100 00fc00'.replace(/ /g, '');
  const NEXT_HOP = '400304c633640b';
  const NLRI = Buffer.from('18cb0071', 'hex');
  const good = (extra: string): Buffer => update(Buffer.from(ORIGIN + AS_PATH + NEXT_HOP + extra, 'hex'), NLRI);
  const cases: { name: string; bytes: Buffer; code: number; subcode: number; treatment: string; data?: string }[] = [
    { name: 'bad marker', bytes: (() => { const b = encodeMessage({ type: 'keepalive' }); b[3] = 0; return b; })(), code: 1, subcode: 1, treatment: 'session-reset' },
    { name: 'length below 19', bytes: Buffer.from(MARKER + '001204', 'hex'), code: 1, subcode: 2, treatment: 'session-reset', data: '0012' },
    { name: 'KEEPALIVE with a body', bytes: msg(4, Buffer.from('00', 'hex')), code: 1, subcode: 2, treatment: 'session-reset', data: '0014' },
    { name: 'length above 4096', bytes: Buffer.from(MARKER + '100102', 'hex'), code: 1, subcode: 2, treatment: 'session-reset', data: '1001' },
    { name: 'unknown message type', bytes: msg(9, Buffer.alloc(4)), code: 1, subcode: 3, treatment: 'session-reset', data: '09' },
    { name: 'BGP version 3', bytes: msg(1, Buffer.from('03fc00005ac633641400', 'hex')), code: 2, subcode: 1, treatment: 'session-reset', data: '0004' },
    { name: 'optional parameters overrun', bytes: msg(1, Buffer.from('04fc00005ac633641405020302', 'hex')), code: 2, subcode: 0, treatment: 'session-reset' },
    { name: 'malformed multiprotocol capability', bytes: msg(1, Buffer.from('04fc00005ac6336414050203010100', 'hex')), code: 2, subcode: 0, treatment: 'session-reset' },
    { name: 'withdrawn length overruns', bytes: msg(2, Buffer.from('00ff0000', 'hex')), code: 3, subcode: 1, treatment: 'session-reset' },
    { name: 'attribute length overruns the message', bytes: msg(2, Buffer.from('000000ff', 'hex')), code: 3, subcode: 1, treatment: 'session-reset' },
    { name: 'NLRI prefix longer than 32', bytes: update(Buffer.from(ORIGIN + AS_PATH + NEXT_HOP, 'hex'), Buffer.from('21cb00710a00', 'hex')), code: 3, subcode: 10, treatment: 'session-reset' },
    { name: 'NLRI prefix cut short', bytes: update(Buffer.from(ORIGIN + AS_PATH + NEXT_HOP, 'hex'), Buffer.from('20cb00', 'hex')), code: 3, subcode: 10, treatment: 'session-reset' },
    { name: 'unrecognized well-known attribute', bytes: good('40630100'), code: 3, subcode: 2, treatment: 'session-reset', data: '40630100' },
    { name: 'MP_REACH_NLRI twice', bytes: update(Buffer.from('800f03000201800f03000201', 'hex')), code: 3, subcode: 1, treatment: 'session-reset' },
    { name: 'MP_REACH_NLRI with a 5-byte next hop', bytes: update(Buffer.from(ORIGIN + AS_PATH + '800e0a00020105' + '0102030405' + '00', 'hex')), code: 3, subcode: 9, treatment: 'session-reset' },
    { name: 'MP_REACH_NLRI with well-known flags', bytes: update(Buffer.from('400f03000201', 'hex')), code: 3, subcode: 4, treatment: 'session-reset' },
    { name: 'ORIGIN value 3', bytes: update(Buffer.from('40010103' + AS_PATH + NEXT_HOP, 'hex'), NLRI), code: 3, subcode: 6, treatment: 'treat-as-withdraw', data: '40010103' },
    { name: 'ORIGIN of 2 bytes', bytes: update(Buffer.from('4001020000' + AS_PATH + NEXT_HOP, 'hex'), NLRI), code: 3, subcode: 5, treatment: 'treat-as-withdraw' },
    { name: 'AS_PATH with segment type 5', bytes: update(Buffer.from(ORIGIN + '40020605010000fc00' + NEXT_HOP, 'hex'), NLRI), code: 3, subcode: 11, treatment: 'treat-as-withdraw' },
    { name: 'AS_PATH with a zero-length segment', bytes: update(Buffer.from(ORIGIN + '4002020200' + NEXT_HOP, 'hex'), NLRI), code: 3, subcode: 11, treatment: 'treat-as-withdraw' },
    { name: 'AS_PATH segment overruns', bytes: update(Buffer.from(ORIGIN + '40020602020000fc00' + NEXT_HOP, 'hex'), NLRI), code: 3, subcode: 11, treatment: 'treat-as-withdraw' },
    { name: 'NEXT_HOP of 3 bytes', bytes: update(Buffer.from(ORIGIN + AS_PATH + '400303c63364', 'hex'), NLRI), code: 3, subcode: 5, treatment: 'treat-as-withdraw' },
    { name: 'LOCAL_PREF flagged optional', bytes: good('800504 00000064'.replace(/ /g, '')), code: 3, subcode: 4, treatment: 'treat-as-withdraw' },
    { name: 'COMMUNITIES of 5 bytes', bytes: good('c00805fc00006400'), code: 3, subcode: 5, treatment: 'treat-as-withdraw' },
    { name: 'LARGE_COMMUNITY of 8 bytes', bytes: good('c02008' + '00'.repeat(8)), code: 3, subcode: 5, treatment: 'treat-as-withdraw' },
    { name: 'missing NEXT_HOP', bytes: update(Buffer.from(ORIGIN + AS_PATH, 'hex'), NLRI), code: 3, subcode: 3, treatment: 'treat-as-withdraw', data: '03' },
    { name: 'last attribute overruns the attribute list', bytes: update(Buffer.from(ORIGIN + AS_PATH + NEXT_HOP + 'c00810fc00', 'hex'), NLRI), code: 3, subcode: 1, treatment: 'treat-as-withdraw' },
    { name: 'ATOMIC_AGGREGATE with a value', bytes: good('40060100'), code: 3, subcode: 5, treatment: 'attribute-discard' },
    { name: 'AGGREGATOR of 6 bytes in a 4-octet session', bytes: good('c00706fc00c6336401'), code: 3, subcode: 5, treatment: 'attribute-discard' },
    { name: 'AS4_PATH malformed', bytes: good('c0110602020000fc00'), code: 3, subcode: 11, treatment: 'attribute-discard' },
    { name: 'MED twice', bytes: good('80040400000001' + '80040400000002'), code: 3, subcode: 1, treatment: 'attribute-discard' },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.code}/${c.subcode} ${c.treatment}`, () => {
      const err = assertCodecError(() => codec.decode(c.bytes), c.name);
      const d = bgpDetail(err);
      assert.ok(d, `${c.name}: no BGP detail on ${err.message}`);
      assert.deepEqual([d.code, d.subcode, d.treatment], [c.code, c.subcode, c.treatment], err.message);
      if (c.data !== undefined) assert.equal(d.data.toString('hex'), c.data);
    });
  }

  it('a recoverable error still hands over the whole UPDATE, the bad attribute kept raw', () => {
    const err = assertCodecError(() => codec.decode(good('c00805fc00006400')), 'communities of 5 bytes');
    const u = err.detail.update as UpdateMessage;
    assert.deepEqual(u.nlri, ['203.0.113.0/24']);
    assert.deepEqual(u.attributes.at(-1), { type: 'raw', code: 8, flags: 0xc0, value: Buffer.from('fc00006400', 'hex') });
    assert.equal((err.detail.problems as unknown[]).length, 1);
  });

  it('the worst of several problems decides the treatment', () => {
    const err = assertCodecError(() => codec.decode(good('40060100' + 'c00805fc00006400')), 'two problems');
    assert.equal(bgpDetail(err)?.treatment, 'treat-as-withdraw');
    assert.equal((err.detail.problems as unknown[]).length, 2);
  });

  it('a malformed AS_PATH is not also reported missing', () => {
    const err = assertCodecError(() => codec.decode(update(Buffer.from(ORIGIN + '4002020200' + NEXT_HOP, 'hex'), NLRI)), 'zero segment');
    assert.equal((err.detail.problems as unknown[]).length, 1);
  });

  it('an unknown optional attribute is not an error', () => {
    const m = codec.decode(good('c0630100')) as UpdateMessage;
    assert.deepEqual(m.attributes.at(-1), { type: 'raw', code: 0x63, flags: 0xc0, value: Buffer.from('00', 'hex') });
  });

  it('an UPDATE for another family stays raw and round-trips', () => {
    // MP_REACH for AFI 1 SAFI 128 (VPNv4): Portico does not parse it.
    const vpn = update(Buffer.from(ORIGIN + AS_PATH + '800e09' + '000180' + '04c6336401' + '00', 'hex'));
    const m = codec.decode(vpn) as UpdateMessage;
    assert.equal(m.attributes.at(-1)?.type, 'raw');
    assert.equal(codec.encode(m).toString('hex'), vpn.toString('hex'));
  });
});
