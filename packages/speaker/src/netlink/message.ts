// Netlink messages: the nlmsghdr, the kernel's control messages (NLMSG_ERROR
// with extended ACK, NLMSG_DONE), generic netlink and the rtnetlink link and
// address messages. One datagram holds one or more messages (a dump sends many,
// flagged NLM_F_MULTI, ended by NLMSG_DONE).
//
// nlmsghdr (linux/netlink.h), host byte order (little endian here):
//  0               1               2               3
//  +---------------+---------------+---------------+---------------+
//  |                      nlmsg_len (whole message)                |
//  +---------------+---------------+---------------+---------------+
//  |          nlmsg_type           |          nlmsg_flags          |
//  +---------------+---------------+---------------+---------------+
//  |                           nlmsg_seq                           |
//  +---------------+---------------+---------------+---------------+
//  |                     nlmsg_pid (port id)                       |
//  +---------------------------------------------------------------+
//  payload, then padding to a multiple of 4
import { CodecError, need, type Codec } from '../codec/errors.ts';
import { align4, attrsLength, decodeAttrs, encodeAttrs, read, type AttrSchema, type NlAttr } from './attr.ts';
import { GENL_HDRLEN, NETLINK_GENERIC, NETLINK_ROUTE, NLM_F, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, NLMSG_MIN_TYPE, NLMSGERR_ATTR, RTM } from './constants.ts';
import { errnoName } from './errno.ts';

export interface NlHeader {
  type: number;
  flags: number;
  seq: number;
  /** Port id of the sender (0 for the kernel in requests, the socket's port id in replies). */
  pid: number;
}

/**
 * NLMSG_ERROR: an ACK (error 0) or a failure (negative errno). The kernel echoes
 * the request's header, and its payload too unless the ACK is capped
 * (NLM_F_CAPPED); with NLM_F_ACK_TLVS, extended-ACK attributes follow.
 */
export interface NlErrorMessage {
  kind: 'error';
  header: NlHeader;
  /** 0 for an ACK, else a negative errno. */
  error: number;
  /** The echoed request: its nlmsg_len (the whole original length, even when capped), header and echoed payload. */
  request: { length: number; header: NlHeader; payload: Buffer };
  extack: NlAttr[];
}

/** NLMSG_DONE ends a dump; its int is 0 or a negative errno if the dump failed. */
export interface NlDoneMessage {
  kind: 'done';
  header: NlHeader;
  error: number;
  extack: NlAttr[];
}

/** Generic netlink (linux/genetlink.h): cmd u8, version u8, reserved u16, attributes. */
export interface GenlMessage {
  kind: 'genl';
  header: NlHeader;
  cmd: number;
  version: number;
  reserved: number;
  attrs: NlAttr[];
}

/** RTM_{NEW,DEL,GET,SET}LINK: struct ifinfomsg (16 bytes), then IFLA_* attributes. */
export interface LinkMessage {
  kind: 'link';
  header: NlHeader;
  family: number;
  pad: number;
  /** ARPHRD_* device type. */
  devType: number;
  index: number;
  flags: number;
  change: number;
  attrs: NlAttr[];
}

/** RTM_{NEW,DEL,GET}ADDR: struct ifaddrmsg (8 bytes), then IFA_* attributes. */
export interface AddrMessage {
  kind: 'addr';
  header: NlHeader;
  family: number;
  prefixLength: number;
  /** ifa_flags (the low 8 bits; IFA_FLAGS carries all 32). */
  flags: number;
  scope: number;
  index: number;
  attrs: NlAttr[];
}

/** Any other message, or one whose payload is shorter than its family's fixed header: kept as bytes. */
export interface RawMessage {
  kind: 'raw';
  header: NlHeader;
  payload: Buffer;
}

export type NlMessage = NlErrorMessage | NlDoneMessage | GenlMessage | LinkMessage | AddrMessage | RawMessage;

