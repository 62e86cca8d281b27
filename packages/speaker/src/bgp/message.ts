// BGP messages (RFC 4271 §4) as one discriminated union with one codec:
// OPEN, UPDATE, NOTIFICATION, KEEPALIVE and ROUTE-REFRESH, plus the helpers to
// build an OPEN and to recognise End-of-RIB.
import type { Codec } from '../codec/errors.ts';
import {
  ATTR_AS_PATH, ATTR_NEXT_HOP, ATTR_ORIGIN, AS_TRANS, attributeCode, attributeLength, decodeAttributes, encodeAttributeInto, findAttribute,
  type AttributeContext, type PathAttribute,
} from './attributes.ts';
import { capabilityLength, decodeCapabilities, encodeCapabilityInto, type Capability } from './capabilities.ts';
import { AFI_IPV4, AFI_IPV6, SAFI_UNICAST, formatIPv4, parseIPv4 } from './ip.ts';
import {
  ERR_HEADER, ERR_OPEN, ERR_UPDATE, HEADER_BAD_LENGTH, HEADER_BAD_TYPE, HEADER_NOT_SYNCHRONIZED, OPEN_UNSPECIFIC,
  OPEN_UNSUPPORTED_VERSION, TREATMENT_SEVERITY, UPDATE_INVALID_NETWORK, UPDATE_MALFORMED_ATTRIBUTE_LIST,
  UPDATE_MISSING_WELL_KNOWN, bgpError, bgpNeed,
} from './notification.ts';
import { decodePrefixes, encodePrefixInto, prefixWireLength } from './prefix.ts';

/** Message type codes (RFC 4271 §4.1, RFC 2918 §3). */
export const MSG_OPEN = 1;
export const MSG_UPDATE = 2;
export const MSG_NOTIFICATION = 3;
export const MSG_KEEPALIVE = 4;
export const MSG_ROUTE_REFRESH = 5;

/** RFC 4271 §4.1: a header is 19 octets and a message at most 4096. */
export const HEADER_LENGTH = 19;
export const MAX_MESSAGE_LENGTH = 4096;
/** Optional parameter type carrying capabilities (RFC 5492 §4). */
export const PARAM_CAPABILITIES = 2;

/** An OPEN optional parameter: capabilities, or any other type kept raw. */
export type OptionalParameter =
  | { type: 'capabilities'; capabilities: Capability[] }
  | { type: 'raw'; code: number; value: Buffer };

/**
 * OPEN (RFC 4271 §4.2), optional parameters per RFC 5492 §4 and, when
 * `extendedParameters` is set, the extended encoding of RFC 9072 §2.
 *
 *   Version (1) | My AS (2) | Hold Time (2) | BGP Identifier (4)
 *   Opt Parm Len (1) | Optional Parameters: Type (1), Length (1), Value
 *   (RFC 9072: Opt Parm Len 255, Type 255, Extended Length (2), params with 2-octet lengths)
 */
export interface OpenMessage {
  type: 'open';
  version: number;
  /** 2-octet AS; AS_TRANS when the real AS is in the four-octet-as capability. */
  myAsn: number;
  holdTime: number;
  bgpId: string;
  parameters: OptionalParameter[];
  extendedParameters?: boolean;
}

/**
 * UPDATE (RFC 4271 §4.3):
 *
 *   Withdrawn Routes Length (2) | Withdrawn Routes (variable)
 *   Total Path Attribute Length (2) | Path Attributes (variable)
 *   Network Layer Reachability Information (rest of the message)
 */
export interface UpdateMessage {
  type: 'update';
  withdrawn: string[];
  attributes: PathAttribute[];
  nlri: string[];
}

/** NOTIFICATION (RFC 4271 §4.5): Error code (1) | Error subcode (1) | Data (rest). */
export interface NotificationMessage {
  type: 'notification';
  code: number;
  subcode: number;
  data: Buffer;
}

/** KEEPALIVE (RFC 4271 §4.4): the header alone. */
export interface KeepaliveMessage {
  type: 'keepalive';
}

/**
 * ROUTE-REFRESH (RFC 2918 §3): AFI (2) | Reserved (1) | SAFI (1). RFC 7313 §3.2
 * gives the reserved octet the meaning of a subtype (0 request, 1 BoRR, 2 EoRR).
 */
