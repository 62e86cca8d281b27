import { strict as assert } from 'node:assert';
import { assertCodec, hex } from '../codec/check.ts';
import { arp, ARP_REPLY, ARP_REQUEST, type ArpPacket } from './arp.ts';
import { vector } from './testdata/vectors.ts';

const payload = (name: string): Buffer => vector(name).subarray(14);

describe('arp codec (RFC 826)', () => {
  it('the kernel ARP request, field by field', () => {
    const bytes = hex`
      0001           # hardware type: Ethernet
      0800           # protocol type: IPv4
      06             # hardware address length
      04             # protocol address length
      0001           # operation: request
      92045640aaf7   # sender MAC
      c6336401       # sender IP 198.51.100.1
      000000000000   # target MAC: unknown
      c6336402       # target IP 198.51.100.2`;
    assert.deepEqual(bytes, payload('kernel-arp-request'));
    assertCodec(arp, {
      kind: 'ethernet-ipv4',
      operation: ARP_REQUEST,
      senderMac: '92:04:56:40:aa:f7',
      senderIp: '198.51.100.1',
      targetMac: '00:00:00:00:00:00',
      targetIp: '198.51.100.2',
    }, bytes);
  });

  it('the kernel ARP reply', () => {
    assertCodec(arp, {
      kind: 'ethernet-ipv4',
      operation: ARP_REPLY,
      senderMac: '9a:24:36:c8:aa:98',
      senderIp: '198.51.100.2',
      targetMac: '92:04:56:40:aa:f7',
      targetIp: '198.51.100.1',
    }, payload('kernel-arp-reply'));
  });

  it('the kernel gratuitous request: sender IP = target IP', () => {
    const p = arp.decode(payload('kernel-arp-gratuitous-request'));
    assert.equal(p.kind, 'ethernet-ipv4');
    if (p.kind !== 'ethernet-ipv4') return;
    assert.equal(p.operation, ARP_REQUEST);
    assert.equal(p.senderIp, p.targetIp);
  });

  it('ignores Ethernet padding after the target address', () => {
    const padded = Buffer.concat([payload('kernel-arp-request'), Buffer.alloc(18)]);
    assert.equal(arp.encode(arp.decode(padded)).length, 28);
  });

  it('keeps other hardware/protocol pairs raw (here: an IPv6-sized protocol address)', () => {
    const bytes = hex`
      0006           # hardware type: IEEE 802
      86dd           # protocol type: IPv6
      06 10          # lengths: 6 and 16
      0002           # operation: reply
      020000000001 20010db8000000000000000000000001
      020000000002 20010db8000000000000000000000002`;
    const value: ArpPacket = {
      kind: 'raw',
      hardwareType: 6,
      protocolType: 0x86dd,
      operation: 2,
      senderHardware: hex`020000000001`,
      senderProtocol: hex`20010db8000000000000000000000001`,
      targetHardware: hex`020000000002`,
      targetProtocol: hex`20010db8000000000000000000000002`,
    };
    assertCodec(arp, value, bytes);
  });
});
