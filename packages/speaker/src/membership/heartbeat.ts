// The UDP heartbeat speakers exchange to notice a dead node in a few hundred
// milliseconds: a small message authenticated with HMAC-SHA256 under a shared
// key (from a Secret), and a pure verifier that rejects forgeries, replays and
// stale messages with a reason. No sockets or clocks here: `now` is passed in.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { CodecError, need, type Codec } from '../codec/errors.ts';

/*
 * Portico heartbeat, version 1 (all integers big-endian):
 *
 *   0      2        3       4                    12                  20                  28     29
 *   +------+--------+-------+--------------------+-------------------+-------------------+------+------------+
 *   | "PH" | ver=1  | flags | incarnation (u64)  | sequence (u64)    | timestamp ms (u64)| nlen | node name  |
 *   +------+--------+-------+--------------------+-------------------+-------------------+------+------------+
 *   | HMAC-SHA256 over every byte before it (32)                                                             |
 *
 * incarnation: chosen by the sender at start (its start time in ms), so a
 * restarted speaker's sequence can begin again at 1. flags bit 0 = leaving
 * (a graceful shutdown: peers drop the node at once instead of timing out);
 * bit 1 = restarting (a planned restart: peers keep the node's IPs where they
 * are for a bounded hold time instead of moving them twice).
 */

export const HEARTBEAT_MAGIC = 0x5048; // "PH"
export const HEARTBEAT_VERSION = 1;
export const HEARTBEAT_MAC_LENGTH = 32;
const FIXED = 29;
const FLAG_LEAVING = 0x01;
const FLAG_RESTARTING = 0x02;

export interface Heartbeat {
  node: string;
  incarnation: number;
  sequence: number;
  /** Sender's wall clock, ms since the epoch. */
  timestamp: number;
  /** The sender is shutting down. */
  leaving: boolean;
  /** The sender is stopping for a restart and asks peers to hold its IPs (absent = false). */
  restarting?: boolean;
}

/** A heartbeat on the wire: the message plus the MAC it carried (not yet verified). */
export interface SealedHeartbeat extends Heartbeat {
  mac: Buffer;
}

function readU64(buf: Uint8Array, off: number, what: string): number {
  const v = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).readBigUInt64BE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new CodecError('PORTICO_CODEC_INVALID', `${what} ${v} is beyond 2^53`, off);
  return Number(v);
}

function checkU64(v: number, what: string): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new CodecError('PORTICO_CODEC_INVALID', `${what} must be a non-negative safe integer, got ${v}`, 0);
}

/** Structure only; authenticity is verifyHeartbeat's job. */
export const heartbeatCodec: Codec<SealedHeartbeat> = {
  decode(buf) {
    need(buf, 0, FIXED, 'heartbeat header');
    const magic = (buf[0]! << 8) | buf[1]!;
    if (magic !== HEARTBEAT_MAGIC) throw new CodecError('PORTICO_CODEC_INVALID', `not a Portico heartbeat (magic 0x${magic.toString(16)})`, 0);
    if (buf[2] !== HEARTBEAT_VERSION) throw new CodecError('PORTICO_CODEC_UNSUPPORTED', `heartbeat version ${buf[2]}`, 2);
    const flags = buf[3]!;
    if ((flags & ~(FLAG_LEAVING | FLAG_RESTARTING)) !== 0) throw new CodecError('PORTICO_CODEC_INVALID', `unknown heartbeat flags 0x${flags.toString(16)}`, 3);
    const nameLength = buf[28]!;
    if (nameLength === 0) throw new CodecError('PORTICO_CODEC_INVALID', 'empty node name', 28);
    need(buf, FIXED, nameLength + HEARTBEAT_MAC_LENGTH, 'heartbeat node name and MAC');
    if (buf.length !== FIXED + nameLength + HEARTBEAT_MAC_LENGTH) throw new CodecError('PORTICO_CODEC_INVALID', 'trailing bytes after the heartbeat MAC', FIXED + nameLength + HEARTBEAT_MAC_LENGTH);
    const name = Buffer.from(buf.subarray(FIXED, FIXED + nameLength));
    const node = name.toString('utf8');
    if (!Buffer.from(node, 'utf8').equals(name)) throw new CodecError('PORTICO_CODEC_INVALID', 'node name is not UTF-8', FIXED);
    return {
      node,
      incarnation: readU64(buf, 4, 'incarnation'),
      sequence: readU64(buf, 12, 'sequence'),
      timestamp: readU64(buf, 20, 'timestamp'),
      leaving: (flags & FLAG_LEAVING) !== 0,
      ...((flags & FLAG_RESTARTING) !== 0 ? { restarting: true } : {}),
      mac: Buffer.from(buf.subarray(FIXED + nameLength)),
    };
  },
  encode(h) {
    const out = Buffer.alloc(this.encodedLength(h));
    this.encodeInto(h, out, 0);
    return out;
  },
  encodedLength(h) {
    return FIXED + Buffer.byteLength(h.node, 'utf8') + HEARTBEAT_MAC_LENGTH;
  },
  encodeInto(h, buf, offset) {
    const name = Buffer.from(h.node, 'utf8');
    if (name.length === 0 || name.length > 255) throw new CodecError('PORTICO_CODEC_INVALID', `node name of ${name.length} bytes`, offset + 28);
    if (h.mac.length !== HEARTBEAT_MAC_LENGTH) throw new CodecError('PORTICO_CODEC_INVALID', `MAC of ${h.mac.length} bytes`, offset);
    checkU64(h.incarnation, 'incarnation');
    checkU64(h.sequence, 'sequence');
    checkU64(h.timestamp, 'timestamp');
    const len = this.encodedLength(h);
    need(buf, offset, len, 'heartbeat');
    buf.writeUInt16BE(HEARTBEAT_MAGIC, offset);
    buf[offset + 2] = HEARTBEAT_VERSION;
    buf[offset + 3] = (h.leaving ? FLAG_LEAVING : 0) | (h.restarting ? FLAG_RESTARTING : 0);
    buf.writeBigUInt64BE(BigInt(h.incarnation), offset + 4);
    buf.writeBigUInt64BE(BigInt(h.sequence), offset + 12);
    buf.writeBigUInt64BE(BigInt(h.timestamp), offset + 20);
    buf[offset + 28] = name.length;
    name.copy(buf, offset + FIXED);
    h.mac.copy(buf, offset + FIXED + name.length);
    return len;
  },
};

