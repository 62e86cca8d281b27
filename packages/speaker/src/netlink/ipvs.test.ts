import { strict as assert } from 'node:assert';
import { assertCodecError } from '../codec/check.ts';
import { IPVS_CMD, IPVS_SVC_ATTR, NLM_F } from './constants.ts';
import { ipvsCodec, ipvsRequest, parseIpvsInfo, parseIpvsMessage, parseService, type IpvsDest, type IpvsService } from './ipvs.ts';
import type { GenlMessage } from './message.ts';
import { attr } from './attr.ts';
import { vector } from './testdata.ts';

const IPVS_ID = 0x20;
const codec = ipvsCodec(IPVS_ID);
const genl = (name: string, i = 0): GenlMessage => {
  const m = codec.decode(vector(name))[i];
  assert.ok(m?.kind === 'genl', `${name}[${i}] is a genl message`);
  return m;
};

// What ipvsadm sends besides the fields its command line names: flags with a
// full mask, timeout 0, a host netmask, and zeroed tunnel fields for dests.
const noFlags = { flags: 0, mask: 0xffffffff };
const tcp80: IpvsService = { family: 'inet', protocol: 'tcp', address: '203.0.113.10', port: 80 };
const tcp80Full: IpvsService = { ...tcp80, scheduler: '', flags: noFlags, timeout: 0, netmask: 32 };
const tun0 = { tunnelType: 0, tunnelPort: 0, tunnelFlags: 0 };

/**
 * Each ipvsadm capture: the command, the cmd it sends, and what it means in
 * Portico's types. Building the request from those types must give ipvsadm's bytes.
 */
const REQUESTS: Array<{ name: string; cmd: number; dump?: boolean; service: IpvsService; dest?: IpvsDest }> = [
  { name: 'ipvsadm-add-service-tcp', cmd: IPVS_CMD.NEW_SERVICE, service: { ...tcp80, scheduler: 'rr', flags: noFlags, timeout: 0, netmask: 32 } },
  { name: 'ipvsadm-add-service-udp6-persistent', cmd: IPVS_CMD.NEW_SERVICE, service: { family: 'inet6', protocol: 'udp', address: '2001:db8::10', port: 53, scheduler: 'sh', flags: { flags: 1, mask: 0xffffffff }, timeout: 300, netmask: 128 } },
  { name: 'ipvsadm-add-service-sctp', cmd: IPVS_CMD.NEW_SERVICE, service: { family: 'inet', protocol: 'sctp', address: '203.0.113.11', port: 9000, scheduler: 'wrr', flags: noFlags, timeout: 0, netmask: 32 } },
  { name: 'ipvsadm-add-service-fwmark', cmd: IPVS_CMD.NEW_SERVICE, service: { family: 'inet', fwmark: 42, scheduler: 'wlc', flags: { flags: 1, mask: 0xffffffff }, timeout: 60, netmask: 24 } },
  { name: 'ipvsadm-set-service-tcp', cmd: IPVS_CMD.SET_SERVICE, service: { ...tcp80, scheduler: 'wlc', flags: noFlags, timeout: 0, netmask: 32 } },
  { name: 'ipvsadm-del-service-sctp', cmd: IPVS_CMD.DEL_SERVICE, service: { family: 'inet', protocol: 'sctp', address: '203.0.113.11', port: 9000, scheduler: '', flags: noFlags, timeout: 0, netmask: 32 } },
  { name: 'ipvsadm-add-dest-masq', cmd: IPVS_CMD.NEW_DEST, service: tcp80Full, dest: { family: 'inet', address: '198.51.100.21', port: 8080, forward: 'masq', weight: 2, ...tun0, upperThreshold: 100, lowerThreshold: 10 } },
  { name: 'ipvsadm-add-dest-dr', cmd: IPVS_CMD.NEW_DEST, service: tcp80Full, dest: { family: 'inet', address: '198.51.100.22', port: 80, forward: 'dr', weight: 1, ...tun0, upperThreshold: 0, lowerThreshold: 0 } },
  { name: 'ipvsadm-add-dest-tunnel', cmd: IPVS_CMD.NEW_DEST, service: tcp80Full, dest: { family: 'inet', address: '198.51.100.23', port: 80, forward: 'tunnel', weight: 1, ...tun0, upperThreshold: 0, lowerThreshold: 0 } },
  { name: 'ipvsadm-add-dest-udp6', cmd: IPVS_CMD.NEW_DEST, service: { family: 'inet6', protocol: 'udp', address: '2001:db8::10', port: 53, scheduler: '', flags: noFlags, timeout: 0, netmask: 128 }, dest: { family: 'inet6', address: '2001:db8::21', port: 5353, forward: 'masq', weight: 3, ...tun0, upperThreshold: 0, lowerThreshold: 0 } },
  { name: 'ipvsadm-set-dest-masq', cmd: IPVS_CMD.SET_DEST, service: tcp80Full, dest: { family: 'inet', address: '198.51.100.21', port: 8080, forward: 'masq', weight: 0, ...tun0, upperThreshold: 0, lowerThreshold: 0 } },
  // ipvsadm -d fills in its defaults (direct routing, weight 1); the kernel matches on address and port only.
  { name: 'ipvsadm-del-dest', cmd: IPVS_CMD.DEL_DEST, service: tcp80Full, dest: { family: 'inet', address: '198.51.100.23', port: 80, forward: 'dr', weight: 1, ...tun0, upperThreshold: 0, lowerThreshold: 0 } },
  { name: 'ipvsadm-dump-dests-tcp', cmd: IPVS_CMD.GET_DEST, dump: true, service: tcp80 },
  { name: 'ipvsadm-dump-dests-fwmark', cmd: IPVS_CMD.GET_DEST, dump: true, service: { family: 'inet', fwmark: 42 } },
];

