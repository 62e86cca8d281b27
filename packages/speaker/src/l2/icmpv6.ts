// ICMPv6 messages (RFC 4443 §2.1) and their checksum over the IPv6
// pseudo-header (RFC 8200 §8.1). The checksum is a plain field so a decoded
// message re-encodes exactly; icmpv6Checksum() computes or verifies it.
import { need, type Codec } from '../codec/errors.ts';
import { writeIPv6 } from './address.ts';
import { NEXT_HEADER_ICMPV6 } from './ipv6.ts';

/*
 * RFC 4443 §2.1:
 *
 *   0               8               16                              32
 *   +---------------+---------------+-------------------------------+
 *   |     Type      |     Code      |           Checksum            |
 *   +---------------+---------------+-------------------------------+
 *   |                         Message Body                          |
 *
 * The checksum (RFC 4443 §2.3) is the 16-bit one's complement of the one's
 * complement sum of this pseudo-header (RFC 8200 §8.1) and the message, with
 * the checksum field taken as zero:
 *
 *   | Source Address (16) | Destination Address (16) |
 *   | Upper-Layer Packet Length (4) | zero (3) | Next Header = 58 (1) |
 */

export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;
export const ICMPV6_ROUTER_SOLICITATION = 133;
export const ICMPV6_ROUTER_ADVERTISEMENT = 134;
export const ICMPV6_NEIGHBOR_SOLICITATION = 135;
export const ICMPV6_NEIGHBOR_ADVERTISEMENT = 136;

export interface ICMPv6Message {
  type: number;
  code: number;
  checksum: number;
  body: Buffer;
}

/** ICMPv6 header codec (RFC 4443 §2.1). */
export const icmpv6: Codec<ICMPv6Message> = {
  decode(buf) {
    need(buf, 0, 4, 'ICMPv6 header');
    return {
      type: buf[0]!,
      code: buf[1]!,
      checksum: (buf[2]! << 8) | buf[3]!,
      body: Buffer.from(buf.subarray(4)),
    };
  },
  encode(m) {
    const out = Buffer.alloc(this.encodedLength(m));
    this.encodeInto(m, out, 0);
    return out;
  },
  encodedLength(m) {
    return 4 + m.body.length;
  },
  encodeInto(m, buf, offset) {
    const len = this.encodedLength(m);
    need(buf, offset, len, 'ICMPv6 message');
    buf[offset] = m.type;
    buf[offset + 1] = m.code;
    buf.writeUInt16BE(m.checksum, offset + 2);
    buf.set(m.body, offset + 4);
    return len;
  },
};

function sum16(buf: Uint8Array, start: number, end: number, acc: number): number {
  let i = start;
  for (; i + 1 < end; i += 2) acc += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) acc += buf[i]! << 8;
  return acc;
}

/**
 * RFC 4443 §2.3 checksum of the ICMPv6 message `msg` sent from `source` to
 * `destination`, computed as if the checksum field (bytes 2-3) were zero.
 * A received message is intact when this equals its checksum field.
 */
export function icmpv6Checksum(source: string, destination: string, msg: Uint8Array): number {
  const pseudo = Buffer.alloc(40);
  writeIPv6(source, pseudo, 0);
  writeIPv6(destination, pseudo, 16);
  pseudo.writeUInt32BE(msg.length, 32);
  pseudo[39] = NEXT_HEADER_ICMPV6;
  let acc = sum16(pseudo, 0, 40, 0);
  acc = sum16(msg, 0, Math.min(2, msg.length), acc);
  acc = sum16(msg, 4, msg.length, acc);
  while (acc > 0xffff) acc = (acc % 0x10000) + Math.floor(acc / 0x10000);
  return ~acc & 0xffff;
}

/** The message with its checksum field filled in for `source` -> `destination`. */
export function withChecksum(m: ICMPv6Message, source: string, destination: string): ICMPv6Message {
  const bytes = icmpv6.encode({ ...m, checksum: 0 });
  return { ...m, checksum: icmpv6Checksum(source, destination, bytes) };
}

/** True when `msg` (encoded ICMPv6) carries the right checksum for `source` -> `destination`. */
export function checksumValid(source: string, destination: string, msg: Uint8Array): boolean {
  if (msg.length < 4) return false;
  return icmpv6Checksum(source, destination, msg) === ((msg[2]! << 8) | msg[3]!);
}
