// The IPv6 fixed header (RFC 8200 §3). Extension headers are not parsed: they
// stay in the payload, with nextHeader naming the first one.
import { CodecError, need, type Codec } from '../codec/errors.ts';
import { formatIPv6, writeIPv6 } from './address.ts';

/*
 * RFC 8200 §3:
 *
 *   0       4               12                              32 bits
 *   +-------+---------------+-------------------------------+
 *   |Version| Traffic Class |           Flow Label          |
 *   +-------+---------------+---------------+---------------+
 *   |         Payload Length        |  Next Header  |   Hop Limit   |
 *   +-------------------------------+---------------+---------------+
 *   |                 Source Address (128 bits)                     |
 *   |              Destination Address (128 bits)                   |
 *   +---------------------------------------------------------------+
 *
 * Payload Length counts the bytes after this 40-byte header. Bytes past it in
 * the buffer are link-layer padding and are not part of the packet.
 */

export const IPV6_HEADER_LENGTH = 40;
export const NEXT_HEADER_HOP_BY_HOP = 0;
export const NEXT_HEADER_ICMPV6 = 58;

export interface IPv6Packet {
  trafficClass: number;
  flowLabel: number;
  nextHeader: number;
  hopLimit: number;
  source: string;
  destination: string;
  /** Everything after the fixed header, as long as Payload Length says. */
  payload: Buffer;
}

/** IPv6 fixed-header codec (RFC 8200 §3). */
export const ipv6: Codec<IPv6Packet> = {
  decode(buf) {
    need(buf, 0, IPV6_HEADER_LENGTH, 'IPv6 header');
    const version = buf[0]! >> 4;
    if (version !== 6) throw new CodecError('PORTICO_CODEC_INVALID', `IPv6 version field is ${version}`, 0);
    const payloadLength = (buf[4]! << 8) | buf[5]!;
    need(buf, IPV6_HEADER_LENGTH, payloadLength, 'IPv6 payload');
    return {
      trafficClass: ((buf[0]! & 0x0f) << 4) | (buf[1]! >> 4),
      flowLabel: ((buf[1]! & 0x0f) << 16) | (buf[2]! << 8) | buf[3]!,
      nextHeader: buf[6]!,
      hopLimit: buf[7]!,
      source: formatIPv6(buf, 8),
      destination: formatIPv6(buf, 24),
      payload: Buffer.from(buf.subarray(IPV6_HEADER_LENGTH, IPV6_HEADER_LENGTH + payloadLength)),
    };
  },
  encode(p) {
    const out = Buffer.alloc(this.encodedLength(p));
    this.encodeInto(p, out, 0);
    return out;
  },
  encodedLength(p) {
    return IPV6_HEADER_LENGTH + p.payload.length;
  },
  encodeInto(p, buf, offset) {
    const len = this.encodedLength(p);
    need(buf, offset, len, 'IPv6 packet');
    if (p.payload.length > 0xffff) throw new CodecError('PORTICO_CODEC_INVALID', 'IPv6 payload over 65535 bytes needs a jumbogram', offset);
    buf.writeUInt32BE(((6 << 28) | ((p.trafficClass & 0xff) << 20) | (p.flowLabel & 0xfffff)) >>> 0, offset);
    buf.writeUInt16BE(p.payload.length, offset + 4);
    buf[offset + 6] = p.nextHeader;
    buf[offset + 7] = p.hopLimit;
    writeIPv6(p.source, buf, offset + 8);
    writeIPv6(p.destination, buf, offset + 24);
    buf.set(p.payload, offset + IPV6_HEADER_LENGTH);
    return len;
  },
};
