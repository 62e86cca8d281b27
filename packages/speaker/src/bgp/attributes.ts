// Path attributes of an UPDATE (RFC 4271 §4.3, §5) and their codec, with the
// RFC 7606 error handling that decides how bad each malformation is. Unknown
// attributes, and known ones sent with unusual flags, survive decode -> encode.
import { AFI_IPV4, AFI_IPV6, SAFI_UNICAST, formatIP, formatIPv4, parseIP, parseIPv4 } from './ip.ts';
import {
  ERR_UPDATE, UPDATE_ATTRIBUTE_FLAGS, UPDATE_ATTRIBUTE_LENGTH, UPDATE_INVALID_ORIGIN, UPDATE_MALFORMED_AS_PATH,
  UPDATE_MALFORMED_ATTRIBUTE_LIST, UPDATE_OPTIONAL_ATTRIBUTE, UPDATE_UNRECOGNIZED_WELL_KNOWN, bgpError,
  type ErrorTreatment,
} from './notification.ts';
import { decodePrefixes, encodePrefixInto, prefixWireLength } from './prefix.ts';
import type { CodecError } from '../codec/errors.ts';

/** Attribute type codes (IANA "BGP Path Attributes"). */
export const ATTR_ORIGIN = 1;
export const ATTR_AS_PATH = 2;
export const ATTR_NEXT_HOP = 3;
export const ATTR_MED = 4;
export const ATTR_LOCAL_PREF = 5;
export const ATTR_ATOMIC_AGGREGATE = 6;
export const ATTR_AGGREGATOR = 7;
export const ATTR_COMMUNITIES = 8;
export const ATTR_MP_REACH = 14;
export const ATTR_MP_UNREACH = 15;
export const ATTR_AS4_PATH = 17;
export const ATTR_AS4_AGGREGATOR = 18;
export const ATTR_LARGE_COMMUNITY = 32;

/** Attribute flag bits (RFC 4271 §4.3). */
export const FLAG_OPTIONAL = 0x80;
export const FLAG_TRANSITIVE = 0x40;
export const FLAG_PARTIAL = 0x20;
export const FLAG_EXTENDED_LENGTH = 0x10;

/** RFC 6793 §9: the 2-octet AS number that stands in for a 4-octet one. */
export const AS_TRANS = 23456;

/** Well-known communities (RFC 1997 §2, RFC 8326). */
export const COMMUNITY_NO_EXPORT = '65535:65281';
export const COMMUNITY_NO_ADVERTISE = '65535:65282';
export const COMMUNITY_NO_EXPORT_SUBCONFED = '65535:65283';
export const COMMUNITY_GRACEFUL_SHUTDOWN = '65535:0';

export type Origin = 'igp' | 'egp' | 'incomplete';
const ORIGINS: readonly Origin[] = ['igp', 'egp', 'incomplete'];

/** AS_PATH segment types (RFC 4271 §4.3, RFC 5065 §3). */
export type AsPathSegmentType = 'set' | 'sequence' | 'confed-sequence' | 'confed-set';
const SEGMENT_TYPES: readonly AsPathSegmentType[] = ['set', 'sequence', 'confed-sequence', 'confed-set'];

export interface AsPathSegment {
  type: AsPathSegmentType;
  asns: number[];
}

/**
 * One path attribute, discriminated by `type`. `flags` is present only when a
 * peer sent flags other than the ones Portico would write for that attribute
 * (e.g. the extended-length bit on a short value), so re-encoding is exact.
 * Communities are 'asn:value' strings, large communities 'global:local1:local2'.
 */