function hmac(key: Uint8Array, signed: Uint8Array): Buffer {
  return createHmac('sha256', key).update(signed).digest();
}

/** The heartbeat on the wire, authenticated with `key` (HMAC-SHA256 over all bytes before the MAC). */
export function sealHeartbeat(h: Heartbeat, key: Uint8Array): Buffer {
  const out = heartbeatCodec.encode({ ...h, mac: Buffer.alloc(HEARTBEAT_MAC_LENGTH) });
  hmac(key, out.subarray(0, out.length - HEARTBEAT_MAC_LENGTH)).copy(out, out.length - HEARTBEAT_MAC_LENGTH);
  return out;
}

export type RejectReason =
  /** Not a well-formed heartbeat. */
  | 'malformed'
  /** The MAC matches none of the keys: forged, corrupted, or a key mismatch. */
  | 'bad-mac'
  /** Not newer than the last accepted heartbeat of that node (same or older incarnation and sequence). */
  | 'replay'
  /** Timestamp outside the allowed skew: an old recording, or a clock far off. */
  | 'stale'
  /** A node this speaker does not know. */
  | 'unknown-node'
  /** Our own heartbeat coming back (multicast loop, misrouted). */
  | 'self';

export type Verdict = { ok: true; heartbeat: Heartbeat } | { ok: false; reason: RejectReason; detail: string };

/** The newest (incarnation, sequence) accepted per node: the verifier's only state. */
export type ReplayState = ReadonlyMap<string, { incarnation: number; sequence: number }>;

export interface VerifyOptions {
  /** Accepted keys, current first: during a rotation both old and new verify. */
  keys: readonly Uint8Array[];
  /** Receiver's wall clock, ms. */
  now: number;
  /** Largest accepted |now - timestamp|, ms. */
  maxSkewMs: number;
  state: ReplayState;
  /** This speaker's node name. */
  self?: string;
  /** When given, heartbeats from other names are refused. */
  knownNodes?: ReadonlySet<string>;
}

/**
 * Verifies one received datagram. Checks run cheapest-first but the MAC is
 * checked before anything the sender controls is trusted. The caller records
 * an accepted heartbeat with `remember` so the next replay is refused.
 */
export function verifyHeartbeat(datagram: Uint8Array, opts: VerifyOptions): Verdict {
  let h: SealedHeartbeat;
  try {
    h = heartbeatCodec.decode(datagram);
  } catch (err) {
    if (err instanceof CodecError) return { ok: false, reason: 'malformed', detail: err.message };
    throw err;
  }
  const signed = datagram.subarray(0, datagram.length - HEARTBEAT_MAC_LENGTH);
  if (!opts.keys.some((k) => timingSafeEqual(hmac(k, signed), h.mac))) return { ok: false, reason: 'bad-mac', detail: `from ${JSON.stringify(h.node)}` };
  if (opts.self !== undefined && h.node === opts.self) return { ok: false, reason: 'self', detail: h.node };
  if (opts.knownNodes && !opts.knownNodes.has(h.node)) return { ok: false, reason: 'unknown-node', detail: h.node };
  const skew = h.timestamp - opts.now;
  if (Math.abs(skew) > opts.maxSkewMs) return { ok: false, reason: 'stale', detail: `timestamp ${skew} ms from now` };
  const last = opts.state.get(h.node);
  if (last && (h.incarnation < last.incarnation || (h.incarnation === last.incarnation && h.sequence <= last.sequence))) {
    return { ok: false, reason: 'replay', detail: `incarnation ${h.incarnation} sequence ${h.sequence}, last accepted ${last.incarnation}/${last.sequence}` };
  }
  const { mac: _mac, ...heartbeat } = h;
  return { ok: true, heartbeat };
}

/** The replay state after accepting `h` (a new map; the old one is untouched). */
export function remember(state: ReplayState, h: Heartbeat): Map<string, { incarnation: number; sequence: number }> {
  const next = new Map(state);
  next.set(h.node, { incarnation: h.incarnation, sequence: h.sequence });
  return next;
}
