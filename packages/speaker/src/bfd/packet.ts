// The BFD Control packet codec (RFC 5880 §4): pure, no sockets. An
// authentication section of a type this codec does not know decodes to a raw
// variant that keeps its bytes, so decode -> encode is lossless.
import { CodecError, need, type Codec } from '../codec/errors.ts';

/*
 * RFC 5880 §4.1, mandatory section (24 bytes):
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
 * |                       My Discriminator                        |
 * |                      Your Discriminator                       |
 * |                    Desired Min TX Interval                    |
 * |                   Required Min RX Interval                    |
 * |                 Required Min Echo RX Interval                 |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * optional authentication section (§4.2): Auth Type | Auth Len | data...
 */

/** RFC 5880 §4.1: the version this codec speaks. */
export const BFD_VERSION = 1;
/** Length of the mandatory section. */
export const BFD_HEADER_LENGTH = 24;

/** RFC 5880 §4.1 "Sta": the session state the sender is in. */
export type BfdState = 'AdminDown' | 'Down' | 'Init' | 'Up';
const STATES: readonly BfdState[] = ['AdminDown', 'Down', 'Init', 'Up'];

/** RFC 5880 §4.1 diagnostic codes (5 bits); other values decode as their number. */
export const Diag = {
  none: 0,
  controlDetectionTimeExpired: 1,
  echoFunctionFailed: 2,
  neighborSignaledDown: 3,
  forwardingPlaneReset: 4,
  pathDown: 5,
  concatenatedPathDown: 6,
  administrativelyDown: 7,
  reverseConcatenatedPathDown: 8,
} as const;

const DIAG_NAMES: Readonly<Record<number, string>> = {
  0: 'no diagnostic', 1: 'control detection time expired', 2: 'echo function failed', 3: 'neighbor signaled session down',
  4: 'forwarding plane reset', 5: 'path down', 6: 'concatenated path down', 7: 'administratively down', 8: 'reverse concatenated path down',
};

/** A diagnostic code in words. */
export function diagName(diag: number): string {
  return DIAG_NAMES[diag] ?? `diagnostic ${diag}`;
}

/** RFC 5880 §4.2-§4.4: authentication types. */
export const AuthType = { simplePassword: 1, keyedMd5: 2, meticulousKeyedMd5: 3, keyedSha1: 4, meticulousKeyedSha1: 5 } as const;

/**
 * RFC 5880 §4.2-§4.4: the authentication section. Keyed MD5/SHA1 (types 2-5)
 * share one shape: key id, a reserved byte, a sequence number and the digest
 * (16 bytes for MD5, 20 for SHA1). Any other type keeps its bytes.
 */
export type BfdAuth =
  | { type: 'simple-password'; keyId: number; password: Buffer }
  | { type: 'keyed'; authType: 2 | 3 | 4 | 5; keyId: number; reserved: number; sequence: number; digest: Buffer }
  | { type: 'raw'; authType: number; data: Buffer };

/** RFC 5880 §4.1: one BFD Control packet. Intervals are in microseconds, as on the wire. */
export interface ControlPacket {
  diag: number;
  state: BfdState;
  poll: boolean;
  final: boolean;
  controlPlaneIndependent: boolean;
  demand: boolean;
  multipoint: boolean;
  detectMult: number;
  myDiscriminator: number;
  yourDiscriminator: number;
  desiredMinTxInterval: number;
  requiredMinRxInterval: number;
  requiredMinEchoRxInterval: number;
  /** Present exactly when the A bit is set. */
  auth?: BfdAuth;
  /**
   * Bytes after Length in the datagram: the RFC only requires Length not to
   * exceed the payload, so a sender's padding is kept for a lossless round trip.
   */
  trailer?: Buffer;
}

const digestLength = (authType: number): number => (authType === 2 || authType === 3 ? 16 : 20);

function authLength(a: BfdAuth): number {
  switch (a.type) {
    case 'simple-password': return 3 + a.password.length;
    case 'keyed': return 8 + digestLength(a.authType);
    case 'raw': return 2 + a.data.length;
  }
}