export type PathAttribute =
  | { type: 'origin'; origin: Origin; flags?: number }
  | { type: 'as-path'; segments: AsPathSegment[]; flags?: number }
  | { type: 'next-hop'; nextHop: string; flags?: number }
  | { type: 'med'; med: number; flags?: number }
  | { type: 'local-pref'; localPref: number; flags?: number }
  | { type: 'atomic-aggregate'; flags?: number }
  | { type: 'aggregator'; asn: number; address: string; flags?: number }
  | { type: 'communities'; communities: string[]; flags?: number }
  | { type: 'as4-path'; segments: AsPathSegment[]; flags?: number }
  | { type: 'as4-aggregator'; asn: number; address: string; flags?: number }
  | { type: 'large-communities'; communities: string[]; flags?: number }
  /** RFC 4760 §3 for IPv4/IPv6 unicast; other families stay raw. */
  | { type: 'mp-reach'; afi: number; safi: number; nextHops: string[]; nlri: string[]; reserved?: number; flags?: number }
  /** RFC 4760 §4 for IPv4/IPv6 unicast; other families stay raw. */
  | { type: 'mp-unreach'; afi: number; safi: number; withdrawn: string[]; flags?: number }
  /** An attribute Portico does not parse (or found malformed), with its bytes and flags as sent. */
  | { type: 'raw'; code: number; flags: number; value: Buffer };

/** What decoding attributes depends on: the AS number width agreed in OPEN (RFC 6793 §3). */
export interface AttributeContext {
  fourOctetAs: boolean;
}

const TYPE_CODES: Record<Exclude<PathAttribute['type'], 'raw'>, number> = {
  'origin': ATTR_ORIGIN,
  'as-path': ATTR_AS_PATH,
  'next-hop': ATTR_NEXT_HOP,
  'med': ATTR_MED,
  'local-pref': ATTR_LOCAL_PREF,
  'atomic-aggregate': ATTR_ATOMIC_AGGREGATE,
  'aggregator': ATTR_AGGREGATOR,
  'communities': ATTR_COMMUNITIES,
  'mp-reach': ATTR_MP_REACH,
  'mp-unreach': ATTR_MP_UNREACH,
  'as4-path': ATTR_AS4_PATH,
  'as4-aggregator': ATTR_AS4_AGGREGATOR,
  'large-communities': ATTR_LARGE_COMMUNITY,
};

/** Optional/transitive bits each known attribute must carry (RFC 4271 §5, RFC 4760, RFC 1997, RFC 6793, RFC 8092). */
const CATEGORY: Record<number, number> = {
  [ATTR_ORIGIN]: FLAG_TRANSITIVE,
  [ATTR_AS_PATH]: FLAG_TRANSITIVE,
  [ATTR_NEXT_HOP]: FLAG_TRANSITIVE,
  [ATTR_MED]: FLAG_OPTIONAL,
  [ATTR_LOCAL_PREF]: FLAG_TRANSITIVE,
  [ATTR_ATOMIC_AGGREGATE]: FLAG_TRANSITIVE,
  [ATTR_AGGREGATOR]: FLAG_OPTIONAL | FLAG_TRANSITIVE,
  [ATTR_COMMUNITIES]: FLAG_OPTIONAL | FLAG_TRANSITIVE,
  [ATTR_MP_REACH]: FLAG_OPTIONAL,
  [ATTR_MP_UNREACH]: FLAG_OPTIONAL,
  [ATTR_AS4_PATH]: FLAG_OPTIONAL | FLAG_TRANSITIVE,
  [ATTR_AS4_AGGREGATOR]: FLAG_OPTIONAL | FLAG_TRANSITIVE,
  [ATTR_LARGE_COMMUNITY]: FLAG_OPTIONAL | FLAG_TRANSITIVE,
};

/** The type code of an attribute. */
export function attributeCode(a: PathAttribute): number {
  return a.type === 'raw' ? a.code : TYPE_CODES[a.type];
}

/** Flags Portico writes for a known attribute whose value is `len` bytes. */
export function defaultFlags(code: number, len: number): number {
  return (CATEGORY[code] ?? FLAG_OPTIONAL | FLAG_TRANSITIVE) | (len > 255 ? FLAG_EXTENDED_LENGTH : 0);
}

function isUnicast(afi: number, safi: number): boolean {
  return (afi === AFI_IPV4 || afi === AFI_IPV6) && safi === SAFI_UNICAST;
}

function segmentsLength(segments: readonly AsPathSegment[], width: number): number {
  return segments.reduce((n, s) => n + 2 + width * s.asns.length, 0);
}

function communityWord(text: string): number {
  const m = /^(\d+):(\d+)$/.exec(text);
  const hi = Number(m?.[1]);
  const lo = Number(m?.[2]);
  if (!m || hi > 0xffff || lo > 0xffff) throw new TypeError(`not a community (asn:value, 16 bits each): ${JSON.stringify(text)}`);
  return ((hi << 16) | lo) >>> 0;
}

