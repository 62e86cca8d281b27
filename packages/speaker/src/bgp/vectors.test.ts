// Messages captured from FRR 8.4, BIRD 2.0 and GoBGP 3.10 (testdata/capture.ts
// made them): each decodes to what the daemon was configured to send,
// re-encodes byte for byte, and seeds the fuzzer.
import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assertCodec, fuzzDecode } from '../codec/check.ts';
import { AS_TRANS, findAttribute, mergeAs4Path } from './attributes.ts';
import { capabilitiesOf, decodeMessage, encodeMessage, endOfRibFamily, messageCodec, openAsn, type BgpMessage, type MessageContext } from './message.ts';
import { describeNotification } from './notification.ts';

const DIR = join(dirname(fileURLToPath(import.meta.url)), 'testdata');
const FILES = readdirSync(DIR).filter((f) => f.endsWith('.bin')).sort();
/** Sessions named as2 were recorded with a peer that did not offer 4-octet AS. */
const ctxFor = (file: string): MessageContext => ({ fourOctetAs: !file.includes('-as2-') });
const load = (file: string): Buffer => readFileSync(join(DIR, file));
function decoded<T extends BgpMessage['type']>(file: string, type: T): Extract<BgpMessage, { type: T }> {
  const m = decodeMessage(load(file), ctxFor(file));
  assert.equal(m.type, type, file);
  return m as Extract<BgpMessage, { type: T }>;
}
const attrs = (file: string) => decoded(file, 'update').attributes;

