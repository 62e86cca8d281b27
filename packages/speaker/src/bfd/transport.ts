// BFD over UDP: single hop on port 3784 (RFC 5881) and multihop on 4784
// (RFC 5883), IPv4 and IPv6. classify() is the pure part: decode, the §6.8.6
// checks, the TTL check (GTSM, RFC 5881 §5; a configured floor for multihop)
// and finding the session. UdpEndpoint is the thin edge over the native addon,
// which reports each datagram's TTL / hop limit.
import { CodecError } from '../codec/errors.ts';
import { formatIP, parseIP } from '../bgp/ip.ts';
import { loadNative, type PorticoNative } from '../native/index.ts';
import { checkReceived, decodeControl, type ControlPacket, type DiscardReason } from './packet.ts';

export const SINGLE_HOP_PORT = 3784;
export const MULTIHOP_PORT = 4784;
/** RFC 5881 §4: source ports of Control packets. */
export const SOURCE_PORT_MIN = 49152;
export const SOURCE_PORT_MAX = 65535;
/** What Portico sends with, single hop and multihop alike. */
export const SEND_TTL = 255;
/** MetalLB's default floor for multihop sessions. */
export const DEFAULT_MINIMUM_TTL = 254;

/** Errors of the BFD edge, with stable codes. */
export class BfdError extends Error {
  readonly code: 'PORTICO_BFD_NO_SOURCE_PORT' | 'PORTICO_BFD_NO_DISCRIMINATOR';
  constructor(code: BfdError['code'], message: string) {
    super(message);
    this.name = 'BfdError';
    this.code = code;
  }
}

/** Where one session runs. Addresses are literals in canonical form (see canonicalAddress). */
export interface BfdPath {
  peer: string;
  /** Our address; for multihop it selects the session for a first packet. */
  local?: string;
  multihop: boolean;
  /** Multihop only: the least TTL accepted (RFC 5883 §5 leaves the check to configuration). */
  minimumTtl?: number;
}

/** A datagram as the socket edge hands it over. */
export interface Received {
  data: Uint8Array;
  /** 3784 or 4784: the port it arrived on. */
  port: number;
  src: string;
  srcPort: number;
  dst: string;
  /** TTL or hop limit; -1 when the kernel did not say. */
  ttl: number;
}

export type DropReason = DiscardReason | 'decode-error' | 'ttl-too-low' | 'ttl-unknown' | 'unknown-discriminator' | 'no-session' | 'wrong-source' | 'wrong-port';

/** Sessions by what identifies them on the wire. */
export interface SessionLookup<S> {
  byDiscriminator(localDiscr: number): { session: S; path: BfdPath } | undefined;
  /** A first packet (Your Discriminator 0): by peer address, and for multihop our address. */
  byPath(multihop: boolean, src: string, dst: string): { session: S; path: BfdPath } | undefined;
}

export type Classified<S> =
  | { ok: true; session: S; packet: ControlPacket }
  | { ok: false; reason: DropReason; detail?: string };

/** RFC 5880 §6.8.6 with RFC 5881 §3/§5 and RFC 5883 §4/§5: which session a datagram is for, or why it is dropped. */
export function classify<S>(r: Received, sessions: SessionLookup<S>): Classified<S> {
  let packet: ControlPacket;
  try {
    packet = decodeControl(r.data);
  } catch (err) {
    if (err instanceof CodecError) return { ok: false, reason: 'decode-error', detail: err.message };
    throw err;
  }
  const bad = checkReceived(packet);
  if (bad) return { ok: false, reason: bad };
  const multihop = r.port === MULTIHOP_PORT;
  if (!multihop && r.port !== SINGLE_HOP_PORT) return { ok: false, reason: 'wrong-port' };
  // GTSM for single hop before anything else: a packet from further away never reaches a session.
  if (r.ttl < 0) return { ok: false, reason: 'ttl-unknown' };
  if (!multihop && r.ttl !== SEND_TTL) return { ok: false, reason: 'ttl-too-low', detail: `TTL ${r.ttl}, single hop needs 255` };
  const found = packet.yourDiscriminator !== 0 ? sessions.byDiscriminator(packet.yourDiscriminator) : sessions.byPath(multihop, r.src, r.dst);
  if (!found) return { ok: false, reason: packet.yourDiscriminator !== 0 ? 'unknown-discriminator' : 'no-session' };
  if (found.path.multihop !== multihop) return { ok: false, reason: 'wrong-port' };
  if (found.path.peer !== r.src) return { ok: false, reason: 'wrong-source', detail: `from ${r.src}, session peer ${found.path.peer}` };
  if (multihop) {
    const floor = found.path.minimumTtl ?? DEFAULT_MINIMUM_TTL;
    if (r.ttl < floor) return { ok: false, reason: 'ttl-too-low', detail: `TTL ${r.ttl}, minimumTtl ${floor}` };
  }
  return { ok: true, session: found.session, packet };
}

/** One spelling per address, so that lookups by string match ("2001:DB8::01" -> "2001:db8::1"). */
export function canonicalAddress(addr: string): string {
  const zone = addr.indexOf('%');
  const bare = zone >= 0 ? addr.slice(0, zone) : addr;
  const b = parseIP(bare.startsWith('::ffff:') && bare.includes('.') ? bare.slice(7) : bare);
  return formatIP(b) + (zone >= 0 ? addr.slice(zone) : '');
}

