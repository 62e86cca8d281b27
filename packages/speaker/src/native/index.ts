// Loads Portico's native addon (packages/speaker/native, plain Node-API C) and
// types it. Loading is lazy: importing this module never fails, calling
// loadNative() on a platform or install without the addon throws one clear error.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** What interfaceInfo() reports about a network interface (SIOCGIF* ioctls). */
export interface InterfaceInfo {
  index: number;
  /** The hardware address (6 bytes; zeros on loopback). */
  mac: Buffer;
  /** ARPHRD_* (1 = Ethernet, 772 = loopback). */
  hwType: number;
  mtu: number;
  /** IFF_* flags. */
  flags: number;
}

/**
 * The addon's functions. Every fd is non-blocking and close-on-exec. Errors are
 * Node-style system errors: `code` is the errno name ('EPERM', 'ENODEV'),
 * `errno` the negative errno, `syscall` the failing call.
 */
export interface PorticoNative {
  /** Index, MAC, type, MTU and flags of an interface in the current network namespace. */
  interfaceInfo(name: string): InterfaceInfo;
  /**
   * AF_PACKET SOCK_RAW socket bound to one interface and EtherType (ETH_P_ALL
   * for every frame). `ignoreOutgoing` sets PACKET_IGNORE_OUTGOING so our own
   * frames do not come back; `filter` is a classic BPF program (see
   * l2/filter.ts) attached before the socket is bound, so no unfiltered frame
   * is ever queued. Needs CAP_NET_RAW.
   */
  packetOpen(ifindex: number, protocol: number, ignoreOutgoing: boolean, filter: Uint8Array | null): number;
  /** PACKET_ADD_MEMBERSHIP / PACKET_DROP_MEMBERSHIP of a multicast MAC (PACKET_MR_MULTICAST). */
  packetMembership(fd: number, ifindex: number, mac: Uint8Array, add: boolean): void;
  /** SO_ATTACH_FILTER with a classic BPF program (8 bytes per instruction, host order). */
  setFilter(fd: number, program: Uint8Array): void;
  /** AF_NETLINK SOCK_RAW socket of `protocol` (NETLINK_ROUTE, NETLINK_GENERIC, ...), bound to the legacy `groups` bitmask with a kernel-assigned port id. */
  netlinkOpen(protocol: number, groups: number): number;
  /** The port id (nl_pid) the kernel assigned to a netlink socket. */
  netlinkPortId(fd: number): number;
  /**
   * Reads one datagram into `buf`. Returns its real length (larger than
   * buf.length when it was cut: MSG_TRUNC), or -1 when nothing is queued.
   * `meta` (Int32Array of >= 6) receives the sender, see RecvMeta.
   */
  recv(fd: number, buf: Uint8Array, meta: Int32Array | null): number;
  /** Sends one datagram (a whole frame on AF_PACKET, messages to the kernel on netlink). Returns bytes sent, or -1 when the socket buffer is full. */
  send(fd: number, buf: Uint8Array): number;
  setIntOption(fd: number, level: number, name: number, value: number): void;
  getIntOption(fd: number, level: number, name: number): number;
  /** A non-blocking TCP socket for `new net.Socket({fd})` (then .connect()) or `server.listen({fd})` after bindAddress(). */
  tcpSocket(family: 4 | 6): number;
  /** SO_REUSEADDR, then bind to an address literal and port. */
  bindAddress(fd: number, address: string, port: number): void;
  /**
   * TCP_MD5SIG (RFC 2385) key for a peer address; `prefixLength` >= 0 keys a
   * whole prefix (TCP_MD5SIG_EXT), -1 the single address; an empty key deletes
   * the entry; `ifindex` > 0 binds the key to an interface (VRF). On an IPv6
   * socket an IPv4 peer is keyed as ::ffff:a.b.c.d automatically. Set on a
   * listening socket, the key applies to the connections it accepts.
   */
  tcpMd5Sig(fd: number, address: string, prefixLength: number, key: Uint8Array, ifindex?: number): void;
  /**
   * A non-blocking UDP socket that reports each datagram's TTL / hop limit and
   * destination address (IP_RECVTTL + IP_PKTINFO, IPV6_RECVHOPLIMIT +
   * IPV6_RECVPKTINFO); IPv6 sockets are v6-only. Bind it with bindAddress().
   */
  udpSocket(family: 4 | 6): number;
  /**
   * Reads one datagram into `buf`: its real length, or -1 when nothing is
   * queued. `addrs` (32 bytes) gets the source address at 0 and the
   * destination at 16 (4 or 16 bytes each); `meta` (Int32Array of 4) gets
   * family (4|6), source port, TTL or hop limit (-1 if unknown), ifindex.
   */
  udpRecv(fd: number, buf: Uint8Array, addrs: Uint8Array, meta: Int32Array): number;
  /** sendto() an address literal (IPv6 may carry %zone) and port; -1 when the socket buffer is full. */
  udpSendTo(fd: number, buf: Uint8Array, address: string, port: number): number;
  /** Calls `onReadable(null)` each time fd is readable (libuv uv_poll_t), or `onReadable(err)` on a poll error. One poll per fd. */
  pollStart(fd: number, onReadable: (err: Error | null) => void): void;
  /** Stops polling fd; harmless if not polling. */
  pollStop(fd: number): void;
  /** Whether an active poll keeps the event loop alive (default true). */
  pollRef(fd: number, ref: boolean): void;
  /** Stops any poll on fd, then closes it. */
  close(fd: number): void;
  readonly constants: NativeConstants;
}