function largeCommunityWords(text: string): [number, number, number] {
  const m = /^(\d+):(\d+):(\d+)$/.exec(text);
  const w = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [];
  if (w.length !== 3 || w.some((x) => x > 0xffffffff)) throw new TypeError(`not a large community (global:local1:local2, 32 bits each): ${JSON.stringify(text)}`);
  return w as [number, number, number];
}

/** Bytes of the attribute value alone. */
export function attributeValueLength(a: PathAttribute, ctx: AttributeContext): number {
  switch (a.type) {
    case 'origin': return 1;
    case 'as-path': return segmentsLength(a.segments, ctx.fourOctetAs ? 4 : 2);
    case 'next-hop': return 4;
    case 'med': return 4;
    case 'local-pref': return 4;
    case 'atomic-aggregate': return 0;
    case 'aggregator': return ctx.fourOctetAs ? 8 : 6;
    case 'communities': return 4 * a.communities.length;
    case 'as4-path': return segmentsLength(a.segments, 4);
    case 'as4-aggregator': return 8;
    case 'large-communities': return 12 * a.communities.length;
    case 'mp-reach': {
      const nh = a.nextHops.reduce((n, h) => n + parseIP(h).length, 0);
      return 5 + nh + a.nlri.reduce((n, p) => n + prefixWireLength(p), 0);
    }
    case 'mp-unreach': return 3 + a.withdrawn.reduce((n, p) => n + prefixWireLength(p), 0);
    case 'raw': return a.value.length;
  }
}

function flagsOf(a: PathAttribute, len: number): number {
  if (a.type === 'raw') return a.flags;
  return a.flags ?? defaultFlags(TYPE_CODES[a.type], len);
}

/**
 * Bytes of the whole attribute (RFC 4271 §4.3):
 *
 *   +--------+--------+-------------------+--------------------+
 *   | Flags  | Type   | Length (1 octet,  | Value              |
 *   | O T P E| code   |  2 if E is set)   |                    |
 *   +--------+--------+-------------------+--------------------+
 */
export function attributeLength(a: PathAttribute, ctx: AttributeContext): number {
  const len = attributeValueLength(a, ctx);
  return 2 + ((flagsOf(a, len) & FLAG_EXTENDED_LENGTH) ? 2 : 1) + len;
}

function writeSegments(segments: readonly AsPathSegment[], width: number, buf: Buffer, off: number): number {
  let at = off;
  for (const s of segments) {
    if (s.asns.length > 255) throw new RangeError(`AS_PATH segment of ${s.asns.length} ASNs; split it`);
    buf[at] = SEGMENT_TYPES.indexOf(s.type) + 1;
    buf[at + 1] = s.asns.length;
    at += 2;
    for (const asn of s.asns) {
      if (width === 2) {
        if (asn > 0xffff) throw new RangeError(`AS ${asn} does not fit a 2-octet AS_PATH; use asPathForTwoOctetPeer`);
        buf.writeUInt16BE(asn, at);
      } else {
        buf.writeUInt32BE(asn >>> 0, at);
      }
      at += width;
    }
  }
  return at - off;
}

