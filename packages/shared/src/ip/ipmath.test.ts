import { strict as assert } from 'node:assert';
import { buggyCount, formatIP, formatRange, isBuggyIP, nthNonBuggy, parseIP, parseRange, rangeSize, rangesOverlap } from './ipmath.ts';
import { isPorticoError } from '../errors.ts';

describe('ipmath', function () {
  it('parses and formats addresses canonically', function () {
    const table: [string, string, string][] = [
      ['203.0.113.7', 'IPv4', '203.0.113.7'],
      ['2001:0DB8:0000::0001', 'IPv6', '2001:db8::1'],
      [' 198.51.100.1 ', 'IPv4', '198.51.100.1'],
    ];
    for (const [text, family, canon] of table) {
      const ip = parseIP(text);
      assert.equal(ip.family, family, text);
      assert.equal(formatIP(ip), canon, text);
    }
  });

  it('refuses what is not an address', function () {
    for (const bad of ['', '203.0.113', '203.0.113.256', '203.0.113.0/24', '2001:db8::1%eth0', 'example.com', '2001:db8:::1']) {
      assert.throws(() => parseIP(bad), (e: unknown) => isPorticoError(e, 'PORTICO_INVALID_ADDRESS'), bad);
    }
  });

  it('parses CIDRs and ranges into BigInt bounds', function () {
    const table: [string, string, bigint][] = [
      ['203.0.113.0/24', '203.0.113.0/24', 256n],
      ['203.0.113.10-203.0.113.20', '203.0.113.10-203.0.113.20', 11n],
      ['203.0.113.10 - 203.0.113.10', '203.0.113.10', 1n],
      ['2001:db8::/64', '2001:db8::/64', 1n << 64n],
      ['2001:db8::/32', '2001:db8::/32', 1n << 96n],
      ['198.51.100.4/32', '198.51.100.4', 1n],
      ['2001:db8::5-2001:db8::a', '2001:db8::5-2001:db8::a', 6n],
    ];
    for (const [text, formatted, size] of table) {
      const r = parseRange(text);
      assert.equal(rangeSize(r), size, text);
      assert.equal(formatRange(r), formatted, text);
    }
  });

  it('refuses malformed CIDRs and inverted ranges with a reason', function () {
    const table: [string, RegExp][] = [
      ['203.0.113.1/24', /host bits/],
      ['203.0.113.0/33', /longer than 32/],
      ['203.0.113.20-203.0.113.10', /ends before it starts/],
      ['203.0.113.1-2001:db8::1', /different families/],
      ['nonsense', /neither a CIDR nor a range/],
      ['203.0.113.0/x', /not a CIDR/],
    ];
    for (const [text, why] of table) {
      assert.throws(() => parseRange(text), (e: unknown) => isPorticoError(e, 'PORTICO_INVALID_RANGE') && why.test(e.message), text);
    }
  });

  it('detects overlaps within a family only', function () {
    assert.equal(rangesOverlap(parseRange('203.0.113.0/24'), parseRange('203.0.113.128-203.0.114.1')), true);
    assert.equal(rangesOverlap(parseRange('203.0.113.0/25'), parseRange('203.0.113.128/25')), false);
    assert.equal(rangesOverlap(parseRange('0.0.0.0/0'), parseRange('::/0')), false);
  });

  it('counts and skips buggy IPv4 addresses in O(1)', function () {
    const v = (s: string): bigint => parseIP(s).value;
    assert.equal(isBuggyIP('IPv4', v('203.0.113.0')), true);
    assert.equal(isBuggyIP('IPv4', v('203.0.113.255')), true);
    assert.equal(isBuggyIP('IPv6', parseIP('2001:db8::ff').value), false);
    assert.equal(buggyCount(v('203.0.113.0'), v('203.0.113.255')), 2n);
    assert.equal(buggyCount(v('203.0.113.1'), v('203.0.113.254')), 0n);
    assert.equal(buggyCount(v('203.0.113.255'), v('203.0.114.0')), 2n);
    // Brute-force cross-check of nthNonBuggy over a few blocks.
    const start = v('198.51.100.250');
    let k = 0n;
    for (let x = start; x < start + 600n; x++) {
      if (isBuggyIP('IPv4', x)) continue;
      assert.equal(nthNonBuggy(start, k), x, `k=${k}`);
      k++;
    }
  });
});