export const familyOf = (addr: string): 4 | 6 => (addr.includes(':') ? 6 : 4);

/** What the session layer needs of the network: a receiver and per-session senders. */
export interface BfdNetwork {
  /** Starts delivering datagrams arriving on the BFD ports of `family`. */
  listen(family: 4 | 6, onDatagram: (r: Received) => void): void;
  /** A sender for one session: its own source port in 49152-65535, TTL 255. */
  openSender(path: BfdPath): BfdSender;
  close(): void;
}

export interface BfdSender {
  send(packet: Uint8Array): boolean;
  close(): void;
}

export interface UdpEndpointOptions {
  /** Listening ports (tests move them off 3784/4784). */
  singleHopPort?: number;
  multihopPort?: number;
  /** Listening addresses per family (default: every address). */
  bind?: { 4?: string; 6?: string };
  onError?(err: Error, where: string): void;
}

/** The real network: UDP sockets from the native addon, read when libuv says they are readable. */
export class UdpEndpoint implements BfdNetwork {
  readonly #native: PorticoNative;
  readonly #opts: UdpEndpointOptions;
  readonly #listeners: number[] = [];
  readonly #usedPorts = new Set<number>();
  readonly #buf = Buffer.alloc(2048);
  readonly #addrs = new Uint8Array(32);
  readonly #meta = new Int32Array(4);

  constructor(opts: UdpEndpointOptions = {}) {
    this.#native = loadNative();
    this.#opts = opts;
  }

  listen(family: 4 | 6, onDatagram: (r: Received) => void): void {
    const n = this.#native;
    const wild = family === 4 ? '0.0.0.0' : '::';
    const ports: [number, number][] = [
      [this.#opts.singleHopPort ?? SINGLE_HOP_PORT, SINGLE_HOP_PORT],
      [this.#opts.multihopPort ?? MULTIHOP_PORT, MULTIHOP_PORT],
    ];
    for (const [port, logical] of ports) {
      const fd = n.udpSocket(family);
      try {
        n.bindAddress(fd, this.#opts.bind?.[family] ?? wild, port);
      } catch (err) {
        n.close(fd);
        throw err;
      }
      this.#listeners.push(fd);
      n.pollStart(fd, (err) => {
        if (err) {
          this.#opts.onError?.(err, 'poll');
          return;
        }
        for (let i = 0; i < 256; i++) {
          let len: number;
          try {
            len = n.udpRecv(fd, this.#buf, this.#addrs, this.#meta);
          } catch (e) {
            this.#opts.onError?.(e as Error, 'recv');
            return;
          }
          if (len < 0) return;
          const fam = this.#meta[0];
          const alen = fam === 6 ? 16 : 4;
          onDatagram({
            data: this.#buf.subarray(0, Math.min(len, this.#buf.length)),
            port: logical,
            src: formatIP(this.#addrs, 0, alen),
            srcPort: this.#meta[1]!,
            dst: formatIP(this.#addrs, 16, alen),
            ttl: this.#meta[2]!,
          });
        }
      });
      n.pollRef(fd, false);
    }
  }

  openSender(path: BfdPath): BfdSender {
    const n = this.#native;
    const family = familyOf(path.peer);
    const fd = n.udpSocket(family);
    try {
      n.setIntOption(fd, family === 4 ? n.constants.IPPROTO_IP : n.constants.IPPROTO_IPV6, family === 4 ? n.constants.IP_TTL : n.constants.IPV6_UNICAST_HOPS, SEND_TTL);
      const port = this.#bindSourcePort(fd, path.local ?? (family === 4 ? '0.0.0.0' : '::'));
      const dstPort = path.multihop ? this.#opts.multihopPort ?? MULTIHOP_PORT : this.#opts.singleHopPort ?? SINGLE_HOP_PORT;
      let closed = false;
      return {
        send: (packet) => {
          if (closed) return false;
          try {
            return n.udpSendTo(fd, packet, path.peer, dstPort) >= 0;
          } catch (err) {
            // ENETUNREACH and the like while a link is down: the session's detection timer handles it.
            this.#opts.onError?.(err as Error, 'send');
            return false;
          }
        },
        close: () => {
          if (closed) return;
          closed = true;
          this.#usedPorts.delete(port);
          n.close(fd);
        },
      };
    } catch (err) {
      n.close(fd);
      throw err;
    }
  }

  /** RFC 5881 §4: a source port of its own in 49152-65535 (bindAddress sets SO_REUSEADDR, so the set keeps them apart here). */
  #bindSourcePort(fd: number, address: string): number {
    const span = SOURCE_PORT_MAX - SOURCE_PORT_MIN + 1;
    const start = Math.floor(Math.random() * span);
    for (let i = 0; i < span; i++) {
      const port = SOURCE_PORT_MIN + ((start + i) % span);
      if (this.#usedPorts.has(port)) continue;
      try {
        this.#native.bindAddress(fd, address, port);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') continue;
        throw err;
      }
      this.#usedPorts.add(port);
      return port;
    }
    throw new BfdError('PORTICO_BFD_NO_SOURCE_PORT', 'no free BFD source port in 49152-65535');
  }

  close(): void {
    for (const fd of this.#listeners.splice(0)) this.#native.close(fd);
  }
}
