// Text <-> bytes for the IPv4/IPv6 addresses and prefixes BGP carries. Prefixes
// are plain strings ('203.0.113.0/24', '2001:db8::/48') so that routes compare,
// sort and print without a class; the helpers here are the only place that
// knows their byte layout.
import { isIPv4, isIPv6 } from 'node:net';

/** Address family identifiers (RFC 4760 §3, IANA "Address Family Numbers"). */
export const AFI_IPV4 = 1;
export const AFI_IPV6 = 2;
/** Subsequent address family: unicast (RFC 4760 §6). */
export const SAFI_UNICAST = 1;

/** IPv4 dotted quad from 4 bytes at `off`. */
export function formatIPv4(buf: Uint8Array, off = 0): string {
  return `${buf[off] ?? 0}.${buf[off + 1] ?? 0}.${buf[off + 2] ?? 0}.${buf[off + 3] ?? 0}`;
}

/** IPv6 text in RFC 5952 form (lower case, longest zero run of two or more groups as '::'). */
export function formatIPv6(buf: Uint8Array, off = 0): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(((buf[off + 2 * i] ?? 0) << 8) | (buf[off + 2 * i + 1] ?? 0));
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { bestAt = i; bestLen = j - i; }
    i = j;
  }
  const hexes = groups.map((g) => g.toString(16));
  if (bestAt < 0) return hexes.join(':');
  return `${hexes.slice(0, bestAt).join(':')}::${hexes.slice(bestAt + bestLen).join(':')}`;
}

/** 4 bytes of a dotted quad; throws TypeError on anything else (caller input, not wire data). */
export function parseIPv4(text: string): Buffer {
  if (!isIPv4(text)) throw new TypeError(`not an IPv4 address: ${JSON.stringify(text)}`);
  return Buffer.from(text.split('.').map(Number));
}

/** 16 bytes of an IPv6 address in any RFC 4291 text form (including a trailing dotted quad). */
export function parseIPv6(text: string): Buffer {
  if (!isIPv6(text)) throw new TypeError(`not an IPv6 address: ${JSON.stringify(text)}`);
  // A trailing dotted quad ('::ffff:198.51.100.1') becomes its two hex groups first.
  const s = text.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_m, a: string, b: string, c: string, d: string) =>
    `${((Number(a) << 8) | Number(b)).toString(16)}:${((Number(c) << 8) | Number(d)).toString(16)}`);
  const [head, rest] = s.includes('::') ? s.split('::') as [string, string] : [s, undefined];
  const h = head ? head.split(':').map((g) => parseInt(g, 16)) : [];
  const r = rest ? rest.split(':').map((g) => parseInt(g, 16)) : [];
  const groups = rest === undefined ? h : [...h, ...new Array<number>(8 - h.length - r.length).fill(0), ...r];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(g, 2 * i));
  return out;
}

/** Address bytes of either family. */
export function parseIP(text: string): Buffer {
  return isIPv4(text) ? parseIPv4(text) : parseIPv6(text);
}

export function formatIP(buf: Uint8Array, off = 0, length = buf.length - off): string {
  return length === 4 ? formatIPv4(buf, off) : formatIPv6(buf, off);
}

/** A prefix split into its family, full-width address bytes and length. */
export interface ParsedPrefix {
  afi: typeof AFI_IPV4 | typeof AFI_IPV6;
  addr: Buffer;
  length: number;
}

/** Parses 'a.b.c.d/n' or 'x::/n'; throws TypeError for bad caller input. */
export function parsePrefix(prefix: string): ParsedPrefix {
  const slash = prefix.lastIndexOf('/');
  if (slash < 0) throw new TypeError(`prefix without length: ${JSON.stringify(prefix)}`);
  const text = prefix.slice(0, slash);
  const lenText = prefix.slice(slash + 1);
  const length = Number(lenText);
  const v4 = isIPv4(text);
  const max = v4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(lenText) || length > max) throw new TypeError(`bad prefix length: ${JSON.stringify(prefix)}`);
  return { afi: v4 ? AFI_IPV4 : AFI_IPV6, addr: v4 ? parseIPv4(text) : parseIPv6(text), length };
}

/** Which family a prefix belongs to. */
export function prefixAfi(prefix: string): typeof AFI_IPV4 | typeof AFI_IPV6 {
  return parsePrefix(prefix).afi;
}

/** The prefix with host bits cleared ('203.0.113.7/24' -> '203.0.113.0/24'). */
export function canonicalPrefix(prefix: string): string {
  // Host routes of IPv4 are already canonical: skip the byte round trip (10,000 Services go through here at once).
  if (prefix.endsWith('/32') && isIPv4(prefix.slice(0, -3))) return prefix;
  const p = parsePrefix(prefix);
  for (let bit = p.length; bit < p.addr.length * 8; bit++) p.addr[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return `${formatIP(p.addr)}/${p.length}`;
}