describe('IPVS messages', () => {
  for (const r of REQUESTS) {
    it(`${r.name}: parses to Portico's types, and building those gives ipvsadm's bytes`, () => {
      const m = genl(r.name);
      assert.equal(m.cmd, r.cmd);
      assert.equal(m.version, 1);
      const parsed = parseIpvsMessage(m);
      assert.deepEqual(parsed, r.dest ? { service: r.service, dest: r.dest } : { service: r.service });
      const built = ipvsRequest(r.cmd, { service: r.service, ...(r.dest ? { dest: r.dest } : {}) }, { familyId: IPVS_ID, seq: m.header.seq, pid: m.header.pid, dump: r.dump ?? false });
      assert.equal(codec.encode([built]).toString('hex'), vector(r.name).toString('hex'));
    });
  }

  it('the service dump (kernel-ipvs-dump-services) lists all four services with flags and counters', () => {
    const services = codec.decode(vector('kernel-ipvs-dump-services')).map((m) => {
      assert.ok(m.kind === 'genl' && m.cmd === IPVS_CMD.NEW_SERVICE);
      return parseIpvsMessage(m).service!;
    });
    const key = (s: IpvsService): string => (s.fwmark !== undefined ? `fwm ${s.fwmark}` : `${s.protocol} ${s.address} ${s.port}`);
    assert.deepEqual(services.map(key).sort(), ['fwm 42', 'sctp 203.0.113.11 9000', 'tcp 203.0.113.10 80', 'udp 2001:db8::10 53']);
    const tcp = services.find((s) => s.protocol === 'tcp')!;
    assert.equal(tcp.scheduler, 'wlc', 'set-service changed rr to wlc');
    assert.equal(tcp.flags!.flags & 2, 2, 'IP_VS_SVC_F_HASHED');
    assert.equal(tcp.stats!.conns, 1, 'the curl in the capture made one connection');
    assert.equal(tcp.stats!.inBytes, 60, 'one SYN of 60 bytes');
    const udp = services.find((s) => s.protocol === 'udp')!;
    assert.deepEqual([udp.scheduler, udp.timeout, udp.netmask, udp.flags!.flags & 1], ['sh', 300, 128, 1]);
    const fwm = services.find((s) => s.fwmark === 42)!;
    assert.deepEqual([fwm.netmask, fwm.timeout], [24, 60]);
  });

  it('the destination dump (kernel-ipvs-dump-dests-tcp) gives forwarding, weights and connection counts', () => {
    const dests = codec.decode(vector('kernel-ipvs-dump-dests-tcp')).map((m) => {
      assert.ok(m.kind === 'genl' && m.cmd === IPVS_CMD.NEW_DEST);
      return parseIpvsMessage(m, 'inet').dest!;
    });
    const byAddr = Object.fromEntries(dests.map((d) => [d.address, d]));
    assert.deepEqual(Object.keys(byAddr).sort(), ['198.51.100.21', '198.51.100.22', '198.51.100.23']);
    assert.deepEqual([byAddr['198.51.100.21']!.forward, byAddr['198.51.100.21']!.weight, byAddr['198.51.100.21']!.port], ['masq', 5, 8080]);
    assert.equal(byAddr['198.51.100.22']!.forward, 'dr');
    assert.equal(byAddr['198.51.100.23']!.forward, 'tunnel');
    // ipvsadm -Ln showed ActiveConn 1 on the tunnel destination.
    assert.deepEqual([byAddr['198.51.100.23']!.activeConns, byAddr['198.51.100.23']!.inactiveConns], [1, 0]);
    assert.equal(dests.reduce((n, d) => n + (d.activeConns ?? 0) + (d.inactiveConns ?? 0), 0), 1);
    const [udp] = codec.decode(vector('kernel-ipvs-dump-dests-udp6'));
    assert.ok(udp?.kind === 'genl');
    assert.deepEqual(parseIpvsMessage(udp).dest, {
      address: '2001:db8::21', port: 5353, family: 'inet6', forward: 'masq', weight: 3, ...tun0, upperThreshold: 0, lowerThreshold: 0,
      activeConns: 0, inactiveConns: 0, persistConns: 0,
      stats: { conns: 0, inPackets: 0, outPackets: 0, inBytes: 0, outBytes: 0, cps: 0, inPps: 0, outPps: 0, inBps: 0, outBps: 0 },
    });
  });

  it('GET_INFO answers with the IPVS version and table size (kernel-ipvs-info)', () => {
    assert.equal(genl('ipvsadm-get-info').cmd, IPVS_CMD.GET_INFO);
    assert.deepEqual(parseIpvsInfo(genl('kernel-ipvs-info')), { version: '1.2.1', connTableSize: 4096 });
  });

  it('the service dump request asks for a dump with an ACK', () => {
    const m = genl('ipvsadm-dump-services');
    assert.equal(m.cmd, IPVS_CMD.GET_SERVICE);
    assert.equal(m.header.flags, NLM_F.REQUEST | NLM_F.ACK | NLM_F.DUMP);
    assert.deepEqual(m.attrs, []);
    assert.equal(codec.encode([ipvsRequest(IPVS_CMD.GET_SERVICE, {}, { familyId: IPVS_ID, seq: m.header.seq, pid: m.header.pid, dump: true })]).toString('hex'), vector('ipvsadm-dump-services').toString('hex'));
  });

  it('netmask: IPv4 as a mask, IPv6 as a length; nonsense is a CodecError', () => {
    const v4 = (mask: number[]): IpvsService => parseService([attr.u16(IPVS_SVC_ATTR.AF, 2), attr.bytes(IPVS_SVC_ATTR.NETMASK, Buffer.from(mask))]);
    assert.equal(v4([255, 255, 255, 255]).netmask, 32);
    assert.equal(v4([255, 255, 0, 0]).netmask, 16);
    assert.equal(v4([0, 0, 0, 0]).netmask, 0);
    assertCodecError(() => v4([255, 0, 255, 0]), 'non-contiguous mask');
    assertCodecError(() => parseService([attr.u16(IPVS_SVC_ATTR.AF, 7)]), 'unknown family');
    assertCodecError(() => parseService([attr.u16(IPVS_SVC_ATTR.AF, 2), attr.u16(IPVS_SVC_ATTR.PROTOCOL, 1)]), 'ICMP is no IPVS protocol');
    assert.throws(() => ipvsRequest(IPVS_CMD.NEW_SERVICE, { service: { family: 'inet', address: '2001:db8::1', port: 1, protocol: 'tcp' } }, { familyId: IPVS_ID, seq: 1 }), /not of family inet/);
  });
});