export interface RouteRefreshMessage {
  type: 'route-refresh';
  afi: number;
  safi: number;
  subtype: number;
}

export type BgpMessage = OpenMessage | UpdateMessage | NotificationMessage | KeepaliveMessage | RouteRefreshMessage;

/** What decoding depends on: the agreed AS width, and the largest message accepted. */
export interface MessageContext extends AttributeContext {
  /** 4096 unless the extended message capability (RFC 8654) was agreed. */
  maxLength?: number;
}

/** The context before OPENs are exchanged, and for two peers that both speak 4-octet AS. */
export const FOUR_OCTET: MessageContext = { fourOctetAs: true };

const MIN_LENGTH: Record<number, number> = {
  [MSG_OPEN]: 29,
  [MSG_UPDATE]: 23,
  [MSG_NOTIFICATION]: 21,
  [MSG_KEEPALIVE]: 19,
  [MSG_ROUTE_REFRESH]: 23,
};

function parametersLength(m: OpenMessage): number {
  const per = m.extendedParameters ? 3 : 2;
  return m.parameters.reduce((n, p) => n + per + (p.type === 'raw' ? p.value.length : p.capabilities.reduce((k, c) => k + capabilityLength(c), 0)), 0);
}

function bodyLength(m: BgpMessage, ctx: MessageContext): number {
  switch (m.type) {
    case 'open': return 10 + (m.extendedParameters ? 3 : 0) + parametersLength(m);
    case 'update':
      return 4
        + m.withdrawn.reduce((n, p) => n + prefixWireLength(p), 0)
        + m.attributes.reduce((n, a) => n + attributeLength(a, ctx), 0)
        + m.nlri.reduce((n, p) => n + prefixWireLength(p), 0);
    case 'notification': return 2 + m.data.length;
    case 'keepalive': return 0;
    case 'route-refresh': return 4;
  }
}

function typeCode(m: BgpMessage): number {
  switch (m.type) {
    case 'open': return MSG_OPEN;
    case 'update': return MSG_UPDATE;
    case 'notification': return MSG_NOTIFICATION;
    case 'keepalive': return MSG_KEEPALIVE;
    case 'route-refresh': return MSG_ROUTE_REFRESH;
  }
}

export function messageLength(m: BgpMessage, ctx: MessageContext = FOUR_OCTET): number {
  return HEADER_LENGTH + bodyLength(m, ctx);
}

/**
 * Writes a message at `off`; returns bytes written. Header (RFC 4271 §4.1):
 *
 *   Marker (16 octets of 0xff) | Length (2, whole message) | Type (1)
 */
export function encodeMessageInto(m: BgpMessage, ctx: MessageContext, buf: Buffer, off: number): number {
  const len = messageLength(m, ctx);
  const max = ctx.maxLength ?? MAX_MESSAGE_LENGTH;
  if (len > max) throw new RangeError(`BGP ${m.type} of ${len} bytes exceeds ${max}; split it (see update-builder.ts)`);
  buf.fill(0xff, off, off + 16);
  buf.writeUInt16BE(len, off + 16);
  buf[off + 18] = typeCode(m);
  let at = off + HEADER_LENGTH;
  switch (m.type) {
    case 'open': {
      buf[at] = m.version;
      buf.writeUInt16BE(m.myAsn, at + 1);
      buf.writeUInt16BE(m.holdTime, at + 3);
      parseIPv4(m.bgpId).copy(buf, at + 5);
      const plen = parametersLength(m);
      if (m.extendedParameters) {
        buf[at + 9] = 255;
        buf[at + 10] = 255;
        buf.writeUInt16BE(plen, at + 11);
        at += 13;
      } else {
        if (plen > 255) throw new RangeError(`OPEN optional parameters of ${plen} bytes need extendedParameters (RFC 9072)`);
        buf[at + 9] = plen;
        at += 10;
      }
      for (const p of m.parameters) {
        const vlen = p.type === 'raw' ? p.value.length : p.capabilities.reduce((k, c) => k + capabilityLength(c), 0);
        buf[at] = p.type === 'raw' ? p.code : PARAM_CAPABILITIES;
        if (m.extendedParameters) { buf.writeUInt16BE(vlen, at + 1); at += 3; } else {
          if (vlen > 255) throw new RangeError(`optional parameter of ${vlen} bytes needs extendedParameters (RFC 9072)`);
          buf[at + 1] = vlen;
          at += 2;
        }
        if (p.type === 'raw') at += p.value.copy(buf, at);
        else for (const c of p.capabilities) at += encodeCapabilityInto(c, buf, at);
      }
      break;
    }
    case 'update': {
      const wStart = at + 2;
      let w = wStart;
      for (const p of m.withdrawn) w += encodePrefixInto(p, buf, w);
      buf.writeUInt16BE(w - wStart, at);
      const aStart = w + 2;
      let a = aStart;
      for (const attr of m.attributes) a += encodeAttributeInto(attr, ctx, buf, a);
      buf.writeUInt16BE(a - aStart, w);
      for (const p of m.nlri) a += encodePrefixInto(p, buf, a);
      break;
    }
    case 'notification':
      buf[at] = m.code;
      buf[at + 1] = m.subcode;
      m.data.copy(buf, at + 2);
      break;
    case 'keepalive':
      break;
    case 'route-refresh':
      buf.writeUInt16BE(m.afi, at);
      buf[at + 2] = m.subtype;
      buf[at + 3] = m.safi;
      break;
  }
  return len;
}