/** Writes one attribute at `off`; returns bytes written. */
export function encodeAttributeInto(a: PathAttribute, ctx: AttributeContext, buf: Buffer, off: number): number {
  const len = attributeValueLength(a, ctx);
  const flags = flagsOf(a, len);
  const ext = (flags & FLAG_EXTENDED_LENGTH) !== 0;
  if (len > (ext ? 0xffff : 0xff)) throw new RangeError(`attribute ${attributeCode(a)} of ${len} bytes needs the extended-length flag`);
  buf[off] = flags;
  buf[off + 1] = attributeCode(a);
  if (ext) buf.writeUInt16BE(len, off + 2); else buf[off + 2] = len;
  const v = off + (ext ? 4 : 3);
  switch (a.type) {
    case 'origin': buf[v] = ORIGINS.indexOf(a.origin); break;
    case 'as-path': writeSegments(a.segments, ctx.fourOctetAs ? 4 : 2, buf, v); break;
    case 'next-hop': parseIPv4(a.nextHop).copy(buf, v); break;
    case 'med': buf.writeUInt32BE(a.med >>> 0, v); break;
    case 'local-pref': buf.writeUInt32BE(a.localPref >>> 0, v); break;
    case 'atomic-aggregate': break;
    case 'aggregator':
      if (ctx.fourOctetAs) buf.writeUInt32BE(a.asn >>> 0, v); else buf.writeUInt16BE(a.asn, v);
      parseIPv4(a.address).copy(buf, v + (ctx.fourOctetAs ? 4 : 2));
      break;
    case 'communities': a.communities.forEach((c, i) => buf.writeUInt32BE(communityWord(c), v + 4 * i)); break;
    case 'as4-path': writeSegments(a.segments, 4, buf, v); break;
    case 'as4-aggregator': buf.writeUInt32BE(a.asn >>> 0, v); parseIPv4(a.address).copy(buf, v + 4); break;
    case 'large-communities':
      a.communities.forEach((c, i) => largeCommunityWords(c).forEach((w, j) => buf.writeUInt32BE(w, v + 12 * i + 4 * j)));
      break;
    case 'mp-reach': {
      buf.writeUInt16BE(a.afi, v);
      buf[v + 2] = a.safi;
      let at = v + 4;
      for (const h of a.nextHops) at += parseIP(h).copy(buf, at);
      buf[v + 3] = at - (v + 4);
      buf[at++] = a.reserved ?? 0;
      for (const p of a.nlri) at += encodePrefixInto(p, buf, at);
      break;
    }
    case 'mp-unreach': {
      buf.writeUInt16BE(a.afi, v);
      buf[v + 2] = a.safi;
      let at = v + 3;
      for (const p of a.withdrawn) at += encodePrefixInto(p, buf, at);
      break;
    }
    case 'raw': a.value.copy(buf, v); break;
  }
  return v - off + len;
}

/** A problem found in one attribute; the attribute itself is kept raw. */
export interface AttributeProblem {
  error: CodecError;
  treatment: ErrorTreatment;
}

function decodeSegments(v: Buffer, width: number, what: string, base: number, treatment: ErrorTreatment, errData: Buffer): AsPathSegment[] {
  const segments: AsPathSegment[] = [];
  const bad = (msg: string, at: number): never => {
    throw bgpError(`${what}: ${msg}`, base + at, ERR_UPDATE, UPDATE_MALFORMED_AS_PATH, treatment, errData);
  };
  let at = 0;
  while (at < v.length) {
    // RFC 7606 §7.2: an unknown segment type, a zero-length segment, an overrun
    // or a lone trailing octet all make the path malformed.
    if (at + 2 > v.length) bad('one octet left where a segment header belongs', at);
    const t = v[at]!;
    const n = v[at + 1]!;
    if (t < 1 || t > 4) bad(`unknown segment type ${t}`, at);
    if (n === 0) bad('segment of zero ASNs', at);
    if (at + 2 + n * width > v.length) bad(`segment of ${n} ASNs overruns the attribute`, at);
    const asns: number[] = [];
    for (let i = 0; i < n; i++) asns.push(width === 4 ? v.readUInt32BE(at + 2 + 4 * i) : v.readUInt16BE(at + 2 + 2 * i));
    segments.push({ type: SEGMENT_TYPES[t - 1]!, asns });
    at += 2 + n * width;
  }
  return segments;
}

function decodeNextHops(v: Buffer, base: number, errData: Buffer): string[] {
  // RFC 4760 §3 and RFC 2545 §3: 4 octets IPv4, 16 octets global IPv6, 32 octets global + link-local.
  switch (v.length) {
    case 4: return [formatIPv4(v)];
    case 16: return [formatIP(v, 0, 16)];
    case 32: return [formatIP(v, 0, 16), formatIP(v, 16, 16)];
    default:
      throw bgpError(`MP_REACH_NLRI next hop of ${v.length} octets`, base, ERR_UPDATE, UPDATE_OPTIONAL_ATTRIBUTE, 'session-reset', errData);
  }
}

/**
 * Decodes the value of one known attribute. Throws a BGP CodecError whose
 * treatment follows RFC 7606 §7 for the attribute.
 */
