// Text forms of the addresses the layer-2 codecs carry: MACs as
// "aa:bb:cc:dd:ee:ff", IPv4 dotted quads, IPv6 in RFC 5952 canonical form,
// so a decoded packet compares and logs as plain strings and re-encodes exactly.
import { CodecError } from '../codec/errors.ts';

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** 6 bytes at `offset` as lower-case "aa:bb:cc:dd:ee:ff". */
export function formatMac(buf: Uint8Array, offset = 0): string {
  return `${HEX[buf[offset]!]}:${HEX[buf[offset + 1]!]}:${HEX[buf[offset + 2]!]}:${HEX[buf[offset + 3]!]}:${HEX[buf[offset + 4]!]}:${HEX[buf[offset + 5]!]}`;
}

const MAC_RE = /^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$/;

/** Writes a MAC written as "aa:bb:cc:dd:ee:ff" (or with dashes) at `offset`. */
export function writeMac(mac: string, buf: Uint8Array, offset: number): void {
  if (!MAC_RE.test(mac)) throw new CodecError('PORTICO_CODEC_INVALID', `not a MAC address: ${JSON.stringify(mac)}`, offset);
  for (let i = 0; i < 6; i++) buf[offset + i] = parseInt(mac.slice(i * 3, i * 3 + 2), 16);
}

export function parseMac(mac: string): Buffer {
  const b = Buffer.alloc(6);
  writeMac(mac, b, 0);
  return b;
}

export function isMac(mac: string): boolean {
  return MAC_RE.test(mac);
}

export const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';
export const ZERO_MAC = '00:00:00:00:00:00';

export function formatIPv4(buf: Uint8Array, offset = 0): string {
  return `${buf[offset]}.${buf[offset + 1]}.${buf[offset + 2]}.${buf[offset + 3]}`;
}

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function isIPv4(ip: string): boolean {
  return IPV4_RE.test(ip);
}

export function writeIPv4(ip: string, buf: Uint8Array, offset: number): void {
  if (!IPV4_RE.test(ip)) throw new CodecError('PORTICO_CODEC_INVALID', `not an IPv4 address: ${JSON.stringify(ip)}`, offset);
  const parts = ip.split('.');
  for (let i = 0; i < 4; i++) buf[offset + i] = Number(parts[i]);
}

/** 16 bytes at `offset` in RFC 5952 form: lower case, no leading zeros, the longest run (>= 2) of zero groups as "::". */
export function formatIPv6(buf: Uint8Array, offset = 0): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push((buf[offset + 2 * i]! << 8) | buf[offset + 2 * i + 1]!);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = (g: number[]): string => g.map((x) => x.toString(16)).join(':');
  if (bestLen < 2) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/** Parses IPv6 text (any valid form, including an embedded IPv4 tail) into 16 bytes at `offset`. */
export function writeIPv6(ip: string, buf: Uint8Array, offset: number): void {
  const bad = (): never => { throw new CodecError('PORTICO_CODEC_INVALID', `not an IPv6 address: ${JSON.stringify(ip)}`, offset); };
  let text = ip;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.')) {
    const v4 = text.slice(lastColon + 1);
    if (!IPV4_RE.test(v4)) bad();
    const p = v4.split('.').map(Number);
    tail.push((p[0]! << 8) | p[1]!, (p[2]! << 8) | p[3]!);
    text = text.slice(0, lastColon + 1);
    if (!text.endsWith('::')) text = text.slice(0, -1);
  }
  const halves = text.split('::');
  if (halves.length > 2) bad();
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => (/^[0-9a-fA-F]{1,4}$/.test(g) ? parseInt(g, 16) : bad())));
  const head = parse(halves[0]!);
  const rest = halves.length === 2 ? parse(halves[1]!) : [];
  const explicit = head.length + rest.length + tail.length;
  let groups: number[];
  if (halves.length === 2) {
    if (explicit > 7) bad();
    groups = [...head, ...new Array<number>(8 - explicit).fill(0), ...rest, ...tail];
  } else {
    groups = [...head, ...tail];
    if (groups.length !== 8) bad();
  }
  for (let i = 0; i < 8; i++) {
    buf[offset + 2 * i] = groups[i]! >> 8;
    buf[offset + 2 * i + 1] = groups[i]! & 0xff;
  }
}

export function parseIPv6(ip: string): Buffer {
  const b = Buffer.alloc(16);
  writeIPv6(ip, b, 0);
  return b;
}

export function parseIPv4(ip: string): Buffer {
  const b = Buffer.alloc(4);
  writeIPv4(ip, b, 0);
  return b;
}

export function isIPv6(ip: string): boolean {
  try {
    parseIPv6(ip);
    return true;
  } catch {
    return false;
  }
}

/** The canonical (RFC 5952) text of any IPv6 literal; IPv4 returned as is. */
export function canonicalIP(ip: string): string {
  if (isIPv4(ip)) return ip;
  // The announcer asks for the same few thousand addresses on every World.
  let c = canonical.get(ip);
  if (c === undefined) {
    c = formatIPv6(parseIPv6(ip));
    if (canonical.size >= 100_000) canonical.clear();
    canonical.set(ip, c);
  }
  return c;
}

const canonical = new Map<string, string>();

/** RFC 4291 §2.7.1: the solicited-node multicast group ff02::1:ffXX:XXXX of an address. */
export function solicitedNodeMulticast(ip: string): string {
  const b = parseIPv6(ip);
  const g = parseIPv6('ff02::1:ff00:0');
  g[13] = b[13]!;
  g[14] = b[14]!;
  g[15] = b[15]!;
  return formatIPv6(g);
}

/** RFC 2464 §7: the Ethernet MAC of an IPv6 multicast group, 33:33 + its last 32 bits. */
export function ipv6MulticastMac(group: string): string {
  const b = parseIPv6(group);
  const m = Buffer.from([0x33, 0x33, b[12]!, b[13]!, b[14]!, b[15]!]);
  return formatMac(m);
}

export function isIPv6Multicast(ip: string): boolean {
  return parseIPv6(ip)[0] === 0xff;
}

export const ALL_NODES = 'ff02::1';
export const UNSPECIFIED_V6 = '::';
