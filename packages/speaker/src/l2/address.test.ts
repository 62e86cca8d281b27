import { strict as assert } from 'node:assert';
import { canonicalIP, formatIPv6, ipv6MulticastMac, isIPv4, isIPv6, parseIPv6, parseMac, formatMac, solicitedNodeMulticast } from './address.ts';

describe('layer-2 address text', () => {
  const v6: Array<[string, string]> = [
    ['2001:db8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:DB8::0001', '2001:db8::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not "::" (RFC 5952 §4.2.2)
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longest run wins
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // equal runs: the first
    ['::ffff:198.51.100.7', '::ffff:c633:6407'],
    ['64:ff9b::203.0.113.1', '64:ff9b::cb00:7101'],
  ];
  for (const [input, canonical] of v6) {
    it(`${input} -> ${canonical}`, () => {
      assert.equal(canonicalIP(input), canonical);
      assert.equal(formatIPv6(parseIPv6(canonical)), canonical);
    });
  }

  it('rejects malformed addresses', () => {
    for (const bad of ['', ':', '1:2:3:4:5:6:7:8:9', '1::2::3', '12345::', 'g::1', '1:2:3:4:5:6:7', '::1.2.3', '1.2.3.4', ':1::2', '1:2:3:4:5:6:7:8::']) {
      assert.equal(isIPv6(bad), false, bad);
    }
    for (const bad of ['256.1.1.1', '1.2.3', '01.2.3.4', '1.2.3.4.5', '']) assert.equal(isIPv4(bad), false, bad);
    assert.throws(() => parseMac('00:11:22:33:44'), /not a MAC/);
  });

  it('MACs are lower case and accept dashes', () => {
    assert.equal(formatMac(parseMac('02-AA-bb-CC-00-01')), '02:aa:bb:cc:00:01');
  });

  it('solicited-node group and its MAC (RFC 4291 §2.7.1, RFC 2464 §7)', () => {
    assert.equal(solicitedNodeMulticast('2001:db8:4::2'), 'ff02::1:ff00:2');
    assert.equal(solicitedNodeMulticast('2001:db8::abcd:1234:5678'), 'ff02::1:ff34:5678');
    assert.equal(ipv6MulticastMac('ff02::1:ff34:5678'), '33:33:ff:34:56:78');
    assert.equal(ipv6MulticastMac('ff02::1'), '33:33:00:00:00:01');
  });
});