export function encodeMessage(m: BgpMessage, ctx: MessageContext = FOUR_OCTET): Buffer {
  const buf = Buffer.alloc(messageLength(m, ctx));
  encodeMessageInto(m, ctx, buf, 0);
  return buf;
}

function lengthField(len: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(len & 0xffff);
  return b;
}

/**
 * Checks a message header (RFC 4271 §6.1) and returns the message length and
 * type. Used by the stream framer on a header alone and by decodeMessage.
 */
export function checkHeader(buf: Uint8Array, off: number, ctx: MessageContext = FOUR_OCTET): { length: number; type: number } {
  bgpNeed(buf, off, HEADER_LENGTH, 'BGP header', 0, ERR_HEADER, HEADER_BAD_LENGTH);
  for (let i = 0; i < 16; i++) {
    if (buf[off + i] !== 0xff) throw bgpError('BGP marker is not all ones', off + i, ERR_HEADER, HEADER_NOT_SYNCHRONIZED);
  }
  const length = (buf[off + 16]! << 8) | buf[off + 17]!;
  const type = buf[off + 18]!;
  const min = MIN_LENGTH[type];
  if (min === undefined) throw bgpError(`unknown BGP message type ${type}`, off + 18, ERR_HEADER, HEADER_BAD_TYPE, 'session-reset', Buffer.from([type]));
  const max = ctx.maxLength ?? MAX_MESSAGE_LENGTH;
  const exact = type === MSG_KEEPALIVE || type === MSG_ROUTE_REFRESH;
  if (length < min || length > max || (exact && length !== min)) {
    throw bgpError(`BGP message type ${type} with length ${length}`, off + 16, ERR_HEADER, HEADER_BAD_LENGTH, 'session-reset', lengthField(length));
  }
  return { length, type };
}

function decodeOpen(b: Buffer): OpenMessage {
  const version = b[19]!;
  if (version !== 4) {
    // RFC 4271 §6.2: the data is the largest version we support.
    throw bgpError(`BGP version ${version}`, 19, ERR_OPEN, OPEN_UNSUPPORTED_VERSION, 'session-reset', Buffer.from([0, 4]));
  }
  const m: OpenMessage = { type: 'open', version, myAsn: b.readUInt16BE(20), holdTime: b.readUInt16BE(22), bgpId: formatIPv4(b, 24), parameters: [] };
  let plen = b[28]!;
  let at = 29;
  const ext = plen === 255 && b[29] === 255;
  if (ext) {
    bgpNeed(b, 30, 2, 'extended optional parameters length', 0, ERR_OPEN, OPEN_UNSPECIFIC);
    plen = b.readUInt16BE(30);
    at = 32;
    m.extendedParameters = true;
  }
  if (at + plen !== b.length) {
    throw bgpError(`optional parameters length ${plen} disagrees with the message length ${b.length}`, 28, ERR_OPEN, OPEN_UNSPECIFIC);
  }
  const hdr = ext ? 3 : 2;
  while (at < b.length) {
    bgpNeed(b, at, hdr, 'optional parameter header', 0, ERR_OPEN, OPEN_UNSPECIFIC);
    const code = b[at]!;
    const vlen = ext ? b.readUInt16BE(at + 1) : b[at + 1]!;
    bgpNeed(b, at + hdr, vlen, 'optional parameter value', 0, ERR_OPEN, OPEN_UNSPECIFIC);
    const value = b.subarray(at + hdr, at + hdr + vlen);
    if (code === PARAM_CAPABILITIES) m.parameters.push({ type: 'capabilities', capabilities: decodeCapabilities(value, at + hdr) });
    else m.parameters.push({ type: 'raw', code, value: Buffer.from(value) });
    at += hdr + vlen;
  }
  return m;
}

