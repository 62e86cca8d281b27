// NLRI prefixes: the (length, prefix) pairs of the UPDATE's Withdrawn Routes
// and NLRI fields and of MP_REACH_NLRI / MP_UNREACH_NLRI.
import { AFI_IPV4, formatIP, parsePrefix } from './ip.ts';
import { bgpError, bgpNeed, type ErrorTreatment } from './notification.ts';

/**
 * Encoded size of one prefix (RFC 4271 §4.3, RFC 4760 §5):
 *
 *   +---------------------------+
 *   |   Length (1 octet, bits)  |
 *   +---------------------------+
 *   |   Prefix (ceil(Length/8)) |
 *   +---------------------------+
 */
export function prefixWireLength(prefix: string): number {
  return 1 + ((parsePrefix(prefix).length + 7) >> 3);
}

/** Writes one prefix at `off`; returns bytes written. Only the first ceil(len/8) octets of the address are sent. */
export function encodePrefixInto(prefix: string, buf: Buffer, off: number): number {
  const p = parsePrefix(prefix);
  const n = (p.length + 7) >> 3;
  buf[off] = p.length;
  p.addr.copy(buf, off + 1, 0, n);
  return 1 + n;
}

/** Where a prefix list sits, for error reporting and the NOTIFICATION it earns. */
export interface PrefixListContext {
  /** Offset of `buf` in the whole message. */
  base: number;
  code: number;
  subcode: number;
  treatment?: ErrorTreatment;
}

/**
 * Decodes a run of prefixes filling all of `buf`. The address keeps exactly the
 * octets that were sent (trailing bits included) so re-encoding is byte exact.
 */
export function decodePrefixes(buf: Uint8Array, afi: number, ctx: PrefixListContext): string[] {
  const width = afi === AFI_IPV4 ? 4 : 16;
  const out: string[] = [];
  let off = 0;
  while (off < buf.length) {
    const len = buf[off]!;
    if (len > width * 8) {
      throw bgpError(`prefix length ${len} exceeds ${width * 8}`, ctx.base + off, ctx.code, ctx.subcode, ctx.treatment ?? 'session-reset');
    }
    const n = (len + 7) >> 3;
    bgpNeed(buf, off + 1, n, 'prefix', ctx.base, ctx.code, ctx.subcode, ctx.treatment);
    const addr = Buffer.alloc(width);
    addr.set(buf.subarray(off + 1, off + 1 + n));
    out.push(`${formatIP(addr)}/${len}`);
    off += 1 + n;
  }
  return out;
}
