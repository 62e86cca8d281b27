// IP addresses as netlink carries them (4 or 16 bytes, network order) and as
// text (dotted quad; RFC 5952 canonical IPv6), without a dependency.
import { CodecError } from '../codec/errors.ts';
import { isIPv4, isIPv6 } from 'node:net';

export type IpFamily = 'inet' | 'inet6';

/** The family of a textual address, or throws. */
export function ipFamily(address: string): IpFamily {
  if (isIPv4(address)) return 'inet';
  if (isIPv6(address)) return 'inet6';
  throw new CodecError('PORTICO_CODEC_INVALID', `not an IP address: ${JSON.stringify(address)}`, 0);
}

/** Address text to its 4 (IPv4) or 16 (IPv6) bytes. */
export function ipToBytes(address: string): Buffer {
  if (isIPv4(address)) return Buffer.from(address.split('.').map(Number));
  if (!isIPv6(address)) throw new CodecError('PORTICO_CODEC_INVALID', `not an IP address: ${JSON.stringify(address)}`, 0);
  let text = address;
  let tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const q = v4[1]!.split('.').map(Number);
    tail = [(q[0]! << 8) | q[1]!, (q[2]! << 8) | q[3]!];
    text = text.slice(0, -v4[1]!.length) + '0:0';
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const h = parse(head);
  const r = rest === undefined ? [] : parse(rest);
  const groups = rest === undefined ? h : [...h, ...new Array<number>(8 - h.length - r.length).fill(0), ...r];
  if (tail.length) groups.splice(6, 2, ...tail);
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(g, i * 2));
  return b;
}

/** 4 or 16 bytes to address text (IPv6 in RFC 5952 form: lower case, longest zero run as ::). */
export function bytesToIp(b: Uint8Array): string {
  if (b.length === 4) return Array.from(b).join('.');
  if (b.length !== 16) throw new CodecError('PORTICO_CODEC_INVALID', `an IP address has 4 or 16 bytes, not ${b.length}`, 0);
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((b[i]! << 8) | b[i + 1]!);
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (xs: number[]): string => xs.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}