export interface NetlinkCodecOptions {
  /** NETLINK_ROUTE or NETLINK_GENERIC: how types >= NLMSG_MIN_TYPE are read. */
  protocol: number;
  /**
   * Generic netlink: nested-attribute schemas by family id (ids are resolved at
   * run time), or a function of the command when attributes differ per command.
   */
  families?: Readonly<Record<number, AttrSchema | ((cmd: number) => AttrSchema)>>;
  /** rtnetlink: schemas for link and address attributes. */
  linkSchema?: AttrSchema;
  addrSchema?: AttrSchema;
}

/** IFLA_LINKINFO holds IFLA_INFO_DATA / IFLA_INFO_SLAVE_DATA, both nested. */
export const LINK_SCHEMA: AttrSchema = { 18: { 2: {}, 5: {} } };

function readHeader(b: Buffer, off: number): NlHeader {
  return { type: b.readUInt16LE(off + 4), flags: b.readUInt16LE(off + 6), seq: b.readUInt32LE(off + 8), pid: b.readUInt32LE(off + 12) };
}

function writeHeader(h: NlHeader, len: number, b: Buffer, off: number): void {
  b.writeUInt32LE(len, off);
  b.writeUInt16LE(h.type, off + 4);
  b.writeUInt16LE(h.flags, off + 6);
  b.writeUInt32LE(h.seq >>> 0, off + 8);
  b.writeUInt32LE(h.pid >>> 0, off + 12);
}

/** Decodes one message occupying b[off, off+len) (len = nlmsg_len). */
function decodeOne(b: Buffer, off: number, len: number, opts: NetlinkCodecOptions): NlMessage {
  const header = readHeader(b, off);
  const p = off + NLMSG_HDRLEN;
  const end = off + len;
  const plen = len - NLMSG_HDRLEN;
  if (header.type === NLMSG_ERROR) {
    need(b.subarray(0, end), p, 4 + NLMSG_HDRLEN, 'nlmsgerr');
    const error = b.readInt32LE(p);
    const reqLen = b.readUInt32LE(p + 4);
    const reqHeader = readHeader(b, p + 4);
    let q = p + 4 + NLMSG_HDRLEN;
    let payloadLen = 0;
    if ((header.flags & NLM_F.CAPPED) === 0) {
      if (reqLen < NLMSG_HDRLEN) throw new CodecError('PORTICO_CODEC_INVALID', `echoed request length ${reqLen} is shorter than a header`, p + 4);
      payloadLen = reqLen - NLMSG_HDRLEN;
      need(b.subarray(0, end), q, payloadLen, 'echoed request');
    }
    const payload = Buffer.from(b.subarray(q, q + payloadLen));
    q += payloadLen;
    let extack: NlAttr[] = [];
    if ((header.flags & NLM_F.ACK_TLVS) !== 0) {
      const t = p + align4(q - p);
      need(b.subarray(0, end), q, t - q, 'padding before extended ACK');
      if (b.subarray(q, t).some((x) => x !== 0)) throw new CodecError('PORTICO_CODEC_INVALID', 'non-zero padding before extended ACK', q);
      extack = decodeAttrs(b, t, end);
    } else if (q !== end) {
      throw new CodecError('PORTICO_CODEC_INVALID', `${end - q} bytes after the echoed request without NLM_F_ACK_TLVS`, q);
    }
    return { kind: 'error', header, error, request: { length: reqLen, header: reqHeader, payload }, extack };
  }
  if (header.type === NLMSG_DONE) {
    need(b.subarray(0, end), p, 4, 'NLMSG_DONE error');
    const error = b.readInt32LE(p);
    if ((header.flags & NLM_F.ACK_TLVS) === 0 && plen !== 4) throw new CodecError('PORTICO_CODEC_INVALID', `NLMSG_DONE has ${plen - 4} unexpected bytes`, p + 4);
    return { kind: 'done', header, error, extack: (header.flags & NLM_F.ACK_TLVS) !== 0 ? decodeAttrs(b, p + 4, end) : [] };
  }
  if (header.type >= NLMSG_MIN_TYPE && opts.protocol === NETLINK_GENERIC && plen >= GENL_HDRLEN) {
    const family = opts.families?.[header.type];
    const schema = typeof family === 'function' ? family(b[p]!) : family;
    return {
      kind: 'genl', header, cmd: b[p]!, version: b[p + 1]!, reserved: b.readUInt16LE(p + 2),
      attrs: decodeAttrs(b, p + GENL_HDRLEN, end, schema ?? {}),
    };
  }
  if (opts.protocol === NETLINK_ROUTE && header.type >= RTM.NEWLINK && header.type <= RTM.SETLINK && plen >= 16) {
    return {
      kind: 'link', header, family: b[p]!, pad: b[p + 1]!, devType: b.readUInt16LE(p + 2), index: b.readInt32LE(p + 4),
      flags: b.readUInt32LE(p + 8), change: b.readUInt32LE(p + 12), attrs: decodeAttrs(b, p + 16, end, opts.linkSchema ?? LINK_SCHEMA),
    };
  }
  if (opts.protocol === NETLINK_ROUTE && header.type >= RTM.NEWADDR && header.type <= RTM.GETADDR && plen >= 8) {
    return {
      kind: 'addr', header, family: b[p]!, prefixLength: b[p + 1]!, flags: b[p + 2]!, scope: b[p + 3]!, index: b.readUInt32LE(p + 4),
      attrs: decodeAttrs(b, p + 8, end, opts.addrSchema ?? {}),
    };
  }
  return { kind: 'raw', header, payload: Buffer.from(b.subarray(p, end)) };
}

