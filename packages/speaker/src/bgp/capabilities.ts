// BGP capabilities advertised in OPEN (RFC 5492) and their codec. Unknown
// capabilities are kept with their bytes, so an OPEN re-encodes exactly.
import { AFI_IPV4, AFI_IPV6, SAFI_UNICAST } from './ip.ts';
import { ERR_OPEN, OPEN_UNSPECIFIC, bgpError, bgpNeed } from './notification.ts';

/** Capability codes (IANA "Capability Codes"). */
export const CAP_MULTIPROTOCOL = 1;
export const CAP_ROUTE_REFRESH = 2;
export const CAP_GRACEFUL_RESTART = 64;
export const CAP_FOUR_OCTET_AS = 65;

/** A family with the per-family flags of the graceful restart capability. */
export interface GracefulRestartFamily {
  afi: number;
  safi: number;
  /** F bit: the speaker kept forwarding state for this family across its restart. */
  forwarding: boolean;
  /** The other seven flag bits, only when a peer set them (reserved, kept for a lossless re-encode). */
  reservedFlags?: number;
}

/** One capability, discriminated by `type`. */
export type Capability =
  /** RFC 4760 §8: value is AFI (2), Reserved (1), SAFI (1). */
  | { type: 'multiprotocol'; afi: number; safi: number; reserved?: number }
  /** RFC 2918 §2: empty value. */
  | { type: 'route-refresh' }
  /**
   * RFC 4724 §3 (N bit RFC 8538 §2):
   *   +--------+--------------------------+
   *   | R N x x|  Restart Time (12 bits)  |   2 octets
   *   +--------+--------------------------+
   *   | AFI (2) | SAFI (1) | Flags (1, F=0x80) |  repeated per family
   */
  | { type: 'graceful-restart'; restarting: boolean; notification: boolean; restartTime: number; families: GracefulRestartFamily[]; reservedFlags?: number }
  /** RFC 6793 §3: value is the speaker's 4-octet AS number. */
  | { type: 'four-octet-as'; asn: number }
  /** Any other capability (ADD-PATH, FQDN, enhanced route refresh, ...), kept raw. */
  | { type: 'unknown'; code: number; value: Buffer };

/** Multiprotocol capabilities for IPv4 and IPv6 unicast, the families Portico speaks. */
export const MP_IPV4_UNICAST: Capability = { type: 'multiprotocol', afi: AFI_IPV4, safi: SAFI_UNICAST };
export const MP_IPV6_UNICAST: Capability = { type: 'multiprotocol', afi: AFI_IPV6, safi: SAFI_UNICAST };

function valueLength(c: Capability): number {
  switch (c.type) {
    case 'multiprotocol': return 4;
    case 'route-refresh': return 0;
    case 'graceful-restart': return 2 + 4 * c.families.length;
    case 'four-octet-as': return 4;
    case 'unknown': return c.value.length;
  }
}

/** Bytes of one capability TLV: Code (1), Length (1), Value (RFC 5492 §4). */
export function capabilityLength(c: Capability): number {
  return 2 + valueLength(c);
}

export function encodeCapabilityInto(c: Capability, buf: Buffer, off: number): number {
  const len = valueLength(c);
  if (len > 255) throw new RangeError(`capability value of ${len} bytes does not fit its 1-octet length`);
  buf[off + 1] = len;
  const v = off + 2;
  switch (c.type) {
    case 'multiprotocol':
      buf[off] = CAP_MULTIPROTOCOL;
      buf.writeUInt16BE(c.afi, v);
      buf[v + 2] = c.reserved ?? 0;
      buf[v + 3] = c.safi;
      break;
    case 'route-refresh':
      buf[off] = CAP_ROUTE_REFRESH;
      break;
    case 'graceful-restart':
      buf[off] = CAP_GRACEFUL_RESTART;
      buf.writeUInt16BE(((c.restarting ? 0x8 : 0) | (c.notification ? 0x4 : 0) | (c.reservedFlags ?? 0)) << 12 | (c.restartTime & 0xfff), v);
      c.families.forEach((f, i) => {
        const at = v + 2 + 4 * i;
        buf.writeUInt16BE(f.afi, at);
        buf[at + 2] = f.safi;
        buf[at + 3] = (f.forwarding ? 0x80 : 0) | (f.reservedFlags ?? 0);
      });
      break;
    case 'four-octet-as':
      buf[off] = CAP_FOUR_OCTET_AS;
      buf.writeUInt32BE(c.asn >>> 0, v);
      break;
    case 'unknown':
      buf[off] = c.code;
      c.value.copy(buf, v);
      break;
  }
  return 2 + len;
}

/**
 * Decodes the capabilities filling `buf` (the value of one Capabilities
 * optional parameter). A known capability with an impossible length is an OPEN
 * Message Error with subcode 0 (RFC 4271 §6.2: recognised but malformed).
 */
export function decodeCapabilities(buf: Uint8Array, base: number): Capability[] {
  const out: Capability[] = [];
  let off = 0;
  while (off < buf.length) {
    bgpNeed(buf, off, 2, 'capability header', base, ERR_OPEN, OPEN_UNSPECIFIC);
    const code = buf[off]!;
    const len = buf[off + 1]!;
    bgpNeed(buf, off + 2, len, 'capability value', base, ERR_OPEN, OPEN_UNSPECIFIC);
    const v = Buffer.from(buf.buffer, buf.byteOffset + off + 2, len);
    const bad = (want: string): never => {
      throw bgpError(`capability ${code} has length ${len}, want ${want}`, base + off, ERR_OPEN, OPEN_UNSPECIFIC);
    };
    switch (code) {
      case CAP_MULTIPROTOCOL: {
        if (len !== 4) bad('4');
        const c: Capability = { type: 'multiprotocol', afi: v.readUInt16BE(0), safi: v[3]! };
        if (v[2] !== 0) c.reserved = v[2]!;
        out.push(c);
        break;
      }
      case CAP_ROUTE_REFRESH:
        if (len !== 0) bad('0');
        out.push({ type: 'route-refresh' });
        break;
      case CAP_GRACEFUL_RESTART: {
        if (len < 2 || (len - 2) % 4 !== 0) bad('2 + 4n');
        const word = v.readUInt16BE(0);
        const families: GracefulRestartFamily[] = [];
        for (let at = 2; at < len; at += 4) {
          const f: GracefulRestartFamily = { afi: v.readUInt16BE(at), safi: v[at + 2]!, forwarding: (v[at + 3]! & 0x80) !== 0 };
          if (v[at + 3]! & 0x7f) f.reservedFlags = v[at + 3]! & 0x7f;
          families.push(f);
        }
        const c: Capability = { type: 'graceful-restart', restarting: (word & 0x8000) !== 0, notification: (word & 0x4000) !== 0, restartTime: word & 0xfff, families };
        if ((word >> 12) & 0x3) c.reservedFlags = (word >> 12) & 0x3;
        out.push(c);
        break;
      }
      case CAP_FOUR_OCTET_AS:
        if (len !== 4) bad('4');
        out.push({ type: 'four-octet-as', asn: v.readUInt32BE(0) });
        break;
      default:
        out.push({ type: 'unknown', code, value: Buffer.from(v) });
    }
    off += 2 + len;
  }
  return out;
}
