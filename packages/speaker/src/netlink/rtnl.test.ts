import { strict as assert } from 'node:assert';
import { IFA_F, IFF, NLM_F, RTM } from './constants.ts';
import { getFamilyRequest, parseFamily } from './genl.ts';
import { bytesToIp, ipToBytes } from './ip.ts';
import { ipvsCodec } from './ipvs.ts';
import { routeCodec, type AddrMessage, type LinkMessage } from './message.ts';
import { addrRequest, delLinkRequest, dumpAddrsRequest, dumpLinksRequest, getLinkRequest, newLinkRequest, parseAddr, parseLink, PORTICO_LINK } from './rtnl.ts';
import { vector } from './testdata.ts';

const link = (name: string, i = 0): LinkMessage => {
  const m = routeCodec.decode(vector(name))[i];
  assert.ok(m?.kind === 'link', `${name}[${i}] is a link message`);
  return m;
};
const addr = (name: string): AddrMessage => {
  const m = routeCodec.decode(vector(name))[0];
  assert.ok(m?.kind === 'addr', `${name} is an address message`);
  return m;
};
/** Our request with the capture's sequence number and port id must be iproute2's bytes. */
const sameBytes = (ours: LinkMessage | AddrMessage, name: string): void => {
  assert.equal(routeCodec.encode([ours]).toString('hex'), vector(name).toString('hex'), name);
};

describe('rtnetlink links', () => {
  it('creating portico0 as a dummy link is what `ip link add portico0 type dummy` sends', () => {
    const captured = link('iproute2-link-add-dummy');
    assert.equal(captured.header.type, RTM.NEWLINK);
    assert.equal(captured.header.flags, NLM_F.REQUEST | NLM_F.ACK | NLM_F.EXCL | NLM_F.CREATE);
    sameBytes(newLinkRequest(PORTICO_LINK, 'dummy', { seq: captured.header.seq }), 'iproute2-link-add-dummy');
  });

  it('deleting by index is what `ip link del portico0` sends', () => {
    const captured = link('iproute2-link-del');
    assert.equal(captured.header.type, RTM.DELLINK);
    sameBytes(delLinkRequest({ index: 3 }, { seq: captured.header.seq }), 'iproute2-link-del');
  });

  it('the kernel\'s answer about portico0 (kernel-link-portico0) reads as a down dummy link', () => {
    const l = parseLink(link('kernel-link-portico0'));
    assert.equal(l.name, 'portico0');
    assert.equal(l.kind, 'dummy');
    assert.equal(l.index, 3);
    assert.equal(l.up, false);
    assert.equal(l.flags & IFF.NOARP, IFF.NOARP);
    assert.equal(l.mtu, 1500);
    assert.match(l.mac ?? '', /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    const req = link('iproute2-link-get');
    assert.equal(req.header.type, RTM.GETLINK);
    sameBytes(getLinkRequest('portico0', { seq: req.header.seq }), 'iproute2-link-get');
  });

  it('a link dump (kernel-link-dump) lists lo, vip0 and portico0 as a multipart answer', () => {
    const msgs = routeCodec.decode(vector('kernel-link-dump'));
    const links = msgs.map((m) => {
      assert.ok(m.kind === 'link');
      assert.equal(m.header.flags & NLM_F.MULTI, NLM_F.MULTI);
      return parseLink(m);
    });
    assert.deepEqual(links.map((l) => [l.index, l.name, l.kind, l.up]), [[1, 'lo', undefined, true], [2, 'vip0', 'dummy', true], [3, 'portico0', 'dummy', false]]);
    const [done] = routeCodec.decode(vector('kernel-link-dump-done'));
    assert.equal(done?.kind, 'done');
    assert.equal(done.header.seq, msgs[0]!.header.seq);
    const req = link('iproute2-link-dump');
    assert.equal(req.header.flags, NLM_F.REQUEST | NLM_F.DUMP);
    sameBytes(dumpLinksRequest({ seq: req.header.seq }), 'iproute2-link-dump');
  });
});

describe('rtnetlink addresses', () => {
  it('an IPv4 /32 VIP is what `ip addr add 203.0.113.20/32 dev portico0` sends', () => {
    const m = addr('iproute2-addr-add-v4');
    assert.deepEqual(parseAddr(m), { family: 'inet', index: 3, address: '203.0.113.20', prefixLength: 32, flags: 0, scope: 0 });
    sameBytes(addrRequest('add', { index: 3, address: '203.0.113.20' }, { seq: m.header.seq }), 'iproute2-addr-add-v4');
    sameBytes(addrRequest('del', { index: 3, address: '203.0.113.20' }, { seq: addr('iproute2-addr-del-v4').header.seq }), 'iproute2-addr-del-v4');
  });

  it('an IPv6 /128 VIP goes on with IFA_F_NODAD, as `ip addr add ... nodad` sends', () => {
    const m = addr('iproute2-addr-add-v6-nodad');
    assert.equal(m.flags, IFA_F.NODAD);
    assert.equal(m.prefixLength, 128);
    sameBytes(addrRequest('add', { index: 3, address: '2001:db8::20' }, { seq: m.header.seq }), 'iproute2-addr-add-v6-nodad');
    sameBytes(addrRequest('del', { index: 3, address: '2001:db8::20' }, { seq: addr('iproute2-addr-del-v6').header.seq }), 'iproute2-addr-del-v6');
  });

  it('the address dump of portico0 gives both VIPs, the IPv6 one without DAD', () => {
    assert.deepEqual(parseAddr(addr('kernel-addr-dump-v4')), { family: 'inet', index: 3, address: '203.0.113.20', prefixLength: 32, flags: IFA_F.PERMANENT, scope: 0, label: 'portico0' });
    const v6 = parseAddr(addr('kernel-addr-dump-v6'));
    assert.deepEqual([v6.address, v6.prefixLength], ['2001:db8::20', 128]);
    assert.equal(v6.flags & IFA_F.NODAD, IFA_F.NODAD);
    assert.equal(v6.flags & IFA_F.TENTATIVE, 0, 'usable at once');
    const req = addr('iproute2-addr-dump');
    assert.equal(req.header.flags, NLM_F.REQUEST | NLM_F.DUMP);
    sameBytes(dumpAddrsRequest({ seq: req.header.seq }, { index: 3 }), 'iproute2-addr-dump');
  });
});

describe('generic netlink family resolution', () => {
  const generic = ipvsCodec(0x20);
  it('CTRL_CMD_GETFAMILY "IPVS" is what ipvsadm (libnl) sends; the answer gives id 0x20, version 1 and its commands', () => {
    const [req] = generic.decode(vector('ipvsadm-genl-getfamily-ipvs'));
    assert.ok(req?.kind === 'genl');
    assert.equal(generic.encode([getFamilyRequest('IPVS', req.header.seq, { pid: req.header.pid })]).toString('hex'), vector('ipvsadm-genl-getfamily-ipvs').toString('hex'));
    const [ans] = generic.decode(vector('kernel-genl-family-ipvs'));
    assert.ok(ans?.kind === 'genl');
    const f = parseFamily(ans);
    assert.deepEqual([f.id, f.name, f.version, f.maxAttr, f.groups], [0x20, 'IPVS', 1, 6, []]);
    assert.deepEqual(f.ops.map((o) => o.id), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 17], 'every IPVS command but SET_INFO (14, only an answer)');
  });

  it('the nlctrl family answer names its multicast group "notify"', () => {
    const [req] = generic.decode(vector('genl-getfamily-nlctrl'));
    assert.ok(req?.kind === 'genl');
    assert.equal(generic.encode([getFamilyRequest('nlctrl', req.header.seq, { version: 0 })]).toString('hex'), vector('genl-getfamily-nlctrl').toString('hex'));
    const [ans] = generic.decode(vector('kernel-genl-family-nlctrl'));
    assert.ok(ans?.kind === 'genl');
    assert.deepEqual(parseFamily(ans).groups, [{ name: 'notify', id: 0x10 }]);
  });
});

