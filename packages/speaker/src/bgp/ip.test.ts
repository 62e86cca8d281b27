import { strict as assert } from 'node:assert';
import { canonicalPrefix, formatIPv6, parseIPv6, parsePrefix } from './ip.ts';

describe('bgp ip helpers', () => {
  const cases: [string, string][] = [
    ['2001:db8::1', '20010db8000000000000000000000001'],
    ['::', '00000000000000000000000000000000'],
    ['2001:db8:0:1:1:1:1:1', '20010db8000000010001000100010001'],
    ['2001:0:0:1::1', '20010000000000010000000000000001'],
    ['fe80::11', 'fe800000000000000000000000000011'],
    ['::ffff:198.51.100.1', '00000000000000000000ffffc6336401'],
  ];
  for (const [text, bytes] of cases) {
    it(`parses ${text}`, () => assert.equal(parseIPv6(text).toString('hex'), bytes));
  }
  it('formats in RFC 5952 form: longest run compressed, a single zero group not', () => {
    assert.equal(formatIPv6(Buffer.from('20010db8000000010001000100010001', 'hex')), '2001:db8:0:1:1:1:1:1');
    assert.equal(formatIPv6(Buffer.from('20010000000000010000000000000001', 'hex')), '2001:0:0:1::1');
    assert.equal(formatIPv6(Buffer.alloc(16)), '::');
  });
  it('parses and canonicalises prefixes, refusing bad ones', () => {
    assert.equal(parsePrefix('203.0.113.0/24').length, 24);
    assert.equal(canonicalPrefix('203.0.113.77/26'), '203.0.113.64/26');
    assert.equal(canonicalPrefix('2001:db8:1:2::1/48'), '2001:db8:1::/48');
    for (const bad of ['203.0.113.0', '203.0.113.0/33', '2001:db8::/129', 'x/1', '203.0.113.0/-1']) assert.throws(() => parsePrefix(bad), TypeError, bad);
  });
});