function decodeKnown(code: number, flags: number, v: Buffer, ctx: AttributeContext, base: number, whole: Buffer): PathAttribute {
  const lengthError = (want: string, treatment: ErrorTreatment): never => {
    throw bgpError(`attribute ${code} has length ${v.length}, want ${want}`, base, ERR_UPDATE, UPDATE_ATTRIBUTE_LENGTH, treatment, whole);
  };
  const withFlags = <T extends PathAttribute>(a: T): T => {
    if (flags !== defaultFlags(code, v.length)) (a as { flags?: number }).flags = flags;
    return a;
  };
  switch (code) {
    case ATTR_ORIGIN: {
      if (v.length !== 1) lengthError('1', 'treat-as-withdraw');
      const origin = ORIGINS[v[0]!];
      if (!origin) throw bgpError(`ORIGIN value ${v[0]}`, base, ERR_UPDATE, UPDATE_INVALID_ORIGIN, 'treat-as-withdraw', whole);
      return withFlags({ type: 'origin', origin });
    }
    case ATTR_AS_PATH:
      return withFlags({ type: 'as-path', segments: decodeSegments(v, ctx.fourOctetAs ? 4 : 2, 'AS_PATH', base, 'treat-as-withdraw', whole) });
    case ATTR_NEXT_HOP:
      if (v.length !== 4) lengthError('4', 'treat-as-withdraw');
      return withFlags({ type: 'next-hop', nextHop: formatIPv4(v) });
    case ATTR_MED:
      if (v.length !== 4) lengthError('4', 'treat-as-withdraw');
      return withFlags({ type: 'med', med: v.readUInt32BE(0) });
    case ATTR_LOCAL_PREF:
      if (v.length !== 4) lengthError('4', 'treat-as-withdraw');
      return withFlags({ type: 'local-pref', localPref: v.readUInt32BE(0) });
    case ATTR_ATOMIC_AGGREGATE:
      if (v.length !== 0) lengthError('0', 'attribute-discard');
      return withFlags({ type: 'atomic-aggregate' });
    case ATTR_AGGREGATOR: {
      const w = ctx.fourOctetAs ? 4 : 2;
      if (v.length !== w + 4) lengthError(String(w + 4), 'attribute-discard');
      return withFlags({ type: 'aggregator', asn: w === 4 ? v.readUInt32BE(0) : v.readUInt16BE(0), address: formatIPv4(v, w) });
    }
    case ATTR_COMMUNITIES: {
      if (v.length === 0 || v.length % 4 !== 0) lengthError('a non-zero multiple of 4', 'treat-as-withdraw');
      const communities: string[] = [];
      for (let i = 0; i < v.length; i += 4) communities.push(`${v.readUInt16BE(i)}:${v.readUInt16BE(i + 2)}`);
      return withFlags({ type: 'communities', communities });
    }
    case ATTR_AS4_PATH:
      // RFC 6793 §6 (as updated by RFC 7606 §7.2): a malformed AS4_PATH is discarded, not the route.
      return withFlags({ type: 'as4-path', segments: decodeSegments(v, 4, 'AS4_PATH', base, 'attribute-discard', whole) });
    case ATTR_AS4_AGGREGATOR:
      if (v.length !== 8) lengthError('8', 'attribute-discard');
      return withFlags({ type: 'as4-aggregator', asn: v.readUInt32BE(0), address: formatIPv4(v, 4) });
    case ATTR_LARGE_COMMUNITY: {
      if (v.length === 0 || v.length % 12 !== 0) lengthError('a non-zero multiple of 12', 'treat-as-withdraw');
      const communities: string[] = [];
      for (let i = 0; i < v.length; i += 12) communities.push(`${v.readUInt32BE(i)}:${v.readUInt32BE(i + 4)}:${v.readUInt32BE(i + 8)}`);
      return withFlags({ type: 'large-communities', communities });
    }
    case ATTR_MP_REACH: {
      // RFC 7606 §5.3: the MP attributes cannot be partly trusted, so any fault resets the session.
      if (v.length < 5) lengthError('at least 5', 'session-reset');
      const afi = v.readUInt16BE(0);
      const safi = v[2]!;
      const nhLen = v[3]!;
      if (4 + nhLen + 1 > v.length) {
        throw bgpError(`MP_REACH_NLRI next hop length ${nhLen} overruns the attribute`, base, ERR_UPDATE, UPDATE_OPTIONAL_ATTRIBUTE, 'session-reset', whole);
      }
      if (!isUnicast(afi, safi)) return { type: 'raw', code, flags, value: Buffer.from(v) };
      const nextHops = decodeNextHops(v.subarray(4, 4 + nhLen), base + 4, whole);
      const reserved = v[4 + nhLen]!;
      const nlri = decodePrefixes(v.subarray(5 + nhLen), afi, { base: base + 5 + nhLen, code: ERR_UPDATE, subcode: UPDATE_OPTIONAL_ATTRIBUTE });
      const a: PathAttribute = { type: 'mp-reach', afi, safi, nextHops, nlri };
      if (reserved !== 0) a.reserved = reserved;
      return withFlags(a);
    }
    case ATTR_MP_UNREACH: {
      if (v.length < 3) lengthError('at least 3', 'session-reset');
      const afi = v.readUInt16BE(0);
      const safi = v[2]!;
      if (!isUnicast(afi, safi)) return { type: 'raw', code, flags, value: Buffer.from(v) };
      const withdrawn = decodePrefixes(v.subarray(3), afi, { base: base + 3, code: ERR_UPDATE, subcode: UPDATE_OPTIONAL_ATTRIBUTE });
      return withFlags({ type: 'mp-unreach', afi, safi, withdrawn });
    }
    default:
      throw new Error(`decodeKnown called for unknown attribute ${code}`);
  }
}