/** nlmsg_len of a message (without the padding that follows it). */
export function messageLength(m: NlMessage): number {
  switch (m.kind) {
    case 'error': {
      const body = 4 + NLMSG_HDRLEN + m.request.payload.length;
      return NLMSG_HDRLEN + (m.extack.length ? align4(body) + attrsLength(m.extack) : body);
    }
    case 'done': return NLMSG_HDRLEN + 4 + attrsLength(m.extack);
    case 'genl': return NLMSG_HDRLEN + GENL_HDRLEN + attrsLength(m.attrs);
    case 'link': return NLMSG_HDRLEN + 16 + attrsLength(m.attrs);
    case 'addr': return NLMSG_HDRLEN + 8 + attrsLength(m.attrs);
    case 'raw': return NLMSG_HDRLEN + m.payload.length;
  }
}

function encodeOne(m: NlMessage, b: Buffer, off: number): number {
  const len = messageLength(m);
  writeHeader(m.header, len, b, off);
  const p = off + NLMSG_HDRLEN;
  switch (m.kind) {
    case 'error': {
      b.writeInt32LE(m.error, p);
      // The echoed header keeps its own nlmsg_len: capped, it still names the whole request.
      writeHeader(m.request.header, m.request.length, b, p + 4);
      b.set(m.request.payload, p + 4 + NLMSG_HDRLEN);
      const q = p + 4 + NLMSG_HDRLEN + m.request.payload.length;
      if (m.extack.length) {
        const t = p + align4(q - p);
        b.fill(0, q, t);
        encodeAttrs(m.extack, b, t);
      }
      break;
    }
    case 'done':
      b.writeInt32LE(m.error, p);
      encodeAttrs(m.extack, b, p + 4);
      break;
    case 'genl':
      b[p] = m.cmd; b[p + 1] = m.version; b.writeUInt16LE(m.reserved, p + 2);
      encodeAttrs(m.attrs, b, p + GENL_HDRLEN);
      break;
    case 'link':
      b[p] = m.family; b[p + 1] = m.pad; b.writeUInt16LE(m.devType, p + 2); b.writeInt32LE(m.index, p + 4);
      b.writeUInt32LE(m.flags >>> 0, p + 8); b.writeUInt32LE(m.change >>> 0, p + 12);
      encodeAttrs(m.attrs, b, p + 16);
      break;
    case 'addr':
      b[p] = m.family; b[p + 1] = m.prefixLength; b[p + 2] = m.flags; b[p + 3] = m.scope; b.writeUInt32LE(m.index >>> 0, p + 4);
      encodeAttrs(m.attrs, b, p + 8);
      break;
    case 'raw':
      b.set(m.payload, p);
      break;
  }
  b.fill(0, off + len, off + align4(len));
  return align4(len);
}

