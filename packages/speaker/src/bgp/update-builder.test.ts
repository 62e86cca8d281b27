import { strict as assert } from 'node:assert';
import type { PathAttribute } from './attributes.ts';
import { decodeMessage, encodeMessage, messageLength, FOUR_OCTET, type UpdateMessage } from './message.ts';
import { orderAttributes, packAnnouncements, packWithdrawals } from './update-builder.ts';

// 10,000 distinct IPv4 /32s and IPv6 /128s.
const V4 = Array.from({ length: 10_000 }, (_, i) => `100.${64 + (i >> 16)}.${(i >> 8) & 0xff}.${i & 0xff}/32`);
const V6 = Array.from({ length: 10_000 }, (_, i) => `2001:db8:ffff::${(i + 1).toString(16)}/128`);

const base: PathAttribute[] = [
  { type: 'local-pref', localPref: 100 },
  { type: 'origin', origin: 'igp' },
  { type: 'as-path', segments: [{ type: 'sequence', asns: [64512] }] },
  { type: 'communities', communities: ['64512:100'] },
  { type: 'next-hop', nextHop: '198.51.100.11' },
  { type: 'mp-reach', afi: 2, safi: 1, nextHops: ['2001:db8:1::11'], nlri: [] },
];

function roundTrip(msgs: UpdateMessage[]): UpdateMessage[] {
  return msgs.map((m) => {
    const bytes = encodeMessage(m);
    assert.ok(bytes.length <= 4096, `message of ${bytes.length} bytes`);
    return decodeMessage(bytes) as UpdateMessage;
  });
}

describe('bgp update builder', function () {
  // 20,000 prefixes encoded, decoded and compared: about 2 s on an idle machine, more on a shared one. A correctness test, not a benchmark.
  this.timeout(30_000);
  it('packs 10,000 IPv4 and 10,000 IPv6 prefixes into few full messages', () => {
    const msgs = roundTrip(packAnnouncements(base, [...V4, ...V6], FOUR_OCTET));
    const v4Msgs = msgs.filter((m) => m.nlri.length > 0);
    const v6Msgs = msgs.filter((m) => m.nlri.length === 0);
    assert.deepEqual(v4Msgs.flatMap((m) => m.nlri), V4);
    assert.deepEqual(v6Msgs.flatMap((m) => m.attributes.flatMap((a) => (a.type === 'mp-reach' ? a.nlri : []))), V6);
    // A /32 is 5 bytes and a /128 17: 4096 minus the headers leaves room for about 800 and 235.
    assert.ok(v4Msgs.length <= 13, `${v4Msgs.length} IPv4 messages`);
    assert.ok(v6Msgs.length <= 44, `${v6Msgs.length} IPv6 messages`);
    // Every message but the last of each family is full to within one prefix.
    for (const m of v4Msgs.slice(0, -1)) assert.ok(messageLength(m) > 4096 - 5, `IPv4 message of ${messageLength(m)}`);
    for (const m of v6Msgs.slice(0, -1)) assert.ok(messageLength(m) > 4096 - 17, `IPv6 message of ${messageLength(m)}`);
  });

  it('gives each family only its own next hop, MP_REACH_NLRI first, the rest by type code', () => {
    const [a, b] = packAnnouncements(base, ['203.0.113.10/32', '2001:db8:2::10/128'], FOUR_OCTET);
    assert.deepEqual(a?.attributes.map((x) => x.type), ['origin', 'as-path', 'next-hop', 'local-pref', 'communities']);
    assert.deepEqual(b?.attributes.map((x) => x.type), ['mp-reach', 'origin', 'as-path', 'local-pref', 'communities']);
    assert.deepEqual(orderAttributes([{ type: 'med', med: 1 }, { type: 'origin', origin: 'egp' }]).map((x) => x.type), ['origin', 'med']);
  });

  it('packs withdrawals of both families', () => {
    const msgs = roundTrip(packWithdrawals([...V4, ...V6]));
    assert.deepEqual(msgs.flatMap((m) => m.withdrawn), V4);
    assert.deepEqual(msgs.flatMap((m) => m.attributes.flatMap((a) => (a.type === 'mp-unreach' ? a.withdrawn : []))), V6);
    assert.ok(msgs.length <= 13 + 44, `${msgs.length} messages`);
  });

  it('respects a smaller maximum and refuses an announcement without a next hop', () => {
    const msgs = packAnnouncements(base, V4.slice(0, 100), FOUR_OCTET, 200);
    assert.ok(msgs.length > 1 && msgs.every((m) => messageLength(m) <= 200));
    assert.throws(() => packAnnouncements(base.filter((a) => a.type !== 'next-hop'), ['203.0.113.1/32'], FOUR_OCTET), /next-hop/);
    assert.throws(() => packAnnouncements(base.filter((a) => a.type !== 'mp-reach'), ['2001:db8::1/128'], FOUR_OCTET), /mp-reach/);
    assert.deepEqual(packAnnouncements(base, [], FOUR_OCTET), []);
  });
});
