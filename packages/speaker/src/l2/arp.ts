// ARP (RFC 826) packets. Ethernet/IPv4 ARP, the only kind Portico answers,
// decodes to MAC and IPv4 strings; any other hardware/protocol pair keeps its
// addresses as raw bytes, so every well-formed ARP packet re-encodes exactly.
import { CodecError, need, type Codec } from '../codec/errors.ts';
import { formatIPv4, formatMac, writeIPv4, writeMac } from './address.ts';

/*
 * RFC 826, "Packet format":
 *
 *   0        2        4    5    6         8
 *   +--------+--------+----+----+---------+
 *   | hrd    | pro    |hln |pln | op      |   hrd 1 = Ethernet, pro 0x0800 = IPv4
 *   +--------+--------+----+----+---------+
 *   | sha (hln bytes) | spa (pln bytes)   |   sender hardware / protocol address
 *   | tha (hln bytes) | tpa (pln bytes)   |   target hardware / protocol address
 *   +-----------------+-------------------+
 *
 * Ethernet/IPv4 ARP is 28 bytes. ARP has no length field: bytes after tpa are
 * Ethernet padding (the 60-byte minimum frame), not ARP, and decode ignores them.
 */

export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;
export const ARP_HARDWARE_ETHERNET = 1;
export const ARP_PROTOCOL_IPV4 = 0x0800;
export const ARP_ETHERNET_IPV4_LENGTH = 28;

/** Ethernet/IPv4 ARP (hrd 1, pro 0x0800, hln 6, pln 4). */
export interface ArpEthernetIPv4 {
  kind: 'ethernet-ipv4';
  /** 1 = request, 2 = reply (RFC 826); other values are kept. */
  operation: number;
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
}

/** Any other hardware/protocol pair, addresses kept as bytes. */
export interface ArpRaw {
  kind: 'raw';
  hardwareType: number;
  protocolType: number;
  operation: number;
  senderHardware: Buffer;
  senderProtocol: Buffer;
  targetHardware: Buffer;
  targetProtocol: Buffer;
}

export type ArpPacket = ArpEthernetIPv4 | ArpRaw;

/** RFC 826 ARP codec. */
export const arp: Codec<ArpPacket> = {
  decode(buf) {
    need(buf, 0, 8, 'ARP header');
    const hrd = (buf[0]! << 8) | buf[1]!;
    const pro = (buf[2]! << 8) | buf[3]!;
    const hln = buf[4]!;
    const pln = buf[5]!;
    const op = (buf[6]! << 8) | buf[7]!;
    need(buf, 8, 2 * (hln + pln), 'ARP addresses');
    if (hrd === ARP_HARDWARE_ETHERNET && pro === ARP_PROTOCOL_IPV4 && hln === 6 && pln === 4) {
      return {
        kind: 'ethernet-ipv4',
        operation: op,
        senderMac: formatMac(buf, 8),
        senderIp: formatIPv4(buf, 14),
        targetMac: formatMac(buf, 18),
        targetIp: formatIPv4(buf, 24),
      };
    }
    let off = 8;
    const take = (n: number): Buffer => { const b = Buffer.from(buf.subarray(off, off + n)); off += n; return b; };
    return {
      kind: 'raw',
      hardwareType: hrd,
      protocolType: pro,
      operation: op,
      senderHardware: take(hln),
      senderProtocol: take(pln),
      targetHardware: take(hln),
      targetProtocol: take(pln),
    };
  },
  encode(p) {
    const out = Buffer.alloc(this.encodedLength(p));
    this.encodeInto(p, out, 0);
    return out;
  },
  encodedLength(p) {
    if (p.kind === 'ethernet-ipv4') return ARP_ETHERNET_IPV4_LENGTH;
    return 8 + 2 * (p.senderHardware.length + p.senderProtocol.length);
  },
  encodeInto(p, buf, offset) {
    const len = this.encodedLength(p);
    need(buf, offset, len, 'ARP packet');
    if (p.kind === 'ethernet-ipv4') {
      buf.writeUInt16BE(ARP_HARDWARE_ETHERNET, offset);
      buf.writeUInt16BE(ARP_PROTOCOL_IPV4, offset + 2);
      buf[offset + 4] = 6;
      buf[offset + 5] = 4;
      buf.writeUInt16BE(p.operation, offset + 6);
      writeMac(p.senderMac, buf, offset + 8);
      writeIPv4(p.senderIp, buf, offset + 14);
      writeMac(p.targetMac, buf, offset + 18);
      writeIPv4(p.targetIp, buf, offset + 24);
      return len;
    }
    const hln = p.senderHardware.length;
    const pln = p.senderProtocol.length;
    if (p.targetHardware.length !== hln || p.targetProtocol.length !== pln || hln > 255 || pln > 255) {
      throw new CodecError('PORTICO_CODEC_INVALID', 'ARP sender and target addresses differ in length', offset);
    }
    buf.writeUInt16BE(p.hardwareType, offset);
    buf.writeUInt16BE(p.protocolType, offset + 2);
    buf[offset + 4] = hln;
    buf[offset + 5] = pln;
    buf.writeUInt16BE(p.operation, offset + 6);
    let off = offset + 8;
    for (const b of [p.senderHardware, p.senderProtocol, p.targetHardware, p.targetProtocol]) {
      buf.set(b, off);
      off += b.length;
    }
    return len;
  },
};