/** RFC 5880 §4.2-§4.4: decodes the authentication section at `at` (inside a packet of `length` bytes). */
function decodeAuth(buf: Uint8Array, at: number, length: number): BfdAuth {
  need(buf, at, 2, 'BFD authentication header');
  const authType = buf[at]!;
  const authLen = buf[at + 1]!;
  if (authLen < 2 || at + authLen !== length) {
    throw new CodecError('PORTICO_CODEC_INVALID', `BFD Auth Len ${authLen} does not fill the packet (Length ${length})`, at + 1, { authType, authLen });
  }
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  switch (authType) {
    case AuthType.simplePassword: {
      // §4.2: key id plus a password of 1 to 16 bytes.
      if (authLen < 4 || authLen > 19) throw new CodecError('PORTICO_CODEC_INVALID', `BFD simple password Auth Len ${authLen} is not 4..19`, at + 1, { authType, authLen });
      return { type: 'simple-password', keyId: buf[at + 2]!, password: Buffer.from(b.subarray(at + 3, at + authLen)) };
    }
    case AuthType.keyedMd5: case AuthType.meticulousKeyedMd5: case AuthType.keyedSha1: case AuthType.meticulousKeyedSha1: {
      const want = 8 + digestLength(authType);
      if (authLen !== want) throw new CodecError('PORTICO_CODEC_INVALID', `BFD keyed authentication type ${authType} needs Auth Len ${want}, got ${authLen}`, at + 1, { authType, authLen });
      return {
        type: 'keyed', authType, keyId: buf[at + 2]!, reserved: buf[at + 3]!, sequence: b.readUInt32BE(at + 4),
        digest: Buffer.from(b.subarray(at + 8, at + authLen)),
      };
    }
    default:
      return { type: 'raw', authType, data: Buffer.from(b.subarray(at + 2, at + authLen)) };
  }
}

/**
 * RFC 5880 §4.1 and the structural checks of §6.8.6: version 1, Length at
 * least 24 (26 with the A bit) and not beyond the datagram, an authentication
 * section exactly when A is set. The session-level checks (Detect Mult,
 * discriminators, M bit) are in checkReceived(), so that a test can see them.
 */
export function decodeControl(buf: Uint8Array): ControlPacket {
  need(buf, 0, BFD_HEADER_LENGTH, 'BFD Control packet');
  const version = buf[0]! >> 5;
  if (version !== BFD_VERSION) throw new CodecError('PORTICO_CODEC_UNSUPPORTED', `BFD version ${version} (only ${BFD_VERSION} is defined)`, 0, { version });
  const flags = buf[1]!;
  const auth = (flags & 0x04) !== 0;
  const length = buf[3]!;
  const min = auth ? BFD_HEADER_LENGTH + 2 : BFD_HEADER_LENGTH;
  if (length < min) throw new CodecError('PORTICO_CODEC_INVALID', `BFD Length ${length} is below ${min}`, 3, { length });
  if (length > buf.length) throw new CodecError('PORTICO_CODEC_TRUNCATED', `BFD Length ${length} exceeds the ${buf.length} bytes received`, 3, { length });
  if (!auth && length !== BFD_HEADER_LENGTH) throw new CodecError('PORTICO_CODEC_INVALID', `BFD Length ${length} without the A bit (must be 24)`, 3, { length });
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const p: ControlPacket = {
    diag: buf[0]! & 0x1f,
    state: STATES[flags >> 6]!,
    poll: (flags & 0x20) !== 0,
    final: (flags & 0x10) !== 0,
    controlPlaneIndependent: (flags & 0x08) !== 0,
    demand: (flags & 0x02) !== 0,
    multipoint: (flags & 0x01) !== 0,
    detectMult: buf[2]!,
    myDiscriminator: b.readUInt32BE(4),
    yourDiscriminator: b.readUInt32BE(8),
    desiredMinTxInterval: b.readUInt32BE(12),
    requiredMinRxInterval: b.readUInt32BE(16),
    requiredMinEchoRxInterval: b.readUInt32BE(20),
  };
  if (auth) p.auth = decodeAuth(buf, BFD_HEADER_LENGTH, length);
  if (length < buf.length) p.trailer = Buffer.from(b.subarray(length));
  return p;
}

/** Bytes encodeControl() writes: 24, the authentication section, and any trailer. */
export function controlEncodedLength(p: ControlPacket): number {
  return BFD_HEADER_LENGTH + (p.auth ? authLength(p.auth) : 0) + (p.trailer?.length ?? 0);
}

const u32 = (n: number, what: string): number => {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new CodecError('PORTICO_CODEC_INVALID', `BFD ${what} ${n} is not a 32-bit unsigned integer`, 0);
  return n;
};