function decodeUpdate(b: Buffer, ctx: MessageContext): UpdateMessage {
  const wlen = b.readUInt16BE(19);
  if (21 + wlen + 2 > b.length) {
    throw bgpError(`withdrawn routes length ${wlen} overruns the message`, 19, ERR_UPDATE, UPDATE_MALFORMED_ATTRIBUTE_LIST);
  }
  const alen = b.readUInt16BE(21 + wlen);
  const aStart = 23 + wlen;
  if (aStart + alen > b.length) {
    throw bgpError(`total path attribute length ${alen} overruns the message`, 21 + wlen, ERR_UPDATE, UPDATE_MALFORMED_ATTRIBUTE_LIST);
  }
  // RFC 7606 §5.3: NLRI that cannot be parsed leaves nothing to withdraw safely.
  const withdrawn = decodePrefixes(b.subarray(21, 21 + wlen), AFI_IPV4, { base: 21, code: ERR_UPDATE, subcode: UPDATE_INVALID_NETWORK });
  const nlri = decodePrefixes(b.subarray(aStart + alen), AFI_IPV4, { base: aStart + alen, code: ERR_UPDATE, subcode: UPDATE_INVALID_NETWORK });
  const { attributes, problems } = decodeAttributes(b.subarray(aStart, aStart + alen), ctx, aStart);
  const update: UpdateMessage = { type: 'update', withdrawn, attributes, nlri };

  // RFC 4271 §5 and RFC 7606 §3 (d): routes need ORIGIN and AS_PATH, and
  // NEXT_HOP when carried in the NLRI field; a missing one is treat-as-withdraw.
  const mpReach = findAttribute(attributes, 'mp-reach');
  const hasRoutes = nlri.length > 0 || (mpReach?.nlri.length ?? 0) > 0;
  if (hasRoutes) {
    const required = [ATTR_ORIGIN, ATTR_AS_PATH, ...(nlri.length > 0 ? [ATTR_NEXT_HOP] : [])];
    const present = new Set<number>(attributes.filter((a) => a.type !== 'raw').map(attributeCode));
    const malformed = new Set(problems.map((p) => p.error.detail.data instanceof Buffer ? p.error.detail.data[1] : undefined));
    for (const code of required) {
      if (!present.has(code) && !malformed.has(code)) {
        problems.push({
          error: bgpError(`UPDATE with routes lacks well-known attribute ${code}`, aStart, ERR_UPDATE, UPDATE_MISSING_WELL_KNOWN, 'treat-as-withdraw', Buffer.from([code])),
          treatment: 'treat-as-withdraw',
        });
      }
    }
  }
  if (problems.length > 0) {
    const worst = problems.reduce((a, p) => (TREATMENT_SEVERITY[p.treatment] > TREATMENT_SEVERITY[a.treatment] ? p : a));
    const e = worst.error;
    // The detail keeps the whole UPDATE (bad attributes raw) so the caller can
    // withdraw its routes or drop the attribute as the treatment says.
    throw bgpError(e.message, e.offset, e.detail.code as number, e.detail.subcode as number, worst.treatment, e.detail.data as Buffer, e.code, {
      update,
      problems: problems.map((p) => ({ message: p.error.message, treatment: p.treatment, code: p.error.detail.code, subcode: p.error.detail.subcode })),
    });
  }
  return update;
}

/**
 * Decodes exactly one whole message. Errors are CodecErrors whose detail is a
 * BgpErrorDetail: the NOTIFICATION code/subcode/data and the RFC 7606 treatment.
 */