describe('IP address bytes', () => {
  const cases: Array<[string, string]> = [
    ['203.0.113.7', 'cb007107'],
    ['2001:db8::10', '20010db8000000000000000000000010'],
    ['2001:db8::1:0:0:1', '20010db8000000000001000000000001'],
    ['::', '00000000000000000000000000000000'],
    ['::1', '00000000000000000000000000000001'],
    ['2001:db8::', '20010db8000000000000000000000000'],
    ['::ffff:198.51.100.1', '00000000000000000000ffffc6336401'],
    ['2001:db8:1:2:3:4:5:6', '20010db8000100020003000400050006'],
  ];
  for (const [text, bytes] of cases) {
    it(`${text} <-> ${bytes}`, () => {
      assert.equal(ipToBytes(text).toString('hex'), bytes);
      // The embedded-IPv4 form parses but formats as plain hex groups.
      if (!text.startsWith('::ffff:')) assert.equal(bytesToIp(Buffer.from(bytes, 'hex')), text);
    });
  }
  it('formats with the longest zero run compressed (RFC 5952 §4.2.3) and no single-group ::', () => {
    assert.equal(bytesToIp(ipToBytes('2001:0:0:1:0:0:0:1')), '2001:0:0:1::1');
    assert.equal(bytesToIp(ipToBytes('2001:db8:0:0:1:0:0:1')), '2001:db8::1:0:0:1', 'the first of two equal runs');
    assert.equal(bytesToIp(ipToBytes('2001:db8:0:1:1:1:1:1')), '2001:db8:0:1:1:1:1:1');
  });
});
