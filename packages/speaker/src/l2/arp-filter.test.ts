import { strict as assert } from 'node:assert';
import { ARP_FILTER_TABLE, renderArpFilter, renderArpFilterDelete } from './arp-filter.ts';

describe('strict ARP through nftables: the table arp portico', () => {
  it('holds each IPv4 VIP once, in address order; IPv6 VIPs are left out (NDP needs no filter)', () => {
    const s = renderArpFilter(['198.51.100.10', '2001:db8::1', '198.51.100.9', '198.51.100.10', '203.0.113.1']);
    assert.match(s, /^\s*elements = \{ 198\.51\.100\.9, 198\.51\.100\.10, 203\.0\.113\.1 \}$/m);
    assert.doesNotMatch(s, /2001:db8/);
  });

  it('replaces the whole table in one transaction (created first, so the delete cannot fail) and touches no other table', () => {
    const lines = renderArpFilter(['198.51.100.1']).split('\n');
    assert.deepEqual(lines.slice(0, 3), ['table arp portico', 'delete table arp portico', 'table arp portico {']);
    const tables = lines.filter((l) => /^\s*(add |delete )?table /.test(l));
    assert.ok(tables.every((l) => l.includes(`arp ${ARP_FILTER_TABLE}`)), tables.join('\n'));
    assert.doesNotMatch(renderArpFilter([]), /flush ruleset|\binet\b|table ip/);
  });

  it('drops only replies the kernel sends from a VIP, on output (the speaker answers through AF_PACKET, which netfilter never sees)', () => {
    const s = renderArpFilter(['198.51.100.1']);
    assert.match(s, /type filter hook output priority 0; policy accept;/);
    const rules = s.split('\n').filter((l) => /\b(drop|accept|reject)\b/.test(l) && !l.includes('policy'));
    assert.deepEqual(rules.map((l) => l.trim()), ['arp operation reply arp saddr ip @vips counter drop']);
  });

  it('with no VIP the set is empty and the table still valid; removal names only this table', () => {
    const s = renderArpFilter([]);
    assert.doesNotMatch(s, /elements/);
    assert.match(s, /set vips \{\n\s+type ipv4_addr;\n\s+\}/);
    assert.equal(renderArpFilterDelete(), 'table arp portico\ndelete table arp portico\n');
  });
});
