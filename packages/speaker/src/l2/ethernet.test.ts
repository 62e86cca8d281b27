import { strict as assert } from 'node:assert';
import { assertCodec, assertCodecError, hex } from '../codec/check.ts';
import { ethernet, ETHERTYPE_ARP, ETHERTYPE_IPV6, TPID_8021AD, TPID_8021Q, type EthernetFrame } from './ethernet.ts';
import { vector } from './testdata/vectors.ts';

describe('ethernet codec', () => {
  it('decodes the kernel ARP request frame', () => {
    const bytes = vector('kernel-arp-request');
    const frame: EthernetFrame = {
      destination: 'ff:ff:ff:ff:ff:ff',
      source: '92:04:56:40:aa:f7',
      tags: [],
      etherType: ETHERTYPE_ARP,
      payload: bytes.subarray(14),
    };
    assertCodec(ethernet, frame, bytes, { truncation: 14 });
  });

  it('decodes the kernel NS frame to the solicited-node MAC', () => {
    const f = ethernet.decode(vector('kernel-ndp-ns-multicast'));
    assert.equal(f.destination, '33:33:ff:00:00:02');
    assert.equal(f.etherType, ETHERTYPE_IPV6);
    assert.equal(f.payload.length, 72);
  });

  it('an 802.1Q tag: PCP, DEI and VID', () => {
    const bytes = hex`
      ffffffffffff   # destination: broadcast
      020000000001   # source
      8100           # TPID: 802.1Q
      b064           # TCI: PCP 5, DEI 1, VID 100
      0806           # EtherType: ARP
      0001           # payload (2 bytes)`;
    assertCodec(ethernet, {
      destination: 'ff:ff:ff:ff:ff:ff',
      source: '02:00:00:00:00:01',
      tags: [{ tpid: TPID_8021Q, priority: 5, dropEligible: true, id: 100 }],
      etherType: ETHERTYPE_ARP,
      payload: Buffer.from([0, 1]),
    }, bytes, { truncation: 18 });
  });

  it('QinQ: an 802.1ad S-tag outside an 802.1Q C-tag', () => {
    const bytes = hex`
      333300000001   # destination
      020000000002   # source
      88a8 000a      # S-tag: VID 10
      8100 0fff      # C-tag: VID 4095
      86dd           # EtherType: IPv6`;
    assertCodec(ethernet, {
      destination: '33:33:00:00:00:01',
      source: '02:00:00:00:00:02',
      tags: [
        { tpid: TPID_8021AD, priority: 0, dropEligible: false, id: 10 },
        { tpid: TPID_8021Q, priority: 0, dropEligible: false, id: 4095 },
      ],
      etherType: ETHERTYPE_IPV6,
      payload: Buffer.alloc(0),
    }, bytes);
  });

  it('keeps padding to the 60-byte minimum in the payload', () => {
    const padded = Buffer.concat([vector('kernel-arp-reply'), Buffer.alloc(18)]);
    const f = ethernet.decode(padded);
    assert.equal(f.payload.length, 46);
    assert.deepEqual(ethernet.encode(f), padded);
  });

  it('rejects a tag cut short and refuses to encode a TPID as EtherType or a bad VID', () => {
    assertCodecError(() => ethernet.decode(hex`ffffffffffff 020000000001 8100 0064`), 'tag without EtherType');
    const base: EthernetFrame = { destination: 'ff:ff:ff:ff:ff:ff', source: '02:00:00:00:00:01', tags: [], etherType: TPID_8021Q, payload: Buffer.alloc(0) };
    assertCodecError(() => ethernet.encode(base), 'TPID as EtherType');
    assertCodecError(() => ethernet.encode({ ...base, etherType: ETHERTYPE_ARP, tags: [{ tpid: TPID_8021Q, priority: 0, dropEligible: false, id: 4096 }] }), 'VID 4096');
    assertCodecError(() => ethernet.encode({ ...base, etherType: ETHERTYPE_ARP, source: 'not-a-mac' }), 'bad MAC');
  });
});