describe('bgp captured vectors', () => {
  it('are all there: three daemons, every message type', () => {
    for (const d of ['frr-8.4', 'bird-2.0', 'gobgp-3.10']) {
      for (const kind of ['open', 'keepalive', 'eor-ipv4', 'v6session-eor-ipv6', 'notification-6-2', 'badas-notification-2-2', 'update-withdraw-ipv4', 'v6session-update-withdraw-ipv6']) {
        assert.ok(FILES.includes(`${d}-${kind}.bin`), `${d}-${kind}.bin missing`);
      }
    }
    assert.ok(FILES.some((f) => f.includes('route-refresh')));
  });

  for (const file of FILES) {
    it(`${file} decodes and re-encodes byte for byte`, () => {
      const bytes = load(file);
      assertCodec(messageCodec(ctxFor(file)), decodeMessage(bytes, ctxFor(file)), bytes);
    });
  }

  it('FRR OPEN: AS_TRANS with the real AS in the capability, one capability per parameter, unknown ones raw', () => {
    const o = decoded('frr-8.4-open.bin', 'open');
    assert.equal(o.myAsn, AS_TRANS);
    assert.equal(openAsn(o), 4200000001);
    assert.equal(o.holdTime, 9);
    assert.equal(o.bgpId, '198.51.100.2');
    assert.ok(o.parameters.length > 5 && o.parameters.every((p) => p.type === 'capabilities' && p.capabilities.length === 1));
    const caps = capabilitiesOf(o);
    assert.deepEqual(caps.find((c) => c.type === 'multiprotocol'), { type: 'multiprotocol', afi: 1, safi: 1 });
    assert.ok(caps.some((c) => c.type === 'route-refresh'));
    // FRR has just started, so it announces itself as restarting, with the N bit of RFC 8538.
    assert.deepEqual(caps.find((c) => c.type === 'graceful-restart'), {
      type: 'graceful-restart', restarting: true, notification: true, restartTime: 120, families: [{ afi: 1, safi: 1, forwarding: false }],
    });
    const fqdn = caps.find((c) => c.type === 'unknown' && c.code === 73);
    assert.ok(fqdn?.type === 'unknown' && fqdn.value.includes(Buffer.from('pbgpcap-frr')));
  });

  it('BIRD and GoBGP OPENs: all capabilities in one parameter', () => {
    const b = decoded('bird-2.0-open.bin', 'open');
    assert.equal(b.parameters.length, 1);
    assert.equal(openAsn(b), 64502);
    assert.equal(b.myAsn, 64502);
    assert.deepEqual(capabilitiesOf(b).filter((c) => c.type === 'multiprotocol'), [{ type: 'multiprotocol', afi: 1, safi: 1 }]);
    assert.deepEqual(capabilitiesOf(decoded('bird-2.0-v6session-open.bin', 'open')).filter((c) => c.type === 'multiprotocol'), [{ type: 'multiprotocol', afi: 2, safi: 1 }]);
    const g = decoded('gobgp-3.10-open.bin', 'open');
    assert.equal(g.parameters.length, 1);
    assert.equal(openAsn(g), 4200000003);
    assert.equal(g.bgpId, '198.51.100.4');
  });

  it('FRR UPDATE: communities, large community, MED, and the AS_PATH with the extended-length flag', () => {
    const a = attrs('frr-8.4-update-ipv4-communities.bin');
    assert.deepEqual(decoded('frr-8.4-update-ipv4-communities.bin', 'update').nlri, ['203.0.113.0/24']);
    assert.deepEqual(findAttribute(a, 'as-path'), { type: 'as-path', segments: [{ type: 'sequence', asns: [4200000001] }], flags: 0x50 });
    assert.equal(findAttribute(a, 'next-hop')?.nextHop, '198.51.100.2');
    assert.equal(findAttribute(a, 'med')?.med, 50);
    assert.deepEqual(findAttribute(a, 'communities')?.communities, ['64501:100', '64501:200']);
    assert.deepEqual(findAttribute(a, 'large-communities')?.communities, ['4200000001:1:2']);
  });

  it('FRR and GoBGP to a 2-octet peer: AS_TRANS plus AS4_PATH, which merge to the real path', () => {
    for (const [file, asn] of [['frr-8.4-as2-update-ipv4-communities.bin', 4200000001], ['gobgp-3.10-as2-update-ipv4-communities.bin', 4200000003]] as const) {
      const a = attrs(file);
      assert.deepEqual(findAttribute(a, 'as-path')?.segments, [{ type: 'sequence', asns: [AS_TRANS] }], file);
      assert.deepEqual(mergeAs4Path(findAttribute(a, 'as-path')!.segments, findAttribute(a, 'as4-path')?.segments), [{ type: 'sequence', asns: [asn] }], file);
    }
    // BIRD's AS fits two octets: no AS4_PATH.
    assert.equal(findAttribute(attrs('bird-2.0-as2-update-ipv4-communities.bin'), 'as4-path'), undefined);
  });

  it('IPv6 UPDATEs: MP_REACH_NLRI with global and link-local next hops (FRR, BIRD) or global only (GoBGP)', () => {
    const frr = findAttribute(attrs('frr-8.4-v6session-update-ipv6-communities.bin'), 'mp-reach')!;
    assert.deepEqual([frr.afi, frr.safi, frr.nlri], [2, 1, ['2001:db8:ff01::/48']]);
    assert.equal(frr.nextHops[0], '2001:db8:ca::2');
    assert.match(frr.nextHops[1]!, /^fe80::/);
    const bird = findAttribute(attrs('bird-2.0-v6session-update-ipv6-communities.bin'), 'mp-reach')!;
    assert.equal(bird.nextHops[0], '2001:db8:ca::3');
    assert.ok(bird.nlri.includes('2001:db8:ff02::/48'));
    const gobgp = attrs('gobgp-3.10-v6session-update-ipv6-communities.bin');
    assert.deepEqual(findAttribute(gobgp, 'mp-reach')?.nextHops, ['2001:db8:ca::4']);
    assert.deepEqual(findAttribute(gobgp, 'communities')?.communities, ['65003:100']);
    assert.deepEqual(findAttribute(gobgp, 'large-communities')?.communities, ['4200000003:1:2']);
    // GoBGP does not put MP_REACH_NLRI first.
    assert.notEqual(gobgp[0]?.type, 'mp-reach');
  });

  it('withdrawals: IPv4 in Withdrawn Routes, IPv6 in MP_UNREACH_NLRI', () => {
    assert.deepEqual(decoded('frr-8.4-update-withdraw-ipv4.bin', 'update').withdrawn, ['203.0.113.1/32']);
    assert.deepEqual(decoded('bird-2.0-update-withdraw-ipv4.bin', 'update').withdrawn, ['203.0.113.34/32']);
    assert.deepEqual(decoded('gobgp-3.10-update-withdraw-ipv4.bin', 'update').withdrawn, ['203.0.113.65/32']);
    assert.deepEqual(findAttribute(attrs('frr-8.4-v6session-update-withdraw-ipv6.bin'), 'mp-unreach')?.withdrawn, ['2001:db8:ff01:1::/64']);
    assert.deepEqual(findAttribute(attrs('bird-2.0-v6session-update-withdraw-ipv6.bin'), 'mp-unreach')?.withdrawn, ['2001:db8:ff02:2::/64']);
    assert.deepEqual(findAttribute(attrs('gobgp-3.10-v6session-update-withdraw-ipv6.bin'), 'mp-unreach')?.withdrawn, ['2001:db8:ff03:1::/64']);
  });

  it('End-of-RIB from every daemon, for both families', () => {
    for (const d of ['frr-8.4', 'bird-2.0', 'gobgp-3.10']) {
      assert.deepEqual(endOfRibFamily(decoded(`${d}-eor-ipv4.bin`, 'update')), { afi: 1, safi: 1 }, d);
      assert.deepEqual(endOfRibFamily(decoded(`${d}-v6session-eor-ipv6.bin`, 'update')), { afi: 2, safi: 1 }, d);
    }
  });

  it('NOTIFICATIONs read as an operator would want them', () => {
    const say = (f: string): string => describeNotification(decoded(f, 'notification'));
    assert.equal(say('frr-8.4-notification-6-2.bin'), 'Cease / Administrative Shutdown: "maintenance"');
    assert.equal(say('bird-2.0-notification-6-2.bin'), 'Cease / Administrative Shutdown: "maintenance"');
    assert.equal(say('gobgp-3.10-notification-6-2.bin'), 'Cease / Administrative Shutdown');
    // Bad Peer AS: FRR sends the 2-octet AS it got, BIRD four octets, GoBGP nothing.
    assert.equal(say('frr-8.4-badas-notification-2-2.bin'), 'OPEN Message Error / Bad Peer AS (data fde7)');
    assert.equal(say('bird-2.0-badas-notification-2-2.bin'), 'OPEN Message Error / Bad Peer AS (data 0000fde7)');
    assert.equal(say('gobgp-3.10-badas-notification-2-2.bin'), 'OPEN Message Error / Bad Peer AS');
    assert.equal(say('frr-8.4-v6session-notification-5-0.bin'), 'Finite State Machine Error / Unspecified Error');
  });

  it('ROUTE-REFRESH requests from FRR and BIRD', () => {
    assert.deepEqual(decoded('frr-8.4-route-refresh-ipv4.bin', 'route-refresh'), { type: 'route-refresh', afi: 1, safi: 1, subtype: 0 });
    assert.deepEqual(decoded('bird-2.0-v6session-route-refresh-ipv6.bin', 'route-refresh'), { type: 'route-refresh', afi: 2, safi: 1, subtype: 0 });
  });
});

