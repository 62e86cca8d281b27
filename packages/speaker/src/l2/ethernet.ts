// Ethernet II frames with any number of IEEE 802.1Q / 802.1ad VLAN tags.
// The payload is kept whole (including any padding to the 60-byte minimum),
// so decode -> encode gives back the frame byte for byte.
import { CodecError, need, type Codec } from '../codec/errors.ts';
import { formatMac, writeMac } from './address.ts';

/*
 * Ethernet II (IEEE 802.3 clause 3, without preamble and FCS):
 *
 *   0                   6                  12            14
 *   +-------------------+------------------+-------------+--------------
 *   | destination MAC   | source MAC       | EtherType   | payload ...
 *   +-------------------+------------------+-------------+--------------
 *
 * With VLAN tags (IEEE 802.1Q §9.6), each tag sits before the EtherType:
 *
 *   | dst (6) | src (6) | TPID (2) | PCP:3 DEI:1 VID:12 (2) | ... | EtherType (2) | payload
 *
 * TPID 0x8100 is a C-tag (802.1Q), 0x88a8 an S-tag (802.1ad, "QinQ").
 */

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
export const TPID_8021Q = 0x8100;
export const TPID_8021AD = 0x88a8;
/** Pre-standard QinQ TPID still seen on some switches. */
export const TPID_QINQ_LEGACY = 0x9100;

const HEADER = 14;
const TAG = 4;

/** One IEEE 802.1Q tag. */
export interface VlanTag {
  /** Tag protocol identifier: 0x8100, 0x88a8 or 0x9100. */
  tpid: number;
  /** Priority code point, 0-7. */
  priority: number;
  /** Drop eligible indicator. */
  dropEligible: boolean;
  /** VLAN identifier, 0-4095 (0 = priority tag only). */
  id: number;
}

export interface EthernetFrame {
  destination: string;
  source: string;
  /** Outermost first; empty for an untagged frame. */
  tags: VlanTag[];
  /** The EtherType after the tags (values below 0x0600 are an IEEE 802.3 length; kept as is). */
  etherType: number;
  payload: Buffer;
}

function isTpid(x: number): boolean {
  return x === TPID_8021Q || x === TPID_8021AD || x === TPID_QINQ_LEGACY;
}

/** Ethernet II codec (IEEE 802.3, IEEE 802.1Q tags). */
export const ethernet: Codec<EthernetFrame> = {
  decode(buf) {
    need(buf, 0, HEADER, 'Ethernet header');
    const tags: VlanTag[] = [];
    let off = 12;
    let type = (buf[off]! << 8) | buf[off + 1]!;
    while (isTpid(type)) {
      need(buf, off, TAG + 2, '802.1Q tag');
      const tci = (buf[off + 2]! << 8) | buf[off + 3]!;
      tags.push({ tpid: type, priority: tci >> 13, dropEligible: (tci & 0x1000) !== 0, id: tci & 0x0fff });
      off += TAG;
      type = (buf[off]! << 8) | buf[off + 1]!;
    }
    return {
      destination: formatMac(buf, 0),
      source: formatMac(buf, 6),
      tags,
      etherType: type,
      payload: Buffer.from(buf.subarray(off + 2)),
    };
  },
  encode(frame) {
    const out = Buffer.alloc(this.encodedLength(frame));
    this.encodeInto(frame, out, 0);
    return out;
  },
  encodedLength(frame) {
    return HEADER + TAG * frame.tags.length + frame.payload.length;
  },
  encodeInto(frame, buf, offset) {
    const len = this.encodedLength(frame);
    need(buf, offset, len, 'Ethernet frame');
    writeMac(frame.destination, buf, offset);
    writeMac(frame.source, buf, offset + 6);
    let off = offset + 12;
    for (const t of frame.tags) {
      if (!isTpid(t.tpid) || t.id < 0 || t.id > 4095 || t.priority < 0 || t.priority > 7) {
        throw new CodecError('PORTICO_CODEC_INVALID', `bad VLAN tag ${JSON.stringify(t)}`, off);
      }
      buf.writeUInt16BE(t.tpid, off);
      buf.writeUInt16BE((t.priority << 13) | (t.dropEligible ? 0x1000 : 0) | t.id, off + 2);
      off += TAG;
    }
    if (isTpid(frame.etherType)) throw new CodecError('PORTICO_CODEC_INVALID', `EtherType 0x${frame.etherType.toString(16)} is a VLAN TPID: put the tag in tags`, off);
    buf.writeUInt16BE(frame.etherType, off);
    buf.set(frame.payload, off + 2);
    return len;
  },
};
