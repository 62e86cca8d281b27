// Netlink attributes (TLVs): decode into an ordered list that keeps every
// attribute, its flag bits and its bytes, so decode -> encode is byte exact;
// nested attributes are decoded recursively where a schema or NLA_F_NESTED says so.
//
//  0               1               2               3
//  +---------------+---------------+---------------+---------------+
//  |        nla_len (LE)           |N|O|      nla_type (LE)        |
//  +---------------+---------------+---------------+---------------+
//  |  payload (nla_len - 4 bytes) ... padding to a multiple of 4   |
//  +---------------------------------------------------------------+
//  N = NLA_F_NESTED, O = NLA_F_NET_BYTEORDER (linux/netlink.h).
import { CodecError, need } from '../codec/errors.ts';
import { NLA_F_NESTED, NLA_F_NET_BYTEORDER, NLA_HDRLEN, NLA_TYPE_MASK } from './constants.ts';

/** An attribute as on the wire: `flags` holds the NLA_F_* bits exactly as they were sent. */
export type NlAttr =
  | { type: number; flags: number; data: Buffer }
  | { type: number; flags: number; attrs: NlAttr[] };

/**
 * Which attributes hold nested attributes: `{ [type]: childSchema }`, and `'*'`
 * for "every attribute here is nested" (arrays such as CTRL_ATTR_OPS).
 */
export interface AttrSchema {
  readonly [type: number]: AttrSchema;
  readonly '*'?: AttrSchema;
}

export const align4 = (n: number): number => (n + 3) & ~3;

/** Decodes the attributes filling buf[start, end). Padding must be present and zero. */
export function decodeAttrs(buf: Uint8Array, start: number, end: number, schema: AttrSchema = {}): NlAttr[] {
  // Hot path (a dump of many real servers): bounds are checked inline and the
  // error path alone builds the views `need` reports from.
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: NlAttr[] = [];
  let off = start;
  if (end > b.length) need(b, start, end - start, 'attributes');
  while (off < end) {
    if (off + NLA_HDRLEN > end) need(b.subarray(0, end), off, NLA_HDRLEN, 'attribute header');
    const len = b.readUInt16LE(off);
    const rawType = b.readUInt16LE(off + 2);
    if (len < NLA_HDRLEN) throw new CodecError('PORTICO_CODEC_INVALID', `attribute length ${len} is shorter than its header`, off);
    if (off + len > end) need(b.subarray(0, end), off, len, `attribute ${rawType & NLA_TYPE_MASK}`);
    const padded = align4(len);
    if (off + padded > end) need(b.subarray(0, end), off, padded, `padding of attribute ${rawType & NLA_TYPE_MASK}`);
    for (let i = off + len; i < off + padded; i++) {
      if (b[i] !== 0) throw new CodecError('PORTICO_CODEC_INVALID', `non-zero padding after attribute ${rawType & NLA_TYPE_MASK}`, i);
    }
    const type = rawType & NLA_TYPE_MASK;
    const flags = rawType & (NLA_F_NESTED | NLA_F_NET_BYTEORDER);
    const child = schema['*'] ?? schema[type];
    if (child !== undefined || (flags & NLA_F_NESTED) !== 0) {
      out.push({ type, flags, attrs: decodeAttrs(b, off + NLA_HDRLEN, off + len, child ?? {}) });
    } else {
      // A copy: the receive buffer is reused for the next datagram.
      const data = Buffer.allocUnsafe(len - NLA_HDRLEN);
      b.copy(data, 0, off + NLA_HDRLEN, off + len);
      out.push({ type, flags, data });
    }
    off += padded;
  }
  return out;
}

/** Bytes the attributes take on the wire, padding included. */
export function attrsLength(attrs: readonly NlAttr[]): number {
  let n = 0;
  for (const a of attrs) n += align4(attrLength(a));
  return n;
}

/** nla_len of one attribute (without its trailing padding). */
function attrLength(a: NlAttr): number {
  return NLA_HDRLEN + ('attrs' in a ? attrsLength(a.attrs) : a.data.length);
}

/** Writes the attributes at `off` and returns the bytes written. */
export function encodeAttrs(attrs: readonly NlAttr[], buf: Buffer, off: number): number {
  const start = off;
  for (const a of attrs) {
    const len = attrLength(a);
    if (len > 0xffff) throw new CodecError('PORTICO_CODEC_INVALID', `attribute ${a.type} is ${len} bytes, more than nla_len can say`, off);
    buf.writeUInt16LE(len, off);
    buf.writeUInt16LE((a.type & NLA_TYPE_MASK) | (a.flags & (NLA_F_NESTED | NLA_F_NET_BYTEORDER)), off + 2);
    if ('attrs' in a) encodeAttrs(a.attrs, buf, off + NLA_HDRLEN);
    else buf.set(a.data, off + NLA_HDRLEN);
    buf.fill(0, off + len, off + align4(len));
    off += align4(len);
  }
  return off - start;
}