/**
 * A codec for one netlink datagram: the messages it holds, in order. Each
 * message is followed by padding to 4 bytes, as the kernel writes them.
 */
export function netlinkCodec(opts: NetlinkCodecOptions): Codec<NlMessage[]> {
  const codec: Codec<NlMessage[]> = {
    decode(buf) {
      const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
      const out: NlMessage[] = [];
      let off = 0;
      if (b.length === 0) throw new CodecError('PORTICO_CODEC_TRUNCATED', 'empty netlink datagram', 0);
      while (off < b.length) {
        need(b, off, NLMSG_HDRLEN, 'nlmsghdr');
        const len = b.readUInt32LE(off);
        if (len < NLMSG_HDRLEN) throw new CodecError('PORTICO_CODEC_INVALID', `nlmsg_len ${len} is shorter than the header`, off);
        need(b, off, len, `message of type ${b.readUInt16LE(off + 4)}`);
        need(b, off, align4(len), 'padding after the message');
        if (b.subarray(off + len, off + align4(len)).some((x) => x !== 0)) throw new CodecError('PORTICO_CODEC_INVALID', 'non-zero padding after a message', off + len);
        out.push(decodeOne(b, off, len, opts));
        off += align4(len);
      }
      return out;
    },
    encode(msgs) {
      const b = Buffer.alloc(codec.encodedLength(msgs));
      codec.encodeInto(msgs, b, 0);
      return b;
    },
    encodedLength(msgs) {
      return msgs.reduce((n, m) => n + align4(messageLength(m)), 0);
    },
    encodeInto(msgs, buf, offset) {
      let off = offset;
      for (const m of msgs) off += encodeOne(m, buf, off);
      return off - offset;
    },
  };
  return codec;
}

export const routeCodec = netlinkCodec({ protocol: NETLINK_ROUTE });

/**
 * What a failed request comes back as: errno name and number and, when the
 * kernel gave one, its extended-ACK text and the offset of the offending byte
 * in our request (linux/netlink.h, NLMSGERR_ATTR_MSG / NLMSGERR_ATTR_OFFS).
 */
export class NetlinkError extends Error {
  readonly code = 'PORTICO_NETLINK_ERROR';
  /** Positive errno number (17). */
  readonly errno: number;
  /** Its name ('EEXIST'). */
  readonly errnoName: string;
  /** The kernel's extended-ACK message, if any. */
  readonly kernelMessage: string | undefined;
  /** Byte offset in the request the kernel blamed, if any. */
  readonly offset: number | undefined;

  constructor(error: number, kernelMessage: string | undefined, offset: number | undefined, context = 'netlink request') {
    const name = errnoName(error);
    super(`${context} failed: ${name}${kernelMessage ? `: ${kernelMessage}` : ''}${offset !== undefined ? ` (at byte ${offset})` : ''}`);
    this.name = 'NetlinkError';
    this.errno = Math.abs(error);
    this.errnoName = name;
    this.kernelMessage = kernelMessage;
    this.offset = offset;
  }
}

/** The NetlinkError an NLMSG_ERROR or NLMSG_DONE carries, or null for success. */
export function messageError(m: NlErrorMessage | NlDoneMessage, context?: string): NetlinkError | null {
  if (m.error === 0) return null;
  return new NetlinkError(m.error, read.str(m.extack, NLMSGERR_ATTR.MSG, 'extack message'), read.u32(m.extack, NLMSGERR_ATTR.OFFS, 'extack offset'), context);
}