/**
 * Most mutations break the header's length field and die there; writing the
 * real length back lets the fuzzer reach OPEN, UPDATE and attribute parsing.
 */
export function withLength(b: Uint8Array): Buffer {
  const out = Buffer.from(b);
  if (out.length >= 19 && out.length <= 0xffff) out.writeUInt16BE(out.length, 16);
  return out;
}

describe('bgp fuzzing seeded with the captured vectors', () => {
  const seeds = FILES.map(load);
  for (const ctx of [{ fourOctetAs: true }, { fourOctetAs: false }]) {
    it(`never throws anything but a CodecError (fourOctetAs ${ctx.fourOctetAs})`, function () {
      this.timeout(60_000);
      const r = fuzzDecode((b) => decodeMessage(b, ctx), seeds, { iterations: 20_000, seed: ctx.fourOctetAs ? 7 : 11, encode: (m) => encodeMessage(m, ctx) });
      assert.ok(r.decoded > 300 && r.rejected > 1000, JSON.stringify(r));
    });
    it(`reaches the message bodies with the header length fixed up (fourOctetAs ${ctx.fourOctetAs})`, function () {
      this.timeout(60_000);
      const r = fuzzDecode((b) => decodeMessage(withLength(b), ctx), seeds, { iterations: 20_000, seed: ctx.fourOctetAs ? 13 : 17, encode: (m) => encodeMessage(m, ctx) });
      assert.ok(r.decoded > 800 && r.rejected > 1000, JSON.stringify(r));
    });
  }

  const crashes = FILES.filter((f) => f.startsWith('crash-'));
  for (const file of crashes) {
    it(`${file}: a former fuzz crash now decodes or fails cleanly`, () => {
      for (const ctx of [{ fourOctetAs: true }, { fourOctetAs: false }]) {
        try {
          encodeMessage(decodeMessage(load(file), ctx), ctx);
        } catch (err) {
          assert.equal((err as Error).name, 'CodecError', `${file}: ${String(err)}`);
        }
      }
    });
  }
});
