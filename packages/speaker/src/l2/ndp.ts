// Neighbor Discovery (RFC 4861): Neighbor Solicitation and Advertisement, as
// whole ICMPv6 messages, with their options. Link-layer address options for
// Ethernet decode to MACs; any other option keeps its bytes.
import { CodecError, need, type Codec } from '../codec/errors.ts';
import { formatIPv6, formatMac, writeIPv6, writeMac } from './address.ts';
import { ICMPV6_NEIGHBOR_ADVERTISEMENT, ICMPV6_NEIGHBOR_SOLICITATION } from './icmpv6.ts';

/*
 * Neighbor Solicitation, RFC 4861 §4.3:
 *
 *   0               8               16                              32
 *   +---------------+---------------+-------------------------------+
 *   |   Type = 135  |   Code = 0    |           Checksum            |
 *   +---------------+---------------+-------------------------------+
 *   |                           Reserved                            |
 *   +---------------------------------------------------------------+
 *   |                   Target Address (128 bits)                   |
 *   +---------------------------------------------------------------+
 *   |   Options ...
 *
 * Neighbor Advertisement, RFC 4861 §4.4: the same with Type = 136 and the
 * first 3 bits of the Reserved word as flags R (router), S (solicited),
 * O (override).
 *
 * Options, RFC 4861 §4.6, each a multiple of 8 bytes:
 *
 *   |  Type (8)  | Length (8, in units of 8 bytes) | value ...
 *
 * Type 1 = Source Link-Layer Address, 2 = Target Link-Layer Address
 * (§4.6.1; for Ethernet, Length 1 and a 6-byte MAC, RFC 2464 §6).
 */

export const NDP_OPTION_SOURCE_LINK_LAYER_ADDRESS = 1;
export const NDP_OPTION_TARGET_LINK_LAYER_ADDRESS = 2;

export type NdpOption =
  | { kind: 'source-link-layer-address'; mac: string }
  | { kind: 'target-link-layer-address'; mac: string }
  /** Any other option (or a link-layer option of another length): `data` is everything after Type and Length. */
  | { kind: 'raw'; type: number; data: Buffer };

/** RFC 4861 §4.3. */
export interface NeighborSolicitation {
  type: 'neighbor-solicitation';
  code: number;
  checksum: number;
  reserved: number;
  target: string;
  options: NdpOption[];
}

/** RFC 4861 §4.4. */
export interface NeighborAdvertisement {
  type: 'neighbor-advertisement';
  code: number;
  checksum: number;
  router: boolean;
  solicited: boolean;
  override: boolean;
  /** The 29 reserved bits after the flags. */
  reserved: number;
  target: string;
  options: NdpOption[];
}

export type NdpMessage = NeighborSolicitation | NeighborAdvertisement;

const FIXED = 24;

function decodeOptions(buf: Uint8Array, start: number): NdpOption[] {
  const options: NdpOption[] = [];
  let off = start;
  while (off < buf.length) {
    need(buf, off, 2, 'NDP option header');
    const type = buf[off]!;
    const units = buf[off + 1]!;
    // RFC 4861 §4.6: an option with length zero makes the packet invalid.
    if (units === 0) throw new CodecError('PORTICO_CODEC_INVALID', `NDP option ${type} has length 0`, off + 1);
    const len = units * 8;
    need(buf, off, len, `NDP option ${type}`);
    if ((type === NDP_OPTION_SOURCE_LINK_LAYER_ADDRESS || type === NDP_OPTION_TARGET_LINK_LAYER_ADDRESS) && units === 1) {
      const mac = formatMac(buf, off + 2);
      options.push(type === NDP_OPTION_SOURCE_LINK_LAYER_ADDRESS ? { kind: 'source-link-layer-address', mac } : { kind: 'target-link-layer-address', mac });
    } else {
      options.push({ kind: 'raw', type, data: Buffer.from(buf.subarray(off + 2, off + len)) });
    }
    off += len;
  }
  return options;
}

