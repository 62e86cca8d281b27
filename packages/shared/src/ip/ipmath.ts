// IP math on BigInt: addresses, CIDRs and `a-b` ranges of both families.
// Nothing here enumerates a range: an IPv6 /64 is two numbers, not 2^64 entries.
import { Address4, Address6 } from 'ip-address';
import { PorticoError } from '../errors.ts';

export type Family = 'IPv4' | 'IPv6';
export const FAMILIES: readonly Family[] = ['IPv4', 'IPv6'];

export interface IP { readonly family: Family; readonly value: bigint }
/** An inclusive range of addresses of one family. */
export interface IPRange { readonly family: Family; readonly start: bigint; readonly end: bigint }

const BITS: Record<Family, number> = { IPv4: 32, IPv6: 128 };
export const familyBits = (family: Family): number => BITS[family];
export const maxValue = (family: Family): bigint => (1n << BigInt(BITS[family])) - 1n;

/** Parses one address (no prefix, no zone). Throws PORTICO_INVALID_ADDRESS. */
export function parseIP(text: string): IP {
  const s = text.trim();
  const bad = (): PorticoError => new PorticoError('PORTICO_INVALID_ADDRESS', `"${text}" is not an IP address`, { value: text });
  if (s === '' || s.includes('/') || s.includes('%')) throw bad();
  if (s.includes(':')) {
    if (!Address6.isValid(s)) throw bad();
    return { family: 'IPv6', value: new Address6(s).bigInt() };
  }
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(s) || !Address4.isValid(s)) throw bad();
  const octets = s.split('.').map(Number);
  if (octets.some((o) => o > 255)) throw bad();
  return { family: 'IPv4', value: new Address4(s).bigInt() };
}

export function tryParseIP(text: string): IP | undefined {
  try { return parseIP(text); } catch { return undefined; }
}

/** The canonical text of an address (RFC 5952 for IPv6). */
export function formatIP(ip: IP): string;
export function formatIP(family: Family, value: bigint): string;
export function formatIP(a: IP | Family, b?: bigint): string {
  const family = typeof a === 'string' ? a : a.family;
  const value = typeof a === 'string' ? b! : a.value;
  return family === 'IPv4' ? Address4.fromBigInt(value).correctForm() : Address6.fromBigInt(value).correctForm();
}

/** Canonical text of an address given as text; throws on a bad address. */
export const canonicalIP = (text: string): string => formatIP(parseIP(text));

/**
 * Parses a CIDR (`203.0.113.0/24`, `2001:db8::/64`) or an inclusive range
 * (`203.0.113.10-203.0.113.20`). A CIDR with host bits set and a range whose end
 * is before its start or whose ends are of different families are refused
 * (PORTICO_INVALID_RANGE), because guessing what the operator meant moves IPs.
 */
export function parseRange(text: string): IPRange {
  const s = text.trim();
  const bad = (why: string): PorticoError => new PorticoError('PORTICO_INVALID_RANGE', `"${text}": ${why}`, { value: text });
  if (s.includes('/')) {
    const [addr, prefixText, ...rest] = s.split('/');
    if (rest.length > 0 || addr === undefined || prefixText === undefined || !/^\d{1,3}$/.test(prefixText)) throw bad('not a CIDR');
    let ip: IP;
    try { ip = parseIP(addr); } catch { throw bad('not a CIDR'); }
    const bits = BITS[ip.family];
    const prefix = Number(prefixText);
    if (prefix > bits) throw bad(`prefix length ${prefix} is longer than ${bits}`);
    const hostBits = BigInt(bits - prefix);
    const hostMask = (1n << hostBits) - 1n;
    if ((ip.value & hostMask) !== 0n) throw bad(`host bits are set (the network is ${formatIP(ip.family, ip.value & ~hostMask)}/${prefix})`);
    return { family: ip.family, start: ip.value, end: ip.value | hostMask };
  }
  const dash = s.indexOf('-');
  if (dash < 0) {
    // A single address is the range of one address; MetalLB accepts it as /32 or /128 only, we accept both spellings.
    let ip: IP;
    try { ip = parseIP(s); } catch { throw bad('neither a CIDR nor a range a-b'); }
    return { family: ip.family, start: ip.value, end: ip.value };
  }
  let a: IP, b: IP;
  try {
    a = parseIP(s.slice(0, dash));
    b = parseIP(s.slice(dash + 1));
  } catch {
    throw bad('neither a CIDR nor a range a-b');
  }
  if (a.family !== b.family) throw bad('the two ends are of different families');
  if (b.value < a.value) throw bad('the range ends before it starts');
  return { family: a.family, start: a.value, end: b.value };
}

export const rangeSize = (r: IPRange): bigint => r.end - r.start + 1n;
export const rangeContains = (r: IPRange, ip: IP): boolean => r.family === ip.family && ip.value >= r.start && ip.value <= r.end;
export const rangesOverlap = (a: IPRange, b: IPRange): boolean => a.family === b.family && a.start <= b.end && b.start <= a.end;

export function formatRange(r: IPRange): string {
  if (r.start === r.end) return formatIP(r.family, r.start);
  // Print as a CIDR when it is one, which is how operators usually wrote it.
  const size = rangeSize(r);
  if ((size & (size - 1n)) === 0n && r.start % size === 0n) {
    const hostBits = size.toString(2).length - 1;
    return `${formatIP(r.family, r.start)}/${BITS[r.family] - hostBits}`;
  }
  return `${formatIP(r.family, r.start)}-${formatIP(r.family, r.end)}`;
}

/**
 * "Buggy" IPv4 addresses end in .0 or .255: some old client stacks treat them
 * as network or broadcast addresses whatever the prefix. IPv6 has none.
 */
export function isBuggyIP(family: Family, value: bigint): boolean {
  if (family !== 'IPv4') return false;
  const last = value & 0xffn;
  return last === 0n || last === 255n;
}

/** Number of buggy addresses in [0, v): two per 256, one more if v's block already passed .0. */
function buggyBelow(v: bigint): bigint {
  const blocks = v >> 8n;
  const rem = v & 0xffn;
  return blocks * 2n + (rem > 0n ? 1n : 0n);
}

/** Number of buggy IPv4 addresses in the inclusive range [start, end]. */
export const buggyCount = (start: bigint, end: bigint): bigint => buggyBelow(end + 1n) - buggyBelow(start);

/**
 * The address that is the k-th (0-based) non-buggy address at or after `start`.
 * Every full /24 block holds 254 usable addresses (.1-.254), which makes this O(1).
 */
export function nthNonBuggy(start: bigint, k: bigint): bigint {
  // Move to the first usable address at or after start, then count in 254-address blocks.
  let first = start;
  if ((first & 0xffn) === 0n) first += 1n;
  else if ((first & 0xffn) === 255n) first += 2n;
  const offset = (first & 0xffn) - 1n; // 0..253 within its block
  const total = offset + k;
  const block = (first >> 8n) + total / 254n;
  return (block << 8n) + (total % 254n) + 1n;
}