/**
 * Decodes the Path Attributes field of an UPDATE (all of `buf`). Attributes
 * that are malformed in a way RFC 7606 lets the session survive are kept as
 * 'raw' and reported in `problems`; anything that needs a session reset throws.
 */
export function decodeAttributes(buf: Uint8Array, ctx: AttributeContext, base: number): { attributes: PathAttribute[]; problems: AttributeProblem[] } {
  const attributes: PathAttribute[] = [];
  const problems: AttributeProblem[] = [];
  const seen = new Set<number>();
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  let off = 0;
  while (off < b.length) {
    const flags = b[off]!;
    const headerLen = flags & FLAG_EXTENDED_LENGTH ? 4 : 3;
    if (off + headerLen > b.length || off + headerLen + (headerLen === 4 ? b.readUInt16BE(off + 2) : b[off + 2]!) > b.length) {
      // RFC 7606 §4: an attribute that overruns the Total Path Attribute Length
      // (or a stub too short for a header) means treat-as-withdraw; the NLRI can
      // still be found from the Total Path Attribute Length.
      problems.push({
        error: bgpError(`path attribute at ${off} overruns the attribute list`, base + off, ERR_UPDATE, UPDATE_MALFORMED_ATTRIBUTE_LIST, 'treat-as-withdraw', undefined, 'PORTICO_CODEC_TRUNCATED'),
        treatment: 'treat-as-withdraw',
      });
      break;
    }
    const code = b[off + 1]!;
    const len = headerLen === 4 ? b.readUInt16BE(off + 2) : b[off + 2]!;
    const value = b.subarray(off + headerLen, off + headerLen + len);
    const whole = b.subarray(off, off + headerLen + len);
    const at = base + off;
    off += headerLen + len;

    const category = CATEGORY[code];
    const keepRaw = (error: CodecError, treatment: ErrorTreatment): void => {
      attributes.push({ type: 'raw', code, flags, value: Buffer.from(value) });
      problems.push({ error, treatment });
    };
    if (category === undefined) {
      if (!(flags & FLAG_OPTIONAL)) {
        throw bgpError(`unrecognized well-known attribute ${code}`, at, ERR_UPDATE, UPDATE_UNRECOGNIZED_WELL_KNOWN, 'session-reset', whole);
      }
      attributes.push({ type: 'raw', code, flags, value: Buffer.from(value) });
      continue;
    }
    const mp = code === ATTR_MP_REACH || code === ATTR_MP_UNREACH;
    if (seen.has(code)) {
      // RFC 7606 §3 (g): a repeated MP attribute resets the session; other repeats are discarded.
      const err = bgpError(`attribute ${code} appears twice`, at, ERR_UPDATE, UPDATE_MALFORMED_ATTRIBUTE_LIST, mp ? 'session-reset' : 'attribute-discard', whole);
      if (mp) throw err;
      keepRaw(err, 'attribute-discard');
      continue;
    }
    seen.add(code);
    if ((flags & (FLAG_OPTIONAL | FLAG_TRANSITIVE)) !== category) {
      // RFC 7606 §3 (c): optional/transitive bits that contradict the type code.
      const treatment: ErrorTreatment = mp ? 'session-reset' : 'treat-as-withdraw';
      const err = bgpError(`attribute ${code} has flags 0x${flags.toString(16)}`, at, ERR_UPDATE, UPDATE_ATTRIBUTE_FLAGS, treatment, whole);
      if (mp) throw err;
      keepRaw(err, treatment);
      continue;
    }
    try {
      attributes.push(decodeKnown(code, flags, value, ctx, at, whole));
    } catch (err) {
      const treatment = (err as CodecError).detail?.treatment as ErrorTreatment | undefined;
      if (treatment === undefined || treatment === 'session-reset') throw err;
      keepRaw(err as CodecError, treatment);
    }
  }
  return { attributes, problems };
}