export interface NativeConstants {
  readonly AF_INET: number; readonly AF_INET6: number; readonly AF_PACKET: number; readonly AF_NETLINK: number;
  readonly ETH_P_ALL: number; readonly ETH_P_ARP: number; readonly ETH_P_IP: number; readonly ETH_P_IPV6: number; readonly ETH_P_8021Q: number;
  readonly PACKET_HOST: number; readonly PACKET_BROADCAST: number; readonly PACKET_MULTICAST: number; readonly PACKET_OTHERHOST: number; readonly PACKET_OUTGOING: number;
  readonly SOL_SOCKET: number; readonly SOL_PACKET: number; readonly SOL_NETLINK: number;
  readonly IPPROTO_IP: number; readonly IPPROTO_IPV6: number; readonly IPPROTO_TCP: number;
  readonly SO_RCVBUF: number; readonly SO_SNDBUF: number; readonly SO_RCVBUFFORCE: number; readonly SO_SNDBUFFORCE: number; readonly SO_REUSEADDR: number;
  readonly IP_TTL: number; readonly IP_MINTTL: number; readonly IPV6_UNICAST_HOPS: number; readonly IPV6_V6ONLY: number; readonly IPV6_MINHOPCOUNT: number;
  readonly NETLINK_ROUTE: number; readonly NETLINK_GENERIC: number;
  readonly NETLINK_ADD_MEMBERSHIP: number; readonly NETLINK_DROP_MEMBERSHIP: number; readonly NETLINK_NO_ENOBUFS: number;
  readonly NETLINK_CAP_ACK: number; readonly NETLINK_EXT_ACK: number; readonly NETLINK_GET_STRICT_CHK: number;
  readonly ARPHRD_ETHER: number; readonly ARPHRD_LOOPBACK: number;
  readonly IFF_UP: number; readonly IFF_BROADCAST: number; readonly IFF_LOOPBACK: number; readonly IFF_RUNNING: number; readonly IFF_MULTICAST: number;
}

/** Slots of the Int32Array passed to recv(). */
export const RecvMeta = {
  /** AF_PACKET (17) or AF_NETLINK (16). */
  family: 0,
  /** AF_PACKET: receiving interface index. AF_NETLINK: sender port id (0 = the kernel; read as `>>> 0`). */
  ifindexOrPortId: 1,
  /** AF_PACKET: PACKET_HOST/BROADCAST/MULTICAST/OTHERHOST. AF_NETLINK: multicast groups mask. */
  pkttypeOrGroups: 2,
  /** AF_PACKET: EtherType in host order. */
  protocol: 3,
  /** AF_PACKET: the 802.1Q TCI the kernel took off the frame, or -1 when untagged. */
  vlanTci: 4,
  /** AF_PACKET: the VLAN tag's TPID (0x8100, 0x88a8) when vlanTci >= 0. */
  vlanTpid: 5,
} as const;

export class NativeUnavailableError extends Error {
  readonly code = 'PORTICO_NATIVE_UNAVAILABLE';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'NativeUnavailableError';
  }
}

/** Where `pnpm install` puts the built addon. */
export const addonPath = fileURLToPath(new URL('../../native/build/Release/portico_native.node', import.meta.url));

let cached: PorticoNative | undefined;

/** The addon, loaded once. Throws NativeUnavailableError off Linux or when it was not built. */
export function loadNative(): PorticoNative {
  if (cached) return cached;
  if (process.platform !== 'linux') {
    throw new NativeUnavailableError(`Portico's speaker needs Linux (AF_PACKET, netlink, TCP_MD5SIG); this platform is ${process.platform}`);
  }
  if (!existsSync(addonPath)) {
    throw new NativeUnavailableError(
      `Portico's native addon was not built (${addonPath} is missing): run \`pnpm install\` or \`pnpm --filter @portico/speaker run build:native\` (needs python3, make and a C compiler)`,
    );
  }
  try {
    cached = createRequire(import.meta.url)(addonPath) as PorticoNative;
  } catch (err) {
    throw new NativeUnavailableError(`Portico's native addon at ${addonPath} failed to load: ${String(err)}; rebuild it with \`pnpm --filter @portico/speaker run build:native\``, { cause: err });
  }
  return cached;
}

/** True when loadNative() would succeed (for tests that skip without it). */
export function nativeAvailable(): boolean {
  try {
    loadNative();
    return true;
  } catch {
    return false;
  }
}

export { DatagramSocket, PacketSocket, NetlinkSocket, openPacketSocket, openNetlinkSocket, type Datagram, type DatagramSocketCounters, type PacketSocketOptions } from './sockets.ts';