function optionLength(o: NdpOption): number {
  if (o.kind === 'raw') {
    if ((o.data.length + 2) % 8 !== 0 || o.data.length + 2 > 255 * 8) {
      throw new CodecError('PORTICO_CODEC_INVALID', `NDP option ${o.type}: ${o.data.length} data bytes do not make a multiple of 8 with its header`, 0);
    }
    return o.data.length + 2;
  }
  return 8;
}

function encodeOptions(options: readonly NdpOption[], buf: Buffer, offset: number): number {
  let off = offset;
  for (const o of options) {
    const len = optionLength(o);
    switch (o.kind) {
      case 'source-link-layer-address':
      case 'target-link-layer-address':
        buf[off] = o.kind === 'source-link-layer-address' ? NDP_OPTION_SOURCE_LINK_LAYER_ADDRESS : NDP_OPTION_TARGET_LINK_LAYER_ADDRESS;
        buf[off + 1] = 1;
        writeMac(o.mac, buf, off + 2);
        break;
      case 'raw':
        buf[off] = o.type;
        buf[off + 1] = len / 8;
        buf.set(o.data, off + 2);
        break;
    }
    off += len;
  }
  return off - offset;
}

/** NS/NA codec over the whole ICMPv6 message (RFC 4861 §4.3, §4.4, §4.6). Other ICMPv6 types are PORTICO_CODEC_UNSUPPORTED. */
export const ndp: Codec<NdpMessage> = {
  decode(buf) {
    need(buf, 0, 4, 'ICMPv6 header');
    const type = buf[0]!;
    if (type !== ICMPV6_NEIGHBOR_SOLICITATION && type !== ICMPV6_NEIGHBOR_ADVERTISEMENT) {
      throw new CodecError('PORTICO_CODEC_UNSUPPORTED', `ICMPv6 type ${type} is not a Neighbor Solicitation or Advertisement`, 0);
    }
    need(buf, 0, FIXED, type === ICMPV6_NEIGHBOR_SOLICITATION ? 'Neighbor Solicitation' : 'Neighbor Advertisement');
    const code = buf[1]!;
    const checksum = (buf[2]! << 8) | buf[3]!;
    const word = ((buf[4]! << 24) | (buf[5]! << 16) | (buf[6]! << 8) | buf[7]!) >>> 0;
    const target = formatIPv6(buf, 8);
    const options = decodeOptions(buf, FIXED);
    if (type === ICMPV6_NEIGHBOR_SOLICITATION) {
      return { type: 'neighbor-solicitation', code, checksum, reserved: word, target, options };
    }
    return {
      type: 'neighbor-advertisement',
      code,
      checksum,
      router: (word & 0x8000_0000) !== 0,
      solicited: (word & 0x4000_0000) !== 0,
      override: (word & 0x2000_0000) !== 0,
      reserved: word & 0x1fff_ffff,
      target,
      options,
    };
  },
  encode(m) {
    const out = Buffer.alloc(this.encodedLength(m));
    this.encodeInto(m, out, 0);
    return out;
  },
  encodedLength(m) {
    return FIXED + m.options.reduce((n, o) => n + optionLength(o), 0);
  },
  encodeInto(m, buf, offset) {
    const len = this.encodedLength(m);
    need(buf, offset, len, 'NDP message');
    buf[offset] = m.type === 'neighbor-solicitation' ? ICMPV6_NEIGHBOR_SOLICITATION : ICMPV6_NEIGHBOR_ADVERTISEMENT;
    buf[offset + 1] = m.code;
    buf.writeUInt16BE(m.checksum, offset + 2);
    const word = m.type === 'neighbor-solicitation'
      ? m.reserved >>> 0
      : ((m.router ? 0x8000_0000 : 0) | (m.solicited ? 0x4000_0000 : 0) | (m.override ? 0x2000_0000 : 0) | (m.reserved & 0x1fff_ffff)) >>> 0;
    buf.writeUInt32BE(word, offset + 4);
    writeIPv6(m.target, buf, offset + 8);
    encodeOptions(m.options, buf, offset + FIXED);
    return len;
  },
};

/** The MAC of the first option of `kind`, if any. */
export function linkLayerAddress(m: NdpMessage, kind: 'source-link-layer-address' | 'target-link-layer-address'): string | undefined {
  for (const o of m.options) if (o.kind === kind) return o.mac;
  return undefined;
}