// --- Building attributes ---------------------------------------------------

export const attr = {
  bytes: (type: number, data: Uint8Array): NlAttr => ({ type, flags: 0, data: Buffer.from(data) }),
  u8: (type: number, v: number): NlAttr => ({ type, flags: 0, data: Buffer.from([v & 0xff]) }),
  u16: (type: number, v: number): NlAttr => { const d = Buffer.alloc(2); d.writeUInt16LE(v); return { type, flags: 0, data: d }; },
  /** A port or other value the kernel keeps in network byte order (no NLA_F_NET_BYTEORDER flag, as the kernel sends it). */
  be16: (type: number, v: number): NlAttr => { const d = Buffer.alloc(2); d.writeUInt16BE(v); return { type, flags: 0, data: d }; },
  u32: (type: number, v: number): NlAttr => { const d = Buffer.alloc(4); d.writeUInt32LE(v >>> 0); return { type, flags: 0, data: d }; },
  u64: (type: number, v: bigint): NlAttr => { const d = Buffer.alloc(8); d.writeBigUInt64LE(v); return { type, flags: 0, data: d }; },
  /** A NUL-terminated string (NLA_NUL_STRING / NLA_STRING as the kernel and libnl send them). */
  str: (type: number, s: string): NlAttr => ({ type, flags: 0, data: Buffer.from(s + '\0', 'utf8') }),
  /** Nested attributes; `flagged` sets NLA_F_NESTED (libnl does, the kernel's own replies do not). */
  nest: (type: number, attrs: NlAttr[], flagged = true): NlAttr => ({ type, flags: flagged ? NLA_F_NESTED : 0, attrs }),
};

// --- Reading attributes ----------------------------------------------------

/** The first attribute of `type`, or undefined. */
export function findAttr(attrs: readonly NlAttr[], type: number): NlAttr | undefined {
  return attrs.find((a) => a.type === type);
}

function dataOf(a: NlAttr, what: string): Buffer {
  if ('attrs' in a) throw new CodecError('PORTICO_CODEC_INVALID', `${what}: expected a value, got nested attributes`, 0);
  return a.data;
}

function sized(a: NlAttr | undefined, size: number, what: string): Buffer | undefined {
  if (!a) return undefined;
  const d = dataOf(a, what);
  if (d.length !== size) throw new CodecError('PORTICO_CODEC_INVALID', `${what}: expected ${size} bytes, got ${d.length}`, 0);
  return d;
}

export const read = {
  u8: (attrs: readonly NlAttr[], type: number, what: string): number | undefined => sized(findAttr(attrs, type), 1, what)?.readUInt8(0),
  u16: (attrs: readonly NlAttr[], type: number, what: string): number | undefined => sized(findAttr(attrs, type), 2, what)?.readUInt16LE(0),
  be16: (attrs: readonly NlAttr[], type: number, what: string): number | undefined => sized(findAttr(attrs, type), 2, what)?.readUInt16BE(0),
  u32: (attrs: readonly NlAttr[], type: number, what: string): number | undefined => sized(findAttr(attrs, type), 4, what)?.readUInt32LE(0),
  i32: (attrs: readonly NlAttr[], type: number, what: string): number | undefined => sized(findAttr(attrs, type), 4, what)?.readInt32LE(0),
  u64: (attrs: readonly NlAttr[], type: number, what: string): bigint | undefined => sized(findAttr(attrs, type), 8, what)?.readBigUInt64LE(0),
  /** A string up to its first NUL (or the attribute's end). */
  str: (attrs: readonly NlAttr[], type: number, what: string): string | undefined => {
    const a = findAttr(attrs, type);
    if (!a) return undefined;
    const d = dataOf(a, what);
    const nul = d.indexOf(0);
    return d.subarray(0, nul < 0 ? d.length : nul).toString('utf8');
  },
  bytes: (attrs: readonly NlAttr[], type: number, what: string): Buffer | undefined => {
    const a = findAttr(attrs, type);
    return a ? dataOf(a, what) : undefined;
  },
  nested: (attrs: readonly NlAttr[], type: number, what: string): NlAttr[] | undefined => {
    const a = findAttr(attrs, type);
    if (!a) return undefined;
    if (!('attrs' in a)) throw new CodecError('PORTICO_CODEC_INVALID', `${what}: expected nested attributes`, 0);
    return a.attrs;
  },
};