/**
 * Path length for loop and AS4 merging (RFC 4271 §9.1.2.2 a, RFC 6793 §4.2.3):
 * an AS_SET counts one, confederation segments count nothing.
 */
export function asPathLength(segments: readonly AsPathSegment[]): number {
  return segments.reduce((n, s) => n + (s.type === 'sequence' ? s.asns.length : s.type === 'set' ? 1 : 0), 0);
}

/**
 * The real AS path a 2-octet ("OLD") peer meant (RFC 6793 §4.2.3): the leading
 * ASNs of AS_PATH that AS4_PATH does not cover, followed by AS4_PATH. If
 * AS4_PATH is longer than AS_PATH it is ignored.
 */
export function mergeAs4Path(asPath: readonly AsPathSegment[], as4Path: readonly AsPathSegment[] | undefined): AsPathSegment[] {
  if (!as4Path) return asPath.map((s) => ({ type: s.type, asns: [...s.asns] }));
  let keep = asPathLength(asPath) - asPathLength(as4Path);
  if (keep < 0) return asPath.map((s) => ({ type: s.type, asns: [...s.asns] }));
  const out: AsPathSegment[] = [];
  for (const s of asPath) {
    if (keep === 0 && (s.type === 'sequence' || s.type === 'set')) break;
    if (s.type === 'sequence') {
      const take = Math.min(keep, s.asns.length);
      out.push({ type: s.type, asns: s.asns.slice(0, take) });
      keep -= take;
    } else {
      out.push({ type: s.type, asns: [...s.asns] });
      if (s.type === 'set') keep -= 1;
    }
  }
  return [...out, ...as4Path.map((s) => ({ type: s.type, asns: [...s.asns] }))];
}

/**
 * What to send a peer that did not announce the 4-octet AS capability (RFC
 * 6793 §4.2.2): AS_PATH with every ASN above 65535 replaced by AS_TRANS, plus
 * AS4_PATH with the true path when any such ASN exists. Confederation segments
 * stay out of AS4_PATH.
 */
export function asPathForTwoOctetPeer(segments: readonly AsPathSegment[]): { asPath: AsPathSegment[]; as4Path?: AsPathSegment[] } {
  const asPath = segments.map((s) => ({ type: s.type, asns: s.asns.map((a) => (a > 0xffff ? AS_TRANS : a)) }));
  const needs4 = segments.some((s) => s.asns.some((a) => a > 0xffff));
  if (!needs4) return { asPath };
  return { asPath, as4Path: segments.filter((s) => s.type === 'sequence' || s.type === 'set').map((s) => ({ type: s.type, asns: [...s.asns] })) };
}

/** The first attribute of a type, typed. */
export function findAttribute<K extends PathAttribute['type']>(attrs: readonly PathAttribute[], type: K): Extract<PathAttribute, { type: K }> | undefined {
  return attrs.find((a) => a.type === type) as Extract<PathAttribute, { type: K }> | undefined;
}