export function decodeMessage(buf: Uint8Array, ctx: MessageContext = FOUR_OCTET): BgpMessage {
  const { length, type } = checkHeader(buf, 0, ctx);
  if (length !== buf.length) {
    bgpNeed(buf, 0, length, 'BGP message', 0, ERR_HEADER, HEADER_BAD_LENGTH);
    throw bgpError(`${buf.length - length} bytes after a ${length}-byte BGP message`, length, ERR_HEADER, HEADER_BAD_LENGTH, 'session-reset', lengthField(length));
  }
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  switch (type) {
    case MSG_OPEN: return decodeOpen(b);
    case MSG_UPDATE: return decodeUpdate(b, ctx);
    case MSG_NOTIFICATION: return { type: 'notification', code: b[19]!, subcode: b[20]!, data: Buffer.from(b.subarray(21)) };
    case MSG_KEEPALIVE: return { type: 'keepalive' };
    default: return { type: 'route-refresh', afi: b.readUInt16BE(19), subtype: b[21]!, safi: b[22]! };
  }
}

/** The message codec in Portico's Codec shape for one session context. */
export function messageCodec(ctx: MessageContext = FOUR_OCTET): Codec<BgpMessage> {
  return {
    decode: (buf) => decodeMessage(buf, ctx),
    encode: (m) => encodeMessage(m, ctx),
    encodedLength: (m) => messageLength(m, ctx),
    encodeInto: (m, buf, off) => encodeMessageInto(m, ctx, buf, off),
  };
}

/** Every capability of an OPEN, in order, whatever parameters carried them. */
export function capabilitiesOf(open: OpenMessage): Capability[] {
  return open.parameters.flatMap((p) => (p.type === 'capabilities' ? p.capabilities : []));
}

/** The sender's real AS: the four-octet-as capability if present (RFC 6793 §4.1), else My AS. */
export function openAsn(open: OpenMessage): number {
  const c = capabilitiesOf(open).find((x) => x.type === 'four-octet-as');
  return c?.type === 'four-octet-as' ? c.asn : open.myAsn;
}

/**
 * Portico's OPEN: one Capabilities parameter; My AS is AS_TRANS when the AS
 * needs four octets (RFC 6793 §4.1). The four-octet-as capability is always
 * sent, and is added here if the caller's list lacks it.
 */
export function buildOpen(o: { asn: number; holdTime: number; bgpId: string; capabilities: Capability[] }): OpenMessage {
  const caps = o.capabilities.some((c) => c.type === 'four-octet-as') ? o.capabilities : [...o.capabilities, { type: 'four-octet-as' as const, asn: o.asn }];
  return {
    type: 'open', version: 4, myAsn: o.asn > 0xffff ? AS_TRANS : o.asn, holdTime: o.holdTime, bgpId: o.bgpId,
    parameters: [{ type: 'capabilities', capabilities: caps }],
  };
}

export const KEEPALIVE: KeepaliveMessage = { type: 'keepalive' };

/**
 * End-of-RIB marker (RFC 4724 §2): for IPv4 unicast an UPDATE with nothing in
 * it; for other families an UPDATE whose only attribute is an empty MP_UNREACH_NLRI.
 */
export function endOfRib(afi: number, safi: number = SAFI_UNICAST): UpdateMessage {
  if (afi === AFI_IPV4 && safi === SAFI_UNICAST) return { type: 'update', withdrawn: [], attributes: [], nlri: [] };
  if ((afi === AFI_IPV4 || afi === AFI_IPV6) && safi === SAFI_UNICAST) {
    return { type: 'update', withdrawn: [], attributes: [{ type: 'mp-unreach', afi, safi, withdrawn: [] }], nlri: [] };
  }
  throw new RangeError(`End-of-RIB for AFI ${afi} SAFI ${safi} is not built by Portico`);
}

/** The family an UPDATE marks as End-of-RIB, or undefined if it is not one. */
export function endOfRibFamily(m: UpdateMessage): { afi: number; safi: number } | undefined {
  if (m.withdrawn.length || m.nlri.length) return undefined;
  if (m.attributes.length === 0) return { afi: AFI_IPV4, safi: SAFI_UNICAST };
  const only = m.attributes[0];
  if (m.attributes.length !== 1 || !only) return undefined;
  if (only.type === 'mp-unreach' && only.withdrawn.length === 0) return { afi: only.afi, safi: only.safi };
  if (only.type === 'raw' && only.code === 15 && only.value.length === 3) return { afi: only.value.readUInt16BE(0), safi: only.value[2]! };
  return undefined;
}

export { AFI_IPV4, AFI_IPV6, SAFI_UNICAST };