/** Writes `p` at `offset`; returns the number of bytes written. */
export function encodeControlInto(p: ControlPacket, out: Buffer, offset: number): number {
  const len = controlEncodedLength(p);
  const length = len - (p.trailer?.length ?? 0);
  if (length > 255) throw new CodecError('PORTICO_CODEC_INVALID', `BFD packet of ${length} bytes does not fit the Length field`, 0);
  if (!Number.isInteger(p.diag) || p.diag < 0 || p.diag > 31) throw new CodecError('PORTICO_CODEC_INVALID', `BFD diag ${p.diag} is not 0..31`, 0);
  if (!Number.isInteger(p.detectMult) || p.detectMult < 0 || p.detectMult > 255) throw new CodecError('PORTICO_CODEC_INVALID', `BFD Detect Mult ${p.detectMult} is not 0..255`, 2);
  need(out, offset, len, 'BFD encode buffer');
  out[offset] = (BFD_VERSION << 5) | p.diag;
  out[offset + 1] = (STATES.indexOf(p.state) << 6) | (p.poll ? 0x20 : 0) | (p.final ? 0x10 : 0) | (p.controlPlaneIndependent ? 0x08 : 0)
    | (p.auth ? 0x04 : 0) | (p.demand ? 0x02 : 0) | (p.multipoint ? 0x01 : 0);
  out[offset + 2] = p.detectMult;
  out[offset + 3] = length;
  out.writeUInt32BE(u32(p.myDiscriminator, 'My Discriminator'), offset + 4);
  out.writeUInt32BE(u32(p.yourDiscriminator, 'Your Discriminator'), offset + 8);
  out.writeUInt32BE(u32(p.desiredMinTxInterval, 'Desired Min TX Interval'), offset + 12);
  out.writeUInt32BE(u32(p.requiredMinRxInterval, 'Required Min RX Interval'), offset + 16);
  out.writeUInt32BE(u32(p.requiredMinEchoRxInterval, 'Required Min Echo RX Interval'), offset + 20);
  let at = offset + BFD_HEADER_LENGTH;
  const a = p.auth;
  if (a) {
    const alen = authLength(a);
    switch (a.type) {
      case 'simple-password':
        if (a.password.length < 1 || a.password.length > 16) throw new CodecError('PORTICO_CODEC_INVALID', `BFD simple password of ${a.password.length} bytes (1..16)`, at);
        out[at] = AuthType.simplePassword; out[at + 1] = alen; out[at + 2] = a.keyId; a.password.copy(out, at + 3);
        break;
      case 'keyed':
        if (a.digest.length !== digestLength(a.authType)) throw new CodecError('PORTICO_CODEC_INVALID', `BFD digest of ${a.digest.length} bytes for type ${a.authType}`, at);
        out[at] = a.authType; out[at + 1] = alen; out[at + 2] = a.keyId; out[at + 3] = a.reserved;
        out.writeUInt32BE(u32(a.sequence, 'sequence number'), at + 4); a.digest.copy(out, at + 8);
        break;
      case 'raw':
        out[at] = a.authType; out[at + 1] = alen; a.data.copy(out, at + 2);
        break;
    }
    at += alen;
  }
  if (p.trailer) p.trailer.copy(out, at);
  return len;
}

export function encodeControl(p: ControlPacket): Buffer {
  const out = Buffer.alloc(controlEncodedLength(p));
  encodeControlInto(p, out, 0);
  return out;
}

/** The Control packet codec in Portico's codec shape. */
export const controlCodec: Codec<ControlPacket> = {
  decode: decodeControl,
  encode: encodeControl,
  encodedLength: controlEncodedLength,
  encodeInto: encodeControlInto,
};

/** Why a structurally valid packet is discarded (RFC 5880 §6.8.6). */
export type DiscardReason =
  | 'detect-mult-zero'
  | 'multipoint'
  | 'my-discriminator-zero'
  /** Your Discriminator is zero while the sender is neither Down nor AdminDown. */
  | 'your-discriminator-zero'
  /** The A bit is set: Portico runs BFD without authentication. */
  | 'authentication-unsupported';

/** RFC 5880 §6.8.6's per-packet checks after decoding; undefined: the packet is acceptable. */
export function checkReceived(p: ControlPacket): DiscardReason | undefined {
  if (p.detectMult === 0) return 'detect-mult-zero';
  if (p.multipoint) return 'multipoint';
  if (p.myDiscriminator === 0) return 'my-discriminator-zero';
  if (p.yourDiscriminator === 0 && p.state !== 'Down' && p.state !== 'AdminDown') return 'your-discriminator-zero';
  if (p.auth) return 'authentication-unsupported';
  return undefined;
}
